"""Where tables live under $CHRONOPRISM_HOME, and atomic writes.

Layout: `<home>/data/<table>/<partition>.parquet` for partitioned tables, `<home>/data/<table>/all.parquet` for
the rest, and rejects per stage: `<home>/data/rejects/<stage>/<partition>.parquet`. A partition file is replaced
whole (temp file + rename), so a rerun rewrites exactly its own partition and a killed write leaves the old file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from sources.schema import REJECTS, conform, empty

UNPARTITIONED = "all"


@contextmanager
def atomic_path(path: Path):
    """Yield a temp path beside `path`; rename it over `path` only if the block finishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (files can be larger than memory)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)
    return path


class Store:
    """Table files under one home; the only place that knows the data layout."""

    def __init__(self, home: str | Path):
        self.home = Path(home).expanduser().resolve()
        self.data = self.home / "data"

    def table_path(self, table: str, partition: str | None = None) -> Path:
        return self.data / table / f"{partition or UNPARTITIONED}.parquet"

    def write(self, table: str, df: pl.DataFrame, partition: str | None = None) -> Path:
        return write_parquet_atomic(df, self.table_path(table, partition))

    def exists(self, table: str, partition: str | None = None) -> bool:
        return self.table_path(table, partition).is_file()

    def partitions(self, table: str) -> list[str]:
        folder = self.data / table
        return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []

    def read(
        self,
        table: str,
        partition: str | None = None,
        schema: Mapping[str, pl.DataType] | None = None,
        missing_ok: bool = False,
    ) -> pl.DataFrame:
        path = self.table_path(table, partition)
        if not path.is_file():
            if missing_ok and schema is not None:
                return empty(schema)
            raise FileNotFoundError(
                f"table {table!r} partition {partition or UNPARTITIONED!r} has not been materialized ({path})"
            )
        df = pl.read_parquet(path)
        return conform(df, schema) if schema is not None else df

    def scan(self, table: str, partitions: Iterable[str] | None = None) -> pl.LazyFrame | None:
        """Lazy view over some or all partition files of a table; None when there are none."""
        wanted = set(partitions) if partitions is not None else None
        paths = [self.table_path(table, p) for p in self.partitions(table) if wanted is None or p in wanted]
        return pl.scan_parquet(paths) if paths else None

    def read_all(self, table: str, schema: Mapping[str, pl.DataType] | None = None) -> pl.DataFrame:
        lazy = self.scan(table)
        if lazy is None:
            if schema is None:
                raise FileNotFoundError(f"table {table!r} has no partitions under {self.data}")
            return empty(schema)
        df = lazy.collect()
        return conform(df, schema) if schema is not None else df

    # rejects: one file per (stage, partition), replaced whole like any other partition
    def rejects_table(self, stage: str) -> str:
        return f"rejects/{stage}"

    def write_rejects(self, stage: str, df: pl.DataFrame, partition: str | None = None) -> Path:
        return self.write(self.rejects_table(stage), conform(df, REJECTS), partition)

    def read_rejects(self) -> pl.DataFrame:
        folder = self.data / "rejects"
        paths = sorted(folder.glob("*/*.parquet")) if folder.is_dir() else []
        if not paths:
            return empty(REJECTS)
        return pl.concat([pl.read_parquet(p) for p in paths], how="vertical_relaxed")

    # [issue 14] the streamed API for tables larger than memory (TableWriter, iter_parquet below)
    def writer(
        self,
        table: str,
        schema: Mapping[str, pl.DataType],
        partition: str | None = None,
        cluster_by: str | None = None,
    ) -> TableWriter:
        """`with store.writer(table, SCHEMA, partition) as out: out.write(batch)`: an atomic, streamed write."""
        return TableWriter(self.table_path(table, partition), schema, cluster_by=cluster_by)

    def batches(
        self,
        table: str,
        partition: str | None = None,
        schema: Mapping[str, pl.DataType] | None = None,
        batch_bytes: int | None = None,
        missing_ok: bool = False,
    ) -> Iterator[pl.DataFrame]:
        """One partition in frames of about `batch_bytes`, in row order; an absent one is empty with `missing_ok`."""
        path = self.table_path(table, partition)
        if not path.is_file():
            if missing_ok:
                return iter([empty(schema)] if schema is not None else [])
            raise FileNotFoundError(f"table {table!r} partition {partition or UNPARTITIONED!r} is not materialized")
        return iter_parquet(path, schema, batch_bytes or DEFAULT_BATCH_BYTES)

    def num_rows(self, table: str, partition: str | None = None) -> int:
        """Rows of one partition from the Parquet footer (0 when absent), without reading any data."""
        import pyarrow.parquet as pq

        path = self.table_path(table, partition)
        return pq.ParquetFile(path).metadata.num_rows if path.is_file() else 0


# [issue 14] Tables larger than memory: written in row groups as they are produced, read back in batches.
# The file layout stays `<table>/<partition>.parquet` (one file, many row groups), so `read`, `scan` and every
# reader of small tables work unchanged; only stages that must stay flat at corpus scale use the streamed API.
ROW_GROUP_BYTES = 64 << 20  # text per row group: big enough for zstd and statistics, small enough to read alone
DEFAULT_BATCH_BYTES = 256 << 20  # text per batch when a caller gives no budget (settings.batch_bytes derives it)


class TableWriter:
    """Rows of one table partition written batch by batch into one Parquet file, renamed into place on close.

    Keeps only the current batch in memory, plus what the stage reports: the row count, the first rows for a
    preview, and a content digest (the same row hashes as `table_data_version`, fed one batch at a time).

    [issue 14] With `cluster_by`, each batch is stably sorted on that column and every value gets its own row
    groups, so the Parquet statistics let a reader filtering on one value skip every other value's rows (the
    `documents` stage reads one century of the unpartitioned raw tables this way). Rows of one value keep their
    order relative to each other; rows of different values are reordered within a batch.
    """

    def __init__(
        self,
        path: Path,
        schema: Mapping[str, pl.DataType],
        preview_rows: int = 10,
        cluster_by: str | None = None,
    ):
        import hashlib

        self.path = path
        self.schema = dict(schema)
        self.cluster_by = cluster_by
        self.height = 0
        self.head = empty(schema)
        self._preview_rows = preview_rows
        self._digest = hashlib.sha256(repr([(name, str(dtype)) for name, dtype in self.schema.items()]).encode())
        self._writer = None
        self._context = atomic_path(path)
        self._tmp: Path | None = None

    def __enter__(self) -> TableWriter:
        self._tmp = self._context.__enter__()
        return self

    def write(self, df: pl.DataFrame) -> None:
        df = conform(df, self.schema)
        if df.height == 0 and self._writer is not None:
            return
        if self.cluster_by is None or df.height == 0:
            self._write_row_groups(df)
            return
        clustered = df.sort(self.cluster_by, maintain_order=True, nulls_last=True)
        for group in clustered.partition_by(self.cluster_by, maintain_order=True):
            self._write_row_groups(group)

    def _write_row_groups(self, df: pl.DataFrame) -> None:
        import pyarrow.parquet as pq

        table = df.to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd", write_statistics=True)
        self._writer.write_table(table, row_group_size=max(1, _rows_per_group(df)))
        if self.head.height < self._preview_rows:
            self.head = pl.concat([self.head, df.head(self._preview_rows - self.head.height)])
        if df.height and df.width:
            self._digest.update(df.hash_rows(seed=0).to_numpy().tobytes())
        self.height += df.height

    @property
    def digest(self) -> str:
        """Content hash of every row written so far (schema, rows in order, count): the partition's data version."""
        digest = self._digest.copy()
        digest.update(f"rows={self.height}".encode())
        return digest.hexdigest()[:32]

    def __exit__(self, kind, error, tb) -> None:
        if error is None:
            if self._writer is None:  # nothing written: still a typed, empty table
                self.write(empty(self.schema))
            self._writer.close()
        elif self._writer is not None:
            self._writer.close()
        self._context.__exit__(kind, error, tb)


def _rows_per_group(df: pl.DataFrame) -> int:
    size = max(int(df.estimated_size()), 1)
    return max(1, int(df.height * min(1.0, ROW_GROUP_BYTES / size)))


def iter_parquet(
    path: Path, schema: Mapping[str, pl.DataType] | None = None, batch_bytes: int = DEFAULT_BATCH_BYTES
) -> Iterator[pl.DataFrame]:
    """A Parquet file as frames of about `batch_bytes` (uncompressed), in row order; never the whole file at once."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    rows = max(meta.num_rows, 1)
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)) or 1
    batch_rows = max(1, int(batch_bytes * rows / size))
    produced = False
    for batch in parquet.iter_batches(batch_size=batch_rows):
        frame = pl.from_arrow(batch)
        produced = True
        yield conform(frame, schema) if schema is not None else frame
    if not produced and schema is not None:
        yield empty(schema)


# A document stage holds one batch's text several times at once (arrow input, a normalised copy, kept output,
# polars temporaries), plus the run's fixed cost (interpreter, Dagster, polars and arrow pools): a sixteenth of the
# budget per batch keeps the peak near a quarter of it, with room for the dedup step's per-document keys.
BUDGET_SHARE_PER_BATCH = 16


def batch_bytes_for(memory_budget_gb: float) -> int:
    """Text per batch for a stage running under `memory_budget_gb` (settings.memory_budget_gb)."""
    return max(1 << 20, int(memory_budget_gb * (1 << 30) / BUDGET_SHARE_PER_BATCH))


def rows_per_batch(paths: Iterable[Path], batch_bytes: int) -> int:
    """Rows that hold about `batch_bytes` in these Parquet files, from their footers' average row size."""
    import pyarrow.parquet as pq

    rows = size = 0
    for path in paths:
        if Path(path).is_file():
            meta = pq.ParquetFile(path).metadata
            rows += meta.num_rows
            size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return max(1, int(batch_bytes * rows / size)) if size else 1024
