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
from typing import TYPE_CHECKING

import polars as pl

from sources.schema import REJECTS, conform, empty

if TYPE_CHECKING:
    import pyarrow as pa

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
    preview, and a content digest (the same row hashes as `table_data_version`, fed one batch at a time; complete
    once the writer is closed).

    [issue 14] With `cluster_by`, the table is stably sorted on that column (ascending, nulls last) and every value
    gets its own row groups, so the Parquet statistics let a reader filtering on one value skip every other value's
    rows (the `documents` stage reads one century of the unpartitioned raw tables this way). The rows wait in a
    `ValueSpill` beside the file until the close writes them out value by value, so the order is the same whatever
    the batch size (which follows the memory budget and the number of build workers).
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
        self._spill: ValueSpill | None = None

    def __enter__(self) -> TableWriter:
        self._tmp = self._context.__enter__()
        if self.cluster_by is not None:
            self._spill = ValueSpill(self._tmp.with_suffix(".spill"), self.cluster_by, self.schema)
        return self

    def write(self, df: pl.DataFrame) -> None:
        df = conform(df, self.schema)
        if self._spill is not None:
            self._spill.add(df)
        elif df.height or self._writer is None:  # an empty first batch still fixes the file's schema
            self._write_row_groups(df)
        self.height += df.height

    def _write_row_groups(self, df: pl.DataFrame) -> None:
        import pyarrow.parquet as pq

        table = df.to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd", write_statistics=True)
        self._writer.write_table(table, row_group_size=_rows_per_group(table))
        if self.head.height < self._preview_rows:
            self.head = pl.concat([self.head, df.head(self._preview_rows - self.head.height)])
        if df.height and df.width:
            self._digest.update(df.hash_rows(seed=0).to_numpy().tobytes())

    @property
    def digest(self) -> str:
        """Content hash of every row written so far (schema, rows in order, count): the partition's data version."""
        digest = self._digest.copy()
        digest.update(f"rows={self.height}".encode())
        return digest.hexdigest()[:32]

    def _finish(self) -> None:
        if self._spill is not None:
            for value in self._spill.values():
                for frame in self._spill.read(value, ROW_GROUP_BYTES):
                    self._write_row_groups(frame)
        if self._writer is None:  # nothing written: still a typed, empty table
            self._write_row_groups(empty(self.schema))

    def __exit__(self, kind, error, tb) -> None:
        try:
            if error is None:
                self._finish()
        except BaseException as failure:  # the temp file goes, the old table stays
            kind, error, tb = type(failure), failure, failure.__traceback__
            raise
        finally:
            if self._spill is not None:
                self._spill.close()
            if self._writer is not None:
                self._writer.close()
            self._context.__exit__(kind, error, tb)


class ValueSpill:
    """[issue 14] Rows set aside by the value of one column, read back value by value: a stable sort of everything
    added, on disk. One Arrow IPC file (lz4) of record batches, each holding one value's rows of one `add`; reading
    a value back holds only its rows (or frames of about `batch_bytes` of them). Reading closes the file for adding;
    `close` deletes it."""

    def __init__(self, path: Path, column: str, schema: Mapping[str, pl.DataType]):
        import pyarrow as pa

        self.path = path
        self.column = column
        self.schema = dict(schema)
        self._arrow_schema = empty(self.schema).to_arrow().schema
        self._batches: dict[object, list[int]] = {}  # value -> record batches holding its rows, in order
        self._count = 0
        self._sink = pa.OSFile(str(path), "wb")
        options = pa.ipc.IpcWriteOptions(compression="lz4")
        self._writer = pa.ipc.new_file(self._sink, self._arrow_schema, options=options)
        self._reader = None
        self._source = None

    def add(self, df: pl.DataFrame) -> None:
        if df.height == 0:
            return
        for (value,), group in conform(df, self.schema).partition_by(self.column, as_dict=True).items():
            for batch in group.to_arrow().cast(self._arrow_schema).to_batches():
                self._writer.write_batch(batch)
                self._batches.setdefault(value, []).append(self._count)
                self._count += 1

    def values(self) -> list:
        """The values added, ascending, None last."""
        present = [value for value in self._batches if value is not None]
        return sorted(present) + ([None] if None in self._batches else [])

    def read(self, value: object, batch_bytes: int | None = None) -> Iterator[pl.DataFrame]:
        """The rows of `value` in the order they were added: frames of at most `batch_bytes` (Arrow bytes, unless one
        added piece is larger; None: one frame)."""
        import pyarrow as pa

        if self._reader is None:
            self._close_writer()
            self._source = pa.OSFile(str(self.path))  # read with pread: the file never counts as this process's memory
            self._reader = pa.ipc.open_file(self._source)
        held, size = [], 0
        for index in self._batches.get(value, []):
            batch = self._reader.get_batch(index)
            if held and batch_bytes is not None and size + batch.nbytes > batch_bytes:
                yield self._frame(held)
                held, size = [], 0
            held.append(batch)
            size += batch.nbytes
        if held:
            yield self._frame(held)

    def _frame(self, batches: list[pa.RecordBatch]) -> pl.DataFrame:
        import pyarrow as pa

        return conform(pl.from_arrow(pa.Table.from_batches(batches, schema=self._arrow_schema)), self.schema)

    def _close_writer(self) -> None:
        if not self._sink.closed:
            self._writer.close()
            self._sink.close()

    def close(self) -> None:
        self._close_writer()
        if self._source is not None:
            self._source.close()
        self.path.unlink(missing_ok=True)


def _rows_per_group(table: pa.Table) -> int:
    """Rows of an Arrow table per row group of at most ROW_GROUP_BYTES (the measure `ValueSpill.read` frames by)."""
    size = max(int(table.nbytes), 1)
    return max(1, int(table.num_rows * min(1.0, ROW_GROUP_BYTES / size)))


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


# [issue 14] `memory_budget_gb` is the memory of a whole build. A document stage holds one batch's text several
# times at once (arrow input, a normalised copy, kept output, polars temporaries, the shingle hashes of the near-dup
# step: up to ~8x at 256 MB batches), on top of a fixed cost per process (interpreter, Dagster, polars and arrow
# pools: 0.3-0.5 GB). The build runs `--workers` stage processes at once and says how many in SHARES_ENV; each gets
# an equal share of the budget and a batch is a sixty-fourth of that share: 32 MB of text at 4 GB and two workers.
# Small batches also keep the peak flat from small corpora on: a century of a 0.5 GB corpus already fills one.
BATCHES_PER_SHARE = 64
SHARES_ENV = "CHRONOPRISM_MEMORY_SHARES"  # stage processes of this build that hold batches at the same time
MIN_BATCH_BYTES = 1 << 20


def memory_shares() -> int:
    """How many stage processes share the memory budget now (set by the build; 1 outside one)."""
    return max(1, int(os.environ.get(SHARES_ENV) or 1))


def batch_bytes_for(memory_budget_gb: float, shares: int | None = None) -> int:
    """Text per batch for a stage under `memory_budget_gb` (settings.memory_budget_gb) split `shares` ways (None:
    `memory_shares()`)."""
    share = memory_budget_gb * (1 << 30) / (shares or memory_shares())
    return max(MIN_BATCH_BYTES, int(share / BATCHES_PER_SHARE))


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
