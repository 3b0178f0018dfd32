"""Assemble one century partition of `documents` from every source's raw table."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from sources.schema import DOCUMENTS, REJECTS, Reject, conform, empty, frame_of
from sources.stats import StageStats
from sources.storage import TableWriter, ValueSpill, rows_per_batch

STAGE = "documents"


def assemble_documents(raw_tables: list[pl.DataFrame], century: str) -> tuple[pl.DataFrame, pl.DataFrame, StageStats]:
    """Rows of `century` from all raw tables; a doc_id seen again (same source + id from two places) is rejected."""
    stats = StageStats(STAGE)
    frames = [conform(t, DOCUMENTS).filter(pl.col("century") == century) for t in raw_tables]
    rows = pl.concat(frames) if frames else empty(DOCUMENTS)
    stats.n_in = rows.height
    repeated = rows.with_row_index("_order").filter(pl.col("doc_id").is_duplicated())
    first_order = repeated.group_by("doc_id").agg(pl.col("_order").min().alias("_first"))
    dropped = repeated.join(first_order, on="doc_id").filter(pl.col("_order") != pl.col("_first"))
    rejects = [_duplicate_id(row) for row in dropped.iter_rows(named=True)]
    documents = rows.unique(subset="doc_id", keep="first", maintain_order=True).sort("doc_id")
    stats.n_out = documents.height
    if rejects:
        stats.reject("duplicate_id", len(rejects))
    for n_chars in documents["n_chars"]:
        stats.measure("chars", n_chars, "chars")
    return documents, frame_of(rejects, REJECTS), stats.check()


# [issue 14] The same assembly at corpus scale, in memory bounded by one batch whatever the century's size (DuckDB's
# ORDER BY, used before, needed about four batches of memory for wide text rows and failed under less). Three passes
# over the century's rows, always in the same order (raw tables in turn, each in file order):
#   1. keys: doc_id and n_chars alone. A doc_id seen before is a reject; the rest, ordered by doc_id, are cut into
#      buckets of about one batch of text each: a bucket is a doc_id range.
#   2. distribute: each batch of rows goes, bucket by bucket, to a spill file (sources.storage.ValueSpill).
#   3. per bucket, in doc_id order: its rows read back, sorted, written out.
# A century that fits one bucket skips the spill. Output (rows, order, rejects) equals `assemble_documents`.
KEY_BATCH_ROWS = 1 << 16  # rows per read of the id columns in pass 1


def assemble_documents_streamed(
    raw_paths: list[Path], century: str, batch_bytes: int, spill_dir: Path
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, StageStats]]:
    """Yield (documents batch, rejects, stats) pieces of one century in doc_id order; the stats add up with `+`."""
    paths = [p for p in raw_paths if p.is_file()]
    buckets = century_buckets(paths, century, batch_bytes)
    n_buckets = int(buckets.max()) + 1 if len(buckets) else 0
    batch_rows = rows_per_batch(paths, batch_bytes)
    if n_buckets <= 1:  # the century is one batch: no spill
        parts = list(_tagged(_century_batches(paths, century, batch_rows), buckets))
        kept = [tagged.drop("_bucket") for tagged, _ in parts]
        rejects = pl.concat([empty(REJECTS), *(dropped for _, dropped in parts)])
        yield from _pieces([pl.concat(kept).sort("doc_id")] if kept else [], rejects)
        return
    spill_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="documents-", dir=spill_dir) as spill:
        buckets_spill = ValueSpill(Path(spill) / "buckets.arrow", "_bucket", {**DOCUMENTS, "_bucket": pl.Int64})
        try:
            rejects = [empty(REJECTS)]
            for tagged, dropped in _tagged(_century_batches(paths, century, batch_rows), buckets):
                buckets_spill.add(tagged)
                rejects.append(dropped)
            sorted_buckets = (
                frame.drop("_bucket").sort("doc_id") for b in range(n_buckets) for frame in buckets_spill.read(b)
            )
            yield from _pieces(sorted_buckets, pl.concat(rejects))
        finally:
            buckets_spill.close()


def century_buckets(paths: list[Path], century: str, batch_bytes: int) -> np.ndarray:
    """Pass 1: for each row of the century (in `_century_batches` order) its bucket, -1 for a repeated doc_id.

    Buckets number the doc_id ranges of about `batch_bytes` of text each, in doc_id order (text size from n_chars:
    a bucket of text beyond ASCII holds more bytes)."""
    columns = ["doc_id", "n_chars"]
    frames = [frame.select(columns) for frame in _century_batches(paths, century, KEY_BATCH_ROWS, columns)]
    if not frames:
        return np.zeros(0, dtype=np.int64)
    keys = pl.concat(frames).with_row_index("_seq")
    first = keys.filter(pl.col("doc_id").is_first_distinct()).sort("doc_id")
    before = first["n_chars"].fill_null(0).cum_sum() - first["n_chars"].fill_null(0)
    buckets = np.full(keys.height, -1, dtype=np.int64)
    buckets[first["_seq"].to_numpy()] = (before // max(batch_bytes, 1)).to_numpy()
    return _renumbered(buckets)


def _renumbered(buckets: np.ndarray) -> np.ndarray:
    """Bucket numbers made consecutive (a document larger than a batch skips numbers); -1 stays."""
    kept = buckets >= 0
    out = buckets.copy()
    out[kept] = np.unique(buckets[kept], return_inverse=True)[1]
    return out


def _century_batches(
    paths: list[Path], century: str, batch_rows: int, columns: list[str] | None = None
) -> Iterator[pl.DataFrame]:
    """The century's rows of every raw table in turn, in file order, as DOCUMENTS frames (or just `columns`); row
    groups whose statistics exclude the century are not read (raw tables are written clustered by century)."""
    read = None if columns is None else sorted({*columns, "century"})
    for path in paths:
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
        groups = [i for i in range(meta.num_row_groups) if _may_hold(meta.row_group(i), century)]
        if not groups:
            continue
        for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=groups, columns=read):
            frame = pl.from_arrow(batch).filter(pl.col("century") == century)
            if frame.height:
                yield frame if columns is not None else conform(frame, DOCUMENTS)


def _may_hold(group, century: str) -> bool:
    """Whether a row group's `century` statistics admit `century` (no statistics: it may)."""
    for i in range(group.num_columns):
        column = group.column(i)
        if column.path_in_schema == "century":
            stats = column.statistics
            if stats is None or not stats.has_min_max:
                return True
            low, high = (v.decode() if isinstance(v, bytes) else v for v in (stats.min, stats.max))
            return low <= century <= high
    return True


def _tagged(frames: Iterable[pl.DataFrame], buckets: np.ndarray) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Each frame's kept rows with their `_bucket` column, and its rows of repeated doc_ids as rejects."""
    seq = 0
    for frame in frames:
        bucket = pl.Series("_bucket", buckets[seq : seq + frame.height])
        seq += frame.height
        if not (bucket < 0).any():
            yield frame.with_columns(bucket), empty(REJECTS)
            continue
        yield frame.with_columns(bucket).filter(bucket >= 0), _rejects_of(frame.filter(bucket < 0))


def _rejects_of(dropped: pl.DataFrame) -> pl.DataFrame:
    return frame_of([_duplicate_id(row) for row in dropped.iter_rows(named=True)], REJECTS)


def _pieces(
    batches: Iterable[pl.DataFrame], rejects: pl.DataFrame
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, StageStats]]:
    """(documents, rejects, stats) per sorted batch; the rejects and their count ride on the first piece."""
    for documents in batches:
        stats = StageStats(STAGE, n_in=documents.height + rejects.height, n_out=documents.height)
        if rejects.height:
            stats.reject("duplicate_id", rejects.height)
        stats.measure_many("chars", documents["n_chars"].to_numpy(), "chars")
        yield documents, rejects, stats.check()
        rejects = empty(REJECTS)
    if rejects.height:  # no document came out: one piece with the rejects alone
        stats = StageStats(STAGE, n_in=rejects.height)
        stats.reject("duplicate_id", rejects.height)
        yield empty(DOCUMENTS), rejects, stats.check()


def _duplicate_id(row: dict) -> Reject:
    detail = f"{row['source']} id {row['source_doc_id']!r} was ingested twice"
    return Reject.of_document(row, stage=STAGE, reason="duplicate_id", detail=detail)


@dataclass(slots=True)
class DocumentsResult:
    stats: StageStats
    rejects: pl.DataFrame
    rows_per_source: dict[str, int]
    chars_per_source: dict[str, int]


def write_documents(
    raw_paths: list[Path], century: str, out: TableWriter, batch_bytes: int, spill_dir: Path
) -> DocumentsResult:
    """[issue 14] One century of `documents` streamed into `out` (an open writer), in batches of ~`batch_bytes`,
    spilling to `spill_dir` when the century is larger than one batch."""
    stats, rejects = StageStats(STAGE), [empty(REJECTS)]
    rows, chars = Counter(), Counter()
    for docs, dropped, piece in assemble_documents_streamed(raw_paths, century, batch_bytes, spill_dir):
        out.write(docs)
        stats = stats + piece
        rejects.append(dropped)
        for source, n, n_chars in docs.group_by("source").agg(pl.len(), pl.col("n_chars").sum()).iter_rows():
            rows[source] += n
            chars[source] += n_chars
    return DocumentsResult(stats.check(), pl.concat(rejects), dict(sorted(rows.items())), dict(sorted(chars.items())))
