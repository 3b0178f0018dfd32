"""The reader contract: a concrete reader yields raw rows and dates them; the base owns everything else.

The base loop hashes `doc_id`, dates each row, buckets the century, catches every per-row failure and turns it
into a rejects row, drops repeated native ids, counts, and checks rows read == documents + rejects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import polars as pl

from sources.dates import DateError, DateEstimate, parse_row_date
from sources.schema import DOCUMENTS, REJECTS, UNDATED, Document, Reject, century_of, doc_id_of, empty, frame_of
from sources.stats import StageStats

logger = logging.getLogger(__name__)

STAGE = "ingest"
# [date estimation, issue 9] with `keep_undated`, rows rejected only for these reasons are handed to the date
# estimator whole (ReadResult.undated) instead of becoming rejects rows; ingest still counts them as rejected.
UNDATED_REASONS = ("missing_date", "unparseable_date")
DEFAULT_BATCH_BYTES = 64 << 20  # [issue 14] document text per piece of a streamed read


@dataclass(slots=True)
class RawRow:
    """One row as a reader found it, before dating and hashing."""

    row_ref: str
    source_doc_id: str
    text: str
    title: str | None = None
    author: str | None = None
    language: str | None = None
    source: str | None = None  # user corpora may name a source per row
    date: DateEstimate | None = None  # bundled readers know the date; user rows carry fields instead
    date_fields: dict = field(default_factory=dict)
    license: str | None = None  # [issue 16] a row that names its own (HistText records may); None = the reader's
    provenance: str | None = None


@dataclass(slots=True)
class ReadResult:
    documents: pl.DataFrame
    rejects: pl.DataFrame
    stats: StageStats
    undated: pl.DataFrame = field(default_factory=lambda: empty(UNDATED))  # [issue 9] see UNDATED_REASONS

    @staticmethod
    def concat(pieces: list[ReadResult]) -> ReadResult:
        """[issue 14] Pieces of one read (or several reads) as one result; stats add up."""
        if not pieces:
            return ReadResult(empty(DOCUMENTS), empty(REJECTS), StageStats(STAGE))
        stats = pieces[0].stats
        for piece in pieces[1:]:
            stats = stats + piece.stats
        return ReadResult(
            pl.concat([p.documents for p in pieces]),
            pl.concat([p.rejects for p in pieces]),
            stats.check(),
            pl.concat([p.undated for p in pieces]),
        )


class BaseReader:
    """Subclasses set `source`, `license`, `provenance` and implement `iter_raw`; may override `date_of`.

    `iter_raw` yields `RawRow`s, or `Reject`s for rows (or whole files) it could not even read.
    """

    source: ClassVar[str]
    license: ClassVar[str] = "unknown"
    language: ClassVar[str] = "en"
    keep_undated: bool = False  # [issue 9] set by readers whose undated rows the date estimator may place

    def __init__(self, max_docs: int | None = None):
        self.max_docs = max_docs

    @property
    def provenance(self) -> str:
        return self.source

    def iter_raw(self) -> Iterator[RawRow | Reject]:
        raise NotImplementedError

    def date_of(self, raw: RawRow) -> DateEstimate:
        """Bundled readers attach the date; otherwise parse the row's date fields."""
        return raw.date if raw.date is not None else parse_row_date(raw.date_fields)

    def read(self) -> ReadResult:
        """Every row at once: for bundled sources and tests; corpus-scale ingest uses `read_batches`."""
        return ReadResult.concat(list(self.read_batches(None)))

    def read_batches(self, batch_bytes: int | None = DEFAULT_BATCH_BYTES) -> Iterator[ReadResult]:
        """[issue 14] The read in pieces of about `batch_bytes` of document text (None: one piece), so a corpus
        larger than memory streams through; duplicate ids are still caught across pieces. Each piece's stats count
        its own rows and add up (`+`) to the whole read's."""
        stats = StageStats(STAGE)
        documents: list[Document] = []
        rejects: list[Reject] = []
        undated: list[dict] = []  # [issue 9]
        first_ref_of: dict[tuple[str, str], str] = {}
        n_documents = held_bytes = 0

        def reject(item: Reject) -> None:
            rejects.append(item)
            stats.reject(item.reason)
            logger.warning("%s: rejected %s (%s): %s", self.source, item.row_ref, item.reason, item.detail)

        def piece() -> ReadResult:
            return ReadResult(
                frame_of(documents, DOCUMENTS), frame_of(rejects, REJECTS), stats.check(), frame_of(undated, UNDATED)
            )

        for item in self.iter_raw():
            if self.max_docs is not None and n_documents >= self.max_docs:
                break
            stats.n_in += 1
            if isinstance(item, Reject):
                reject(item)
                continue
            source = item.source or self.source
            outcome = self._document_of(item, source, first_ref_of)
            if isinstance(outcome, Reject) and self.keep_undated and outcome.reason in UNDATED_REASONS:  # [issue 9]
                undated.append(self._undated_of(item, outcome))
                stats.reject(outcome.reason)
                continue
            if isinstance(outcome, Reject):
                reject(outcome)
                continue
            documents.append(outcome)
            n_documents += 1
            held_bytes += len(outcome.text)
            stats.n_out += 1
            stats.measure("chars", outcome.n_chars, "chars")
            if batch_bytes is not None and held_bytes >= batch_bytes:
                yield piece()
                stats, documents, rejects, undated, held_bytes = StageStats(STAGE), [], [], [], 0
        yield piece()

    def _undated_of(self, raw: RawRow, rejected: Reject) -> dict:
        """[issue 9] An undated row kept whole, with the ingest rejection it would otherwise have been."""
        return {
            "row_ref": raw.row_ref,
            "source": rejected.source,
            "source_doc_id": raw.source_doc_id,
            "title": raw.title,
            "author": raw.author,
            "language": raw.language or self.language,
            "text": raw.text.strip(),
            "reason": rejected.reason,
            "detail": rejected.detail,
            "license": raw.license or self.license,
            "provenance": raw.provenance or self.provenance,
        }

    def _document_of(self, raw: RawRow, source: str, first_ref_of: dict[tuple[str, str], str]) -> Document | Reject:
        def reject(reason: str, detail: str) -> Reject:
            return Reject.of(
                row_ref=raw.row_ref, source=source, stage=STAGE, reason=reason, detail=detail, text=raw.text
            )

        if not isinstance(raw.text, str):
            return reject("missing_text", f"text is {type(raw.text).__name__}, not a string")
        text = raw.text.strip()
        if not text:
            return reject("empty_text", "text is empty or whitespace")
        if "\x00" in text:
            return reject("binary_content", "text contains NUL bytes")
        key = (source, raw.source_doc_id)
        if key in first_ref_of:
            return reject("duplicate_id", f"id {raw.source_doc_id!r} already read at {first_ref_of[key]}")
        try:
            date = self.date_of(raw)
        except DateError as error:
            return reject(error.reason, error.detail)
        first_ref_of[key] = raw.row_ref
        return Document(
            doc_id=doc_id_of(source, raw.source_doc_id),
            source=source,
            source_doc_id=raw.source_doc_id,
            title=raw.title,
            author=raw.author,
            language=raw.language or self.language,
            text=text,
            year=date.year,
            year_min=date.year_min,
            year_max=date.year_max,
            date_method=date.method,
            date_confidence=date.confidence,
            century=century_of(date.year),
            n_chars=len(text),
            license=raw.license or self.license,
            provenance=raw.provenance or self.provenance,
        )


def package_version(distribution: str) -> str:
    """`name@version` of an installed distribution: the provenance of bundled text."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{distribution}@{version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution}@unknown"
