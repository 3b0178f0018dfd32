"""Where tables live under $CHRONOPRISM_HOME, and atomic writes.

Layout: `<home>/data/<table>/<partition>.parquet` for partitioned tables, `<home>/data/<table>/all.parquet` for
the rest, and rejects per stage: `<home>/data/rejects/<stage>/<partition>.parquet`. A partition file is replaced
whole (temp file + rename), so a rerun rewrites exactly its own partition and a killed write leaves the old file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
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
