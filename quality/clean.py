"""The clean stage: normalise each document, strip Gutenberg wrappers, run the filters; drops become rejects.

Order, per document: (1) reject `too_large` on the raw length before touching the text, so a 50 MB document costs
no copy; (2) normalise (NFC + whitespace, spelling untouched) and strip Project Gutenberg header/footer; (3) run the
filters cheapest first, each on the documents still alive; the first failing rule names the reason. Kept documents
carry the cleaned text and its new `n_chars`. `clean_text` is the same path for one text.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import polars as pl

from quality.filters import BaseFilter, Drop, build_filters, first_drop, strip_gutenberg
from quality.filters.gutenberg import MENTION
from quality.filters.length import TOO_LARGE
from quality.normalize import normalize_series, normalize_text
from quality.text_buffer import byte_chunks
from sources.parallel import BatchMap, LocalMap
from sources.schema import DOCUMENTS, REJECTS, SNIPPET_CHARS, Reject, conform, frame_of
from sources.settings import CleanSettings
from sources.stats import StageStats

log = logging.getLogger(__name__)

STAGE = "clean"
CHUNK_BYTES = 4 << 20  # text per vectorised chunk: amortises the per-call cost, keeps temporaries small


@dataclass(slots=True)
class CleanResult:
    documents: pl.DataFrame  # DOCUMENTS schema, cleaned text
    rejects: pl.DataFrame  # REJECTS schema, stage "clean"
    stats: StageStats
    changed: Counter = field(default_factory=Counter)  # how many kept texts normalisation / stripping changed


def clean_text(text: str, settings: CleanSettings | None = None, filters: Sequence[BaseFilter] | None = None):
    """(cleaned text, None) or (original text, Drop) for one text: the per-record twin of `clean_documents`."""
    settings = settings or CleanSettings()
    if settings.max_chars is not None and len(text) > settings.max_chars:
        return text, Drop(TOO_LARGE, f"n_chars {len(text)} > {settings.max_chars}")
    cleaned = strip_gutenberg(normalize_text(text))
    drop = first_drop(build_filters(settings) if filters is None else filters, cleaned)
    return (text, drop) if drop else (cleaned, None)


def clean_documents(
    docs: pl.DataFrame, settings: CleanSettings | None = None, chunk_bytes: int = CHUNK_BYTES
) -> CleanResult:
    """Clean one partition of `documents` (any row order); returns kept documents, rejects and accounting.

    Rows are processed in chunks of about `chunk_bytes` of text, so temporary arrays stay small whatever the size.
    """
    settings = settings or CleanSettings()
    filters = build_filters(settings)
    docs = conform(docs, DOCUMENTS)
    if docs["text"].null_count():
        docs = docs.with_columns(pl.col("text").fill_null(""))
    stats = StageStats(STAGE, n_in=docs.height)
    raw_chars = docs["text"].str.len_chars().to_numpy()
    drops: dict[int, Drop] = {}
    if settings.max_chars is not None:  # before any copy of the text: a 50 MB document costs nothing more
        for row in np.flatnonzero(raw_chars > settings.max_chars).tolist():
            drops[row] = Drop(TOO_LARGE, f"n_chars {raw_chars[row]} > {settings.max_chars}")
    alive = np.array([row for row in range(docs.height) if row not in drops], dtype=np.int64)

    kept_rows: list[np.ndarray] = []
    kept_texts: list[pl.Series] = []
    changed: Counter = Counter()
    for part in byte_chunks(docs["text"].str.len_bytes().to_numpy()[alive], chunk_bytes):
        chunk = alive[part]
        rows, texts = _clean_chunk(docs["text"].gather(chunk), chunk, filters, drops, changed)
        kept_rows.append(rows)
        kept_texts.append(texts)

    rows = np.concatenate(kept_rows) if kept_rows else np.zeros(0, dtype=np.int64)
    text = pl.concat(kept_texts) if kept_texts else pl.Series("text", [], dtype=pl.String)
    documents = (
        docs[rows]
        .with_columns(text.alias("text"), text.str.len_chars().cast(pl.Int64).alias("n_chars"))
        .select(list(DOCUMENTS))
    )
    stats.n_out = documents.height
    for drop in drops.values():
        stats.reject(drop.reason)
    for n_chars in documents["n_chars"].to_list():
        stats.measure("chars", n_chars, "chars")
    return CleanResult(documents, _rejects(docs, drops), stats.check(), changed)


def _clean_chunk(
    original: pl.Series, rows: np.ndarray, filters: Sequence[BaseFilter], drops: dict[int, Drop], changed: Counter
) -> tuple[np.ndarray, pl.Series]:
    """Normalise, strip and filter one chunk; records drops by row; returns the kept rows and their cleaned text."""
    texts = normalize_series(original)
    changed["normalised"] += int((texts != original).sum())
    mentions = texts.str.contains(MENTION).to_numpy()
    if mentions.any():
        before = texts.to_list()
        after = [strip_gutenberg(t) if m else t for t, m in zip(before, mentions, strict=True)]
        changed["gutenberg_stripped"] += sum(a != b for a, b in zip(after, before, strict=True))
        texts = pl.Series("text", after, dtype=pl.String)
    position = np.arange(len(rows))  # index into `texts` of each row still alive
    for rule in filters:
        verdicts = rule.keep_batch(texts.gather(position))
        keep = np.array([v is None for v in verdicts], dtype=bool)
        for index, verdict in zip(position[~keep].tolist(), (v for v in verdicts if v is not None), strict=True):
            drops[int(rows[index])] = verdict
        position = position[keep]
        log.debug("%s: %d dropped, %d left", rule.name, int((~keep).sum()), len(position))
    return rows[position], texts.gather(position)


def _rejects(docs: pl.DataFrame, drops: dict[int, Drop]) -> pl.DataFrame:
    if not drops:
        return frame_of([], REJECTS)
    rows = sorted(drops)
    view = docs.select("doc_id", "source", pl.col("text").str.slice(0, SNIPPET_CHARS))[rows]
    return frame_of(
        [
            Reject.of(
                row_ref=doc_id,
                source=source,
                stage=STAGE,
                reason=drops[row].reason,
                detail=drops[row].detail,
                text=text,
            )
            for row, (doc_id, source, text) in zip(rows, view.iter_rows(), strict=True)
        ],
        REJECTS,
    )


def clean_batches(
    batches: Iterable[pl.DataFrame],
    settings: CleanSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    mapper: BatchMap | None = None,
) -> Iterator[CleanResult]:
    """[issue 14] `clean_documents` over a partition read in batches: one result per batch, in row order, so kept
    documents and rejects come out exactly as from one call over the whole partition; stats and `changed` add up.
    `mapper` runs the batches (here, or as Ray tasks: sources.parallel); `progress(documents, bytes)` is called
    after each batch."""
    done_docs = done_bytes = 0
    for result, n_bytes in (mapper or LocalMap()).imap(partial(_clean_piece, settings=settings), batches):
        done_docs += result.stats.n_in
        done_bytes += n_bytes
        if progress is not None:
            progress(done_docs, done_bytes)
        yield result


def _clean_piece(batch: pl.DataFrame, settings: CleanSettings | None) -> tuple[CleanResult, int]:
    """One batch cleaned, with its text bytes (for throughput)."""
    n_bytes = int(batch["text"].str.len_bytes().sum() or 0) if batch.height else 0
    return clean_documents(batch, settings), n_bytes
