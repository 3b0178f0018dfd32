"""Where every id lives: an id -> (table, partition, column) index over the table files, for `chronoprism why`.

A large home holds millions of rows; answering "why is this row here?" by scanning every table would read
gigabytes. The index (`<home>/index/ids.duckdb`) keeps, per parquet file under `data/` and the published dataset
under `publish/`, the values of its id columns only. `refresh` re-reads only files whose size or mtime changed
since the last refresh (a build rewrites whole partition files atomically, so a changed file is re-read whole and a
deleted file's rows go), so after a build the next lookup costs one pass over the new files' id columns, and a
lookup is one indexed query. A file lock serialises refreshes across processes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
from filelock import FileLock

log = logging.getLogger(__name__)

INDEX_FILE = "ids-v2.duckdb"  # v2: row positions
# columns holding an id someone may ask about (row_ref: a reject's row; source_doc_id: e.g. "kjv/01.001")
ID_COLUMNS = (
    "doc_id",
    "source_doc_id",
    "kept_doc_id",
    "passage_id",
    "situation_id",
    "candidate_id",
    "example_id",
    "pair_id",
    "chosen_id",
    "rejected_id",
    "row_ref",
    "teacher_call_id",
    "cluster_id",
)

_DDL = """
CREATE TABLE IF NOT EXISTS files (path VARCHAR, size BIGINT, mtime_ns BIGINT, rows BIGINT);
CREATE TABLE IF NOT EXISTS ids (id VARCHAR, path VARCHAR, tbl VARCHAR, part VARCHAR, col VARCHAR, "row" BIGINT);
CREATE INDEX IF NOT EXISTS ids_by_id ON ids (id);
"""


@dataclass(frozen=True, slots=True)
class Location:
    """One row of a table file holding `id` in `column`: `table` as the Store names it (or
    `publish/<name>/data/<config>` for the published dataset), `partition` the file stem (a century, `all`, a
    split), `row` its position in the file (so a reader fetches one row group, not the file)."""

    id: str
    path: Path
    table: str
    partition: str
    column: str
    row: int


@dataclass(slots=True)
class RefreshStats:
    files_read: int = 0
    files_dropped: int = 0
    files_unchanged: int = 0
    ids_added: int = 0


def index_path(home: Path) -> Path:
    return Path(home) / "index" / INDEX_FILE


def table_files(home: Path) -> Iterator[tuple[Path, str, str]]:
    """(file, table, partition) for every parquet table file of the home and its published datasets."""
    home = Path(home)
    data = home / "data"
    for path in sorted(data.rglob("*.parquet")) if data.is_dir() else []:
        yield path, path.parent.relative_to(data).as_posix(), path.stem
    publish = home / "publish"
    for path in sorted(publish.glob("*/data/*/*.parquet")) if publish.is_dir() else []:
        yield path, path.parent.relative_to(home).as_posix(), path.stem


class IdIndex:
    """The id index of one home; `refresh()` before `locate()` to see the latest files."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.path = index_path(self.home)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path) + ".lock", timeout=600)
        self._session: duckdb.DuckDBPyConnection | None = None

    @contextmanager
    def session(self) -> Iterator[IdIndex]:
        """Keep one connection open for many lookups (one `why` answer asks a few dozen)."""
        with self.connect() as con:
            self._session = con
            try:
                yield self
            finally:
                self._session = None

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._session is not None:
            yield self._session
            return
        with self._lock:
            con = duckdb.connect(str(self.path))
            try:
                con.execute(_DDL)
                yield con
            finally:
                con.close()

    def refresh(self) -> RefreshStats:
        """Bring the index in line with the files on disk: read new or changed files, forget deleted ones."""
        stats = RefreshStats()
        on_disk = {}
        for path, table, partition in table_files(self.home):
            stat = path.stat()
            on_disk[str(path)] = (path, table, partition, stat.st_size, stat.st_mtime_ns)
        with self.connect() as con:
            known = {p: (s, m) for p, s, m in con.execute("SELECT path, size, mtime_ns FROM files").fetchall()}
            gone = [p for p in known if p not in on_disk]
            changed = [v for p, v in on_disk.items() if known.get(p) != (v[3], v[4])]
            stats.files_unchanged = len(on_disk) - len(changed)
            stats.files_dropped = len(gone)
            con.execute("BEGIN TRANSACTION")
            for stale in [*gone, *(str(v[0]) for v in changed if str(v[0]) in known)]:
                con.execute("DELETE FROM ids WHERE path = ?", [stale])
                con.execute("DELETE FROM files WHERE path = ?", [stale])
            for path, table, partition, size, mtime in changed:
                frame = _id_rows(path, table, partition)
                if frame is not None and frame.height:
                    con.register("new_ids", frame.to_arrow())
                    con.execute('INSERT INTO ids SELECT id, path, tbl, part, col, "row" FROM new_ids')
                    con.unregister("new_ids")
                    stats.ids_added += frame.height
                rows = frame.height if frame is not None else 0
                con.execute("INSERT INTO files VALUES (?, ?, ?, ?)", [str(path), size, mtime, rows])
                stats.files_read += 1
            con.execute("COMMIT")
        if stats.files_read or stats.files_dropped:
            log.info("id index: %s", stats)
        return stats

    def locate(self, ids: Iterable[str]) -> list[Location]:
        """Every (file, column) holding one of `ids`, in table then partition order."""
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return []
        with self.connect() as con:
            rows = con.execute(
                'SELECT id, path, tbl, part, col, "row" FROM ids WHERE id IN (SELECT unnest(?::VARCHAR[])) '
                'ORDER BY tbl, part, col, "row"',
                [wanted],
            ).fetchall()
        return [Location(i, Path(p), t, part, c, r) for i, p, t, part, c, r in rows]

    def locate_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Full ids starting with `prefix` (users paste the 12-character ids the CLI prints)."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT DISTINCT id FROM ids WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                [prefix, prefix + "\U0010ffff", limit],
            ).fetchall()
        return [row[0] for row in rows]


def _id_rows(path: Path, table: str, partition: str) -> pl.DataFrame | None:
    """(id, path, tbl, part, col, row) for every non-null id value of one file (only id columns are read)."""
    try:
        names = pq.read_schema(path).names
    except Exception as error:  # a torn or foreign file must not stop the index; it is simply not indexed
        log.warning("id index: cannot read %s: %s", path, error)
        return None
    columns = [c for c in ID_COLUMNS if c in names]
    if not columns:
        return None
    frame = pl.read_parquet(path, columns=columns).with_row_index("row")
    parts = [
        frame.select(pl.col(c).cast(pl.String).alias("id"), pl.col("row").cast(pl.Int64))
        .drop_nulls("id")
        .with_columns(pl.lit(c).alias("col"))
        for c in columns
    ]
    out = pl.concat(parts)
    return out.with_columns(
        pl.lit(str(path)).alias("path"), pl.lit(table).alias("tbl"), pl.lit(partition).alias("part")
    ).select("id", "path", "tbl", "part", "col", "row")
