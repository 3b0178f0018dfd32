"""The generation cache: every teacher call, keyed by a content hash, in DuckDB at `<home>/cache/teacher.duckdb`.

- **Keys.** `call_id = sha256(backend, model, request payload)`; the payload holds the messages (prompt and
  few-shot), the assistant prefix, every sampling parameter, the JSON schema and the prompt version. Anything that
  can change an answer changes the key, so a rebuild with nothing changed makes 0 backend calls.
- **Commits.** Answers are committed the moment they arrive by appending them to this process's *journal*
  (`cache/journal/<pid>-<id>.jsonl`, one JSON line per call, flushed to the OS at once: cheap enough for hundreds
  of answers a second, where opening the DuckDB file per commit was not). The journal is merged into the DuckDB
  file every `merge_interval_s`, at the end of each `Teacher.run` and on close; the writer keeps what its journal
  holds in memory too and merges from there (no reading back). A run killed with `kill -9` therefore loses only
  what was in flight: the next process that opens the cache merges every journal whose writer is gone (each
  writer holds a lock on its journal; the kernel drops it when the process dies), reading it from the file. A
  flushed line survives the process, not a power cut (no fsync per answer).
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
import operator
import os
import uuid
from collections import Counter
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
    # [issue 15] server-scale accounting: tokens from `usage`, HTTP requests and retries by cause, cost
    prompt_tokens: int = 0
    http_requests: int = 0  # HTTP requests sent (openai backend): backend calls plus their retries
    truncated: int = 0  # answers cut at the token budget (finish_reason "length", or JSON cut mid-object)
    retries_truncated: int = 0  # asked again with a doubled token budget
    retries_rate_limited: int = 0  # 429s waited out
    retries_server_error: int = 0  # 5xx (and 408/409/425) retried
    retries_connection: int = 0  # connection errors and timeouts retried
    cost_usd: float = 0.0  # from teacher.price_*_per_million; 0 when no price is set

    # the Teacher adds counters at every commit (hundreds a second at server scale): a precomputed getter, not
    # dataclasses.fields() and a getattr per field
    def __add__(self, other: BuildCounters) -> BuildCounters:
        return BuildCounters(*map(operator.add, _counter_values(self), _counter_values(other)))

    def __sub__(self, other: BuildCounters) -> BuildCounters:
        return BuildCounters(*map(operator.sub, _counter_values(self), _counter_values(other)))

    def is_zero(self) -> bool:
        return not any(_counter_values(self))

    def to_dict(self) -> dict[str, Any]:
        return dict(zip(COUNTER_COLUMNS, _counter_values(self), strict=True))


COUNTER_COLUMNS = [f.name for f in fields(BuildCounters)]
_counter_values = operator.attrgetter(*COUNTER_COLUMNS)
# [issue 15] counters added after the first release: ALTERed into existing cache files, so column order is stable
_ADDED_COUNTERS = COUNTER_COLUMNS[COUNTER_COLUMNS.index("prompt_tokens") :]
_MIGRATE = "".join(
    f"ALTER TABLE teacher_builds ADD COLUMN IF NOT EXISTS {name} "
    f"{'DOUBLE' if name == 'cost_usd' else 'BIGINT'} DEFAULT 0;\n"
    for name in _ADDED_COUNTERS
)
_CALL_COLUMNS = {
    "call_id": pl.String, "backend": pl.String, "model": pl.String, "task": pl.String, "prompt_version": pl.String,
    "request": pl.String, "response": pl.String, "response_json": pl.String, "status": pl.String,
    "attempts": pl.Int32, "latency_s": pl.Float64, "created_at": pl.Datetime("us"), "build_id": pl.String,
}  # fmt: skip
_BUILD_COLUMNS = ", ".join(["build_id", "started_at", "updated_at", *COUNTER_COLUMNS])


def with_rates(counters: dict[str, Any]) -> dict[str, Any]:
    """Counters plus what is derived from them: completion tokens per second of backend time."""
    seconds = counters.get("backend_seconds") or 0.0
    rate = counters.get("completion_tokens", 0) / seconds if seconds > 0 else 0.0
    return {**counters, "tokens_per_s": round(rate, 2), "cost_usd": round(counters.get("cost_usd", 0.0), 6)}


@dataclass(slots=True)
class CallRecord:
    """One finished backend call, as the Teacher hands it to the cache."""

    call_id: str
    backend: str
    model: str
    request: TeacherRequest
    response: TeacherResponse
    status: str
    request_json: str = ""  # canonical_request(request) when the caller has it already (it made the call id)


_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False)  # json.dumps(..., sort_keys, ensure_ascii=False)
_PLAIN = json.JSONEncoder(ensure_ascii=False)  # made once: json.dumps with options builds an encoder per call


def canonical_request(request: TeacherRequest) -> str:
    """The request as stored in the cache (`request` column) and hashed into its call id: sorted-key JSON."""
    return _CANONICAL.encode(request.payload())


def call_id_of(backend: str, model: str, request: TeacherRequest, request_json: str | None = None) -> str:
    """The cache key: a content hash of everything that can change the answer. `request_json` is
    `canonical_request(request)` when the caller has it (it keeps it for the commit: one encoding per call)."""
    return stable_id(backend, model, canonical_request(request) if request_json is None else request_json)


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
        self._journal: _Journal | None = None
        self._journaled: dict[str, tuple[str, str]] = {}  # call id -> (status, response json), not yet merged
        # what this process's journal holds, kept in memory so that a merge does not read and decode it back
        self._unmerged_rows: list[tuple] = []
        self._unmerged_counters: dict[str, BuildCounters] = {}

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
                    con.execute(_MIGRATE)
                    self._ready = True
                    self._recover_journals(con)
                yield con
            finally:
                con.close()

    def lookup(self, call_ids: Iterable[str]) -> dict[str, TeacherResponse]:
        """Cached answers (status ok or malformed) for the ids that have one, this process's journal included."""
        ids = sorted(set(call_ids))
        if not ids:
            return {}
        found = {c: self._journaled[c] for c in ids if c in self._journaled}
        hits = {c: payload for c, (status, payload) in found.items() if status != STATUS_FAILED}
        rest = [c for c in ids if c not in found]
        if rest:
            with self.connect() as con:
                rows = con.execute(
                    "SELECT call_id, response_json FROM teacher_calls WHERE status <> ? AND call_id IN "
                    "(SELECT unnest(?::VARCHAR[]))",
                    [STATUS_FAILED, rest],
                ).fetchall()
            hits.update(rows)
        return {call_id: TeacherResponse.from_payload(json.loads(payload)) for call_id, payload in hits.items()}

    def record(self, records: list[CallRecord], build_id: str, counters: BuildCounters | None = None) -> None:
        """Store one batch of calls (and the build's counter increments) in one transaction."""
        now = _now()
        with self.connect() as con:
            _insert(con, [_row(r, build_id, now) for r in records], [(build_id, counters)] if counters else [], now)

    def append(self, records: list[CallRecord], build_id: str, counters: BuildCounters | None = None) -> None:
        """Commit calls (and counter increments) to this process's journal: durable once this returns (for a
        killed process, not a power cut), in the DuckDB file after the next `merge_journal()`."""
        if not records and (counters is None or counters.is_zero()):
            return  # nothing to commit: no journal file for a run that asked nothing
        if self._journal is None:
            self._journal = _Journal(self.path.parent / JOURNAL_DIR)
        now = _now()
        stamp = now.isoformat()
        rows = [_row(r, build_id, now) for r in records]
        lines = [_PLAIN.encode({"call": [*row[:11], stamp, row[12]]}) for row in rows]
        if counters is not None and not counters.is_zero():
            lines.append(_PLAIN.encode({"build_id": build_id, "counters": counters.to_dict()}))
            self._unmerged_counters[build_id] = self._unmerged_counters.get(build_id, BuildCounters()) + counters
        self._journal.write(lines)
        self._unmerged_rows += rows
        for row in rows:
            self._journaled[row[0]] = (row[8], row[7])

    @property
    def unmerged_calls(self) -> int:
        """Calls in this process's journal, not yet in the DuckDB file."""
        return len(self._unmerged_rows)

    def merge_journal(self) -> None:
        """Move this process's journal into the DuckDB file (one transaction) and empty it. What it holds is
        also in memory (`append` kept it): inserted from there, the file is only read back by `_recover_journals`
        when its writer died."""
        if self._journal is None or self._journal.empty:
            return
        with self.connect() as con:
            _insert(con, self._unmerged_rows, list(self._unmerged_counters.items()), _now())
            self._journal.truncate()
        self._unmerged_rows, self._unmerged_counters = [], {}
        self._journaled.clear()

    def close(self) -> None:
        """Merge and remove this process's journal."""
        self.merge_journal()
        if self._journal is not None:
            self._journal.remove()
            self._journal = None

    def _recover_journals(self, con: duckdb.DuckDBPyConnection) -> None:
        """Merge the journals of processes that are gone (killed mid-run): their answers count as committed."""
        folder = self.path.parent / JOURNAL_DIR
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            if self._journal is not None and path == self._journal.path:
                continue
            lock = FileLock(str(path) + ".lock", timeout=0)
            try:
                lock.acquire()
            except TimeoutError:
                continue  # its writer is alive
            try:
                if path.exists():
                    merged = _merge(con, path)
                    logger.info("teacher cache: recovered %d calls from the journal of a stopped run", merged)
                    path.unlink()
            finally:
                lock.release()
                Path(str(path) + ".lock").unlink(missing_ok=True)

    def add_counters(self, build_id: str, counters: BuildCounters) -> None:
        if counters.is_zero():
            return
        with self.connect() as con:
            self._add_counters(con, build_id, counters, _now())

    @staticmethod
    def _add_counters(con: duckdb.DuckDBPyConnection, build_id: str, c: BuildCounters, now: datetime) -> None:
        values = [getattr(c, name) for name in COUNTER_COLUMNS]
        updates = ", ".join(f"{name} = teacher_builds.{name} + excluded.{name}" for name in COUNTER_COLUMNS)
        con.execute(
            f"INSERT INTO teacher_builds ({_BUILD_COLUMNS}) VALUES (?, ?, ?, {', '.join('?' * len(values))}) "
            "ON CONFLICT (build_id) "
            f"DO UPDATE SET updated_at = excluded.updated_at, {updates}",
            [build_id, now, now, *values],
        )

    def register_build(self, build_id: str) -> None:
        """Start a build's counters at zero, so a build that asks the teacher nothing (every partition fresh)
        still shows as the last build, with 0 backend calls."""
        now = _now()
        zeros = [0] * len(COUNTER_COLUMNS)
        with self.connect() as con:
            con.execute(
                f"INSERT INTO teacher_builds ({_BUILD_COLUMNS}) VALUES (?, ?, ?, {', '.join('?' * len(zeros))}) "
                "ON CONFLICT DO NOTHING",
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
        last_build: dict[str, Any] = {"build_id": None, **with_rates(BuildCounters().to_dict())}
        if last:
            last_build = {
                "build_id": last[0],
                "started_at": last[1].isoformat(),
                "updated_at": last[2].isoformat(),
                **with_rates(BuildCounters(*last[3:]).to_dict()),
            }
        total = {"builds": totals[0], **with_rates(BuildCounters(*totals[1:]).to_dict())}
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


JOURNAL_DIR = "journal"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _row(r: CallRecord, build_id: str, now: datetime) -> tuple:
    """One `teacher_calls` row, in `_CALL_COLUMNS` order."""
    return (
        r.call_id,
        r.backend,
        r.model,
        r.request.task,
        r.request.prompt_version,
        r.request_json or canonical_request(r.request),
        r.response.text,
        _PLAIN.encode(r.response.payload()),
        r.status,
        1,
        r.response.latency_s,
        now,
        build_id,
    )


def _insert(
    con: duckdb.DuckDBPyConnection,
    rows: list[tuple],
    counters: list[tuple[str, BuildCounters | None]],
    now: datetime,
) -> None:
    """Upsert call rows (a repeated call id is a retry: attempts + 1) and add counters, in one transaction."""
    con.execute("BEGIN TRANSACTION")
    if rows:
        # one INSERT ... SELECT over an Arrow table: executemany runs the statement once per row (~30 ms a row)
        latest = {row[0]: row for row in rows}  # one row per id within a batch; attempts count earlier ones
        attempts = Counter(row[0] for row in rows)
        rows = [(*row[:9], attempts[row[0]], *row[10:]) for row in latest.values()]
        table = pl.DataFrame(rows, schema=_CALL_COLUMNS, orient="row").to_arrow()
        con.register("new_calls", table)
        try:  # usually every call is new: a plain INSERT costs ~40 % less than the upsert
            con.execute("INSERT INTO teacher_calls SELECT * FROM new_calls")
        except duckdb.ConstraintException:  # a retried call already stored: the transaction is void, upsert
            con.execute("ROLLBACK")
            con.execute("BEGIN TRANSACTION")
            con.register("new_calls", table)  # the rollback dropped it
            con.execute(
                "INSERT INTO teacher_calls SELECT * FROM new_calls ON CONFLICT (call_id) "
                "DO UPDATE SET response = excluded.response, response_json = excluded.response_json, "
                "status = excluded.status, attempts = teacher_calls.attempts + excluded.attempts, "
                "latency_s = excluded.latency_s, created_at = excluded.created_at, build_id = excluded.build_id"
            )
        con.unregister("new_calls")
    per_build: dict[str, BuildCounters] = {}
    for build_id, delta in counters:  # one upsert per build: each costs ~20 ms
        if delta is not None:
            per_build[build_id] = per_build.get(build_id, BuildCounters()) + delta
    for build_id, delta in per_build.items():
        if not delta.is_zero():
            TeacherCache._add_counters(con, build_id, delta, now)
    con.execute("COMMIT")


def _merge(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Insert a journal's calls and counters; a line cut by a kill mid-write is skipped (that call was in flight).
    Returns the number of calls."""
    rows: list[tuple] = []
    counters: list[tuple[str, BuildCounters | None]] = []
    with open(path, encoding="utf-8") as journal:
        for line in journal:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "counters" in entry:
                counters.append((entry["build_id"], BuildCounters(**entry["counters"])))
            else:
                row = entry["call"]
                row[11] = datetime.fromisoformat(row[11])
                rows.append(tuple(row))
    _insert(con, rows, counters, _now())
    return len(rows)


class _Journal:
    """One process's append-only file of committed calls, locked while its writer lives."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        self._lock = FileLock(str(self.path) + ".lock", timeout=0)
        self._lock.acquire()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (open for the writer's lifetime)
        self.empty = True

    def write(self, lines: list[str]) -> None:
        """Append JSON lines: a call (`{"call": row}`, its time in ISO format) or counters (`{"build_id",
        "counters"}`)."""
        if lines:
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()  # in the OS now: a kill -9 of this process cannot lose it
            self.empty = False

    def truncate(self) -> None:
        self._file.truncate(0)
        self._file.seek(0)
        self.empty = True

    def remove(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)
        self._lock.release()
        Path(self._lock.lock_file).unlink(missing_ok=True)


def register_build(home: Path, build_id: str) -> None:
    """For the CLI at the start of `chronoprism build`: record the build (zero counters) under its id."""
    TeacherCache.for_home(Path(home)).register_build(build_id)


def status_summary(home: Path) -> dict[str, Any]:
    """The `teacher` object of `chronoprism status --json`; zeros when no teacher call was ever made."""
    path = cache_path(Path(home))
    if not path.exists():
        return {
            "last_build": {"build_id": None, **with_rates(BuildCounters().to_dict())},
            "total": {"builds": 0, **with_rates(BuildCounters().to_dict())},
            "calls": {},
        }
    return TeacherCache(path).summary()


def cached_calls(home: Path, call_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """[issue 18] The stored calls by id (backend, model, task, prompt_version, request as a dict, raw response
    text, status, attempts, created_at), for `chronoprism why`; empty when the cache does not exist."""
    path = cache_path(Path(home))
    ids = sorted({i for i in call_ids if i})
    if not path.exists() or not ids:
        return {}
    columns = ["call_id", "backend", "model", "task", "prompt_version", "request", "response", "status", "attempts"]
    with TeacherCache(path).connect() as con:
        rows = con.execute(
            f"SELECT {', '.join(columns)}, created_at FROM teacher_calls WHERE call_id IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [ids],
        ).fetchall()
    calls = {}
    for row in rows:
        call = dict(zip([*columns, "created_at"], row, strict=True))
        call["request"] = json.loads(call["request"]) if call["request"] else {}
        call["created_at"] = call["created_at"].isoformat() if call["created_at"] else None
        calls[call["call_id"]] = call
    return calls
