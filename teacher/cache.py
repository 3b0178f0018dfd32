"""The generation cache: every teacher call, keyed by a content hash, in DuckDB at `<home>/cache/teacher.duckdb`.

- **Keys.** `call_id = sha256(backend, model, request payload)`; the payload holds the messages (prompt and
  few-shot), the assistant prefix, every sampling parameter, the JSON schema and the prompt version. Anything that
  can change an answer changes the key, so a rebuild with nothing changed makes 0 backend calls.
- **Commits.** The `Teacher` writes each batch's answers in one transaction right after the backend returns, so a
  run killed with `kill -9` loses at most the batch in flight; the rerun finds the rest here.
- **Processes.** DuckDB lets one process open a file for writing; Dagster's multiprocess executor runs several
  partitions at once. Every access therefore holds an OS file lock (`teacher.duckdb.lock`, released by the kernel
  if the holder dies) and keeps the database open only for that access.
- **Builds.** Counters (backend calls, cache hits, parse failures, quarantined...) are kept per build. A build is
  one `chronoprism build` (the CLI sets `CHRONOPRISM_BUILD_ID`), else one Dagster run (its run id), else one
  `Teacher` object (a fresh id). `status_summary(home)` reports the latest build and the totals.
- Failed calls (backend errors) are recorded with status `failed` but are not cache hits: the next build retries
  them. Answers that did not parse are hits (status `malformed`): replaying them replays the same repair turns.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from filelock import FileLock

from sources.schema import TEACHER_CALLS, conform, empty, stable_id
from teacher.backends.base import TeacherRequest, TeacherResponse

logger = logging.getLogger(__name__)

BUILD_ID_ENV = "CHRONOPRISM_BUILD_ID"
CACHE_FILE = "teacher.duckdb"
STATUS_OK, STATUS_MALFORMED, STATUS_FAILED = "ok", "malformed", "failed"

_DDL = """
CREATE TABLE IF NOT EXISTS teacher_calls (
    call_id VARCHAR PRIMARY KEY,
    backend VARCHAR,
    model VARCHAR,
    task VARCHAR,
    prompt_version VARCHAR,
    request VARCHAR,        -- JSON: TeacherRequest.payload()
    response VARCHAR,       -- the answer text
    response_json VARCHAR,  -- JSON: TeacherResponse.payload() (tokens, logprobs, error)
    status VARCHAR,         -- ok / malformed / failed
    attempts INTEGER,
    latency_s DOUBLE,
    created_at TIMESTAMP,
    build_id VARCHAR
);
CREATE TABLE IF NOT EXISTS teacher_builds (
    build_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP,
    updated_at TIMESTAMP,
    backend_calls BIGINT,
    cache_hits BIGINT,
    parse_failures BIGINT,
    quarantined BIGINT,
    backend_errors BIGINT,
    completion_tokens BIGINT,
    backend_seconds DOUBLE
);
"""


@dataclass(slots=True)
class BuildCounters:
    """What one build (or one part of it) asked of the teacher; adds with +."""

    backend_calls: int = 0
    cache_hits: int = 0
    parse_failures: int = 0
    quarantined: int = 0
    backend_errors: int = 0
    completion_tokens: int = 0
    backend_seconds: float = 0.0

    def __add__(self, other: BuildCounters) -> BuildCounters:
        return BuildCounters(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: BuildCounters) -> BuildCounters:
        return BuildCounters(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def is_zero(self) -> bool:
        return all(getattr(self, f.name) == 0 for f in fields(self))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COUNTER_COLUMNS = [f.name for f in fields(BuildCounters)]


@dataclass(slots=True)
class CallRecord:
    """One finished backend call, as the Teacher hands it to the cache."""

    call_id: str
    backend: str
    model: str
    request: TeacherRequest
    response: TeacherResponse
    status: str


def call_id_of(backend: str, model: str, request: TeacherRequest) -> str:
    """The cache key: a content hash of everything that can change the answer."""
    return stable_id(backend, model, json.dumps(request.payload(), sort_keys=True, ensure_ascii=False))


def current_build_id(run_id: str | None = None) -> str:
    """CHRONOPRISM_BUILD_ID (set by the CLI for a whole build), else the Dagster run id, else a fresh id."""
    return os.environ.get(BUILD_ID_ENV) or run_id or f"adhoc-{uuid.uuid4().hex[:12]}"


def ensure_build_id() -> str:
    """The id of the `chronoprism build` in progress, made once per process: every run and teacher call it
    starts shares it (runs as a tag, the teacher cache as its build)."""
    return os.environ.setdefault(BUILD_ID_ENV, uuid.uuid4().hex[:12])


def cache_path(home: Path) -> Path:
    return Path(home) / "cache" / CACHE_FILE


class TeacherCache:
    """The `teacher_calls` table and per-build counters in one DuckDB file, safe across processes."""

    def __init__(self, path: Path, lock_timeout_s: float = 600.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout_s)
        self._ready = False

    @classmethod
    def for_home(cls, home: Path) -> TeacherCache:
        return cls(cache_path(home))

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one access, with the file lock held throughout (readers too: DuckDB refuses to open
        a file another process has open for writing)."""
        with self._lock:
            con = duckdb.connect(str(self.path))
            try:
                if not self._ready:
                    con.execute(_DDL)
                    self._ready = True
                yield con
            finally:
                con.close()

    def lookup(self, call_ids: Iterable[str]) -> dict[str, TeacherResponse]:
        """Cached answers (status ok or malformed) for the ids that have one."""
        ids = sorted(set(call_ids))
        if not ids:
            return {}
        with self.connect() as con:
            rows = con.execute(
                "SELECT call_id, response_json FROM teacher_calls WHERE status <> ? AND call_id IN "
                "(SELECT unnest(?::VARCHAR[]))",
                [STATUS_FAILED, ids],
            ).fetchall()
        return {call_id: TeacherResponse.from_payload(json.loads(payload)) for call_id, payload in rows}

    def record(self, records: list[CallRecord], build_id: str, counters: BuildCounters | None = None) -> None:
        """Store one batch of calls (and the build's counter increments) in one transaction."""
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = [
            (
                r.call_id,
                r.backend,
                r.model,
                r.request.task,
                r.request.prompt_version,
                json.dumps(r.request.payload(), sort_keys=True, ensure_ascii=False),
                r.response.text,
                json.dumps(r.response.payload(), ensure_ascii=False),
                r.status,
                1,
                r.response.latency_s,
                now,
                build_id,
            )
            for r in records
        ]
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            if rows:
                con.executemany(
                    "INSERT INTO teacher_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) "
                    "DO UPDATE SET response = excluded.response, response_json = excluded.response_json, "
                    "status = excluded.status, attempts = teacher_calls.attempts + 1, "
                    "latency_s = excluded.latency_s, created_at = excluded.created_at, build_id = excluded.build_id",
                    rows,
                )
            if counters is not None and not counters.is_zero():
                self._add_counters(con, build_id, counters, now)
            con.execute("COMMIT")

    def add_counters(self, build_id: str, counters: BuildCounters) -> None:
        if counters.is_zero():
            return
        with self.connect() as con:
            self._add_counters(con, build_id, counters, datetime.now(UTC).replace(tzinfo=None))

    @staticmethod
    def _add_counters(con: duckdb.DuckDBPyConnection, build_id: str, c: BuildCounters, now: datetime) -> None:
        values = [getattr(c, name) for name in COUNTER_COLUMNS]
        updates = ", ".join(f"{name} = teacher_builds.{name} + excluded.{name}" for name in COUNTER_COLUMNS)
        con.execute(
            f"INSERT INTO teacher_builds VALUES (?, ?, ?, {', '.join('?' * len(values))}) ON CONFLICT (build_id) "
            f"DO UPDATE SET updated_at = excluded.updated_at, {updates}",
            [build_id, now, now, *values],
        )

    def register_build(self, build_id: str) -> None:
        """Start a build's counters at zero, so a build that asks the teacher nothing (every partition fresh)
        still shows as the last build, with 0 backend calls."""
        now = datetime.now(UTC).replace(tzinfo=None)
        zeros = [0] * len(COUNTER_COLUMNS)
        with self.connect() as con:
            con.execute(
                f"INSERT INTO teacher_builds VALUES (?, ?, ?, {', '.join('?' * len(zeros))}) ON CONFLICT DO NOTHING",
                [build_id, now, now, *zeros],
            )

    def build_counters(self, build_id: str) -> BuildCounters:
        with self.connect() as con:
            row = con.execute(
                f"SELECT {', '.join(COUNTER_COLUMNS)} FROM teacher_builds WHERE build_id = ?", [build_id]
            ).fetchone()
        return BuildCounters(*row) if row else BuildCounters()

    def summary(self) -> dict[str, Any]:
        """{"last_build": {...}, "total": {...}, "calls": {status: n}} for `chronoprism status --json`."""
        cols = ", ".join(COUNTER_COLUMNS)
        with self.connect() as con:
            last = con.execute(
                f"SELECT build_id, started_at, updated_at, {cols} FROM teacher_builds "
                "ORDER BY started_at DESC, updated_at DESC LIMIT 1"
            ).fetchone()
            totals = con.execute(
                f"SELECT count(*), {', '.join(f'coalesce(sum({c}), 0)' for c in COUNTER_COLUMNS)} FROM teacher_builds"
            ).fetchone()
            by_status = dict(con.execute("SELECT status, count(*) FROM teacher_calls GROUP BY status").fetchall())
        last_build: dict[str, Any] = {"build_id": None, **BuildCounters().to_dict()}
        if last:
            last_build = {
                "build_id": last[0],
                "started_at": last[1].isoformat(),
                "updated_at": last[2].isoformat(),
                **BuildCounters(*last[3:]).to_dict(),
            }
        total = {"builds": totals[0], **BuildCounters(*totals[1:]).to_dict()}
        return {"last_build": last_build, "total": total, "calls": by_status}

    def calls_frame(self) -> pl.DataFrame:
        """The cache as a TEACHER_CALLS frame (for inspection, lineage and tests)."""
        columns = list(TEACHER_CALLS)
        with self.connect() as con:
            rows = con.execute(
                f"SELECT {', '.join(columns)} FROM teacher_calls ORDER BY created_at, call_id"
            ).fetchall()
        if not rows:
            return empty(TEACHER_CALLS)
        return conform(pl.DataFrame(rows, schema=columns, orient="row"), TEACHER_CALLS)


def register_build(home: Path, build_id: str) -> None:
    """For the CLI at the start of `chronoprism build`: record the build (zero counters) under its id."""
    TeacherCache.for_home(Path(home)).register_build(build_id)


def status_summary(home: Path) -> dict[str, Any]:
    """The `teacher` object of `chronoprism status --json`; zeros when no teacher call was ever made."""
    path = cache_path(Path(home))
    if not path.exists():
        return {
            "last_build": {"build_id": None, **BuildCounters().to_dict()},
            "total": {"builds": 0, **BuildCounters().to_dict()},
            "calls": {},
        }
    return TeacherCache(path).summary()
