"""The Teacher: backend + cache + parsing + repair + quarantine, for any batch of jobs.

A job is a request plus a parser. `Teacher.run(jobs)` answers every job from the cache or the backend, parses
each answer, and gives a job whose answer does not parse up to `max_retries` repair turns (the bad answer and what
was wrong with it go back to the model). Backend failures are retried as they were. A job still failing after that
is quarantined with reason `malformed_output` or `backend_error` and its raw text kept, so the caller can write it
to `rejects`. Identical requests are asked once.

Two ways through the backend, same outcome:
- **Streaming** (backends with `stream()`, the OpenAI-compatible server): every request goes into the backend's
  sliding window at once, in one hand-over; each answer is parsed the moment it arrives and committed to the cache's
  journal with whatever else arrived meanwhile (an appended, flushed line: microseconds, where opening the DuckDB
  file took ~10 ms idle and far more under load), and a repair or larger-budget retry goes straight back into the
  window. A `kill -9` loses only what was in flight. The journal is merged into the DuckDB file every
  `merge_interval_s`, once more while the last two windows are in flight when it holds many calls (so that the
  merge each run ends with, which the caller waits for, is short), and at the end of each run (teacher/cache.py).
  Each request's JSON is encoded once: hashed into its call id and stored by the commit. While answers stream,
  young objects are garbage-collected less often (`relaxed_gc`).
- **Rounds** (in-process backends): misses in batches of `batch_size` (one prompt kind, similar lengths, together),
  each batch committed as it returns; repairs form the next round.

Truncation (`truncation_retry`, on for server and vLLM backends): an answer that stopped at the token budget
(`finish_reason == "length"`, or JSON cut mid-object) is asked again with `max_new_tokens` doubled, up to
`max_new_tokens_cap`; these retries are counted (`truncated`, `retries_truncated`) apart from malformed output
and do not use up the repair turns.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from teacher.backends.base import TeacherBackend, TeacherRequest, TeacherResponse
from teacher.cache import (
    STATUS_FAILED,
    STATUS_MALFORMED,
    STATUS_OK,
    BuildCounters,
    CallRecord,
    TeacherCache,
    call_id_of,
    canonical_request,
    current_build_id,
)
from teacher.parse import MALFORMED_JSON, ParseResult, is_cut_json
from teacher.prompts import repair_request

logger = logging.getLogger(__name__)

MALFORMED_OUTPUT = "malformed_output"
BACKEND_ERROR = "backend_error"

Parser = Callable[[str], ParseResult]


@dataclass(slots=True)
class Job:
    """One thing to ask: `parse` None means the raw response is wanted (scoring reads logprobs)."""

    request: TeacherRequest
    parse: Parser | None = None
    ref: str = ""  # the input row this job is for (passage_id, situation_id): row_ref of a quarantine


@dataclass(slots=True)
class JobResult:
    value: Any = None  # the parsed value (or the response, for jobs without a parser)
    response: TeacherResponse | None = None
    call_id: str | None = None  # the call whose answer was used, or the last one tried
    attempts: int = 0
    quarantine: str | None = None  # MALFORMED_OUTPUT / BACKEND_ERROR
    detail: str = ""
    n_dropped_items: int = 0
    truncation_retries: int = 0  # times asked again with a doubled token budget (not counted in attempts)

    @property
    def ok(self) -> bool:
        return self.quarantine is None


@dataclass(slots=True)
class TeacherStats:
    """What a run cost and how it went; `counters` is what the cache's per-build table also gets."""

    counters: BuildCounters = field(default_factory=BuildCounters)
    jobs: int = 0
    jobs_ok: int = 0
    answers: int = 0  # answers given to a parser (first tries and repairs, from the cache or the backend)
    answers_parsed: int = 0
    repairs: int = 0
    dropped_items: int = 0  # items a parser dropped from answers that parsed (invalid, copied, duplicate)

    @property
    def parse_rate(self) -> float:
        """Share of answers that parsed."""
        return self.answers_parsed / self.answers if self.answers else 1.0

    @property
    def tokens_per_s(self) -> float:
        c = self.counters
        return c.completion_tokens / c.backend_seconds if c.backend_seconds > 0 else 0.0

    def _combine(self, other: TeacherStats, sign: int) -> TeacherStats:
        combined = TeacherStats(self.counters + other.counters if sign > 0 else self.counters - other.counters)
        for name in ("jobs", "jobs_ok", "answers", "answers_parsed", "repairs", "dropped_items"):
            setattr(combined, name, getattr(self, name) + sign * getattr(other, name))
        return combined

    def __add__(self, other: TeacherStats) -> TeacherStats:
        return self._combine(other, +1)

    def __sub__(self, other: TeacherStats) -> TeacherStats:
        return self._combine(other, -1)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.counters.to_dict(),
            "jobs": self.jobs,
            "jobs_ok": self.jobs_ok,
            "answers": self.answers,
            "answers_parsed": self.answers_parsed,
            "parse_rate": round(self.parse_rate, 4),
            "repairs": self.repairs,
            "dropped_items": self.dropped_items,
            "tokens_per_s": round(self.tokens_per_s, 2),
            "cost_usd": round(self.counters.cost_usd, 6),
        }


class Teacher:
    """Runs jobs through one backend with caching, repair and quarantine; see the module docstring."""

    def __init__(
        self,
        backend: TeacherBackend,
        cache: TeacherCache | None = None,
        *,
        batch_size: int = 8,
        max_retries: int = 2,
        retry_backoff_s: float = 0.0,
        build_id: str | None = None,
        truncation_retry: bool = False,
        max_new_tokens_cap: int = 2048,
        price_prompt_per_million: float | None = None,
        price_completion_per_million: float | None = None,
        streaming: bool | None = None,
        merge_interval_s: float = 5.0,
    ):
        self.backend = backend
        self.cache = cache
        self.batch_size = max(1, batch_size)
        self.max_retries = max(0, max_retries)
        self.retry_backoff_s = retry_backoff_s
        self.build_id = build_id or current_build_id()
        self.truncation_retry = truncation_retry
        self.max_new_tokens_cap = max_new_tokens_cap
        self.prices = (price_prompt_per_million or 0.0, price_completion_per_million or 0.0)
        self._streaming = streaming  # None: stream whenever the backend can
        self.merge_interval_s = merge_interval_s  # the cache journal goes into the DuckDB file this often
        self._merged_at = time.monotonic()
        self.stats = TeacherStats()
        self._unflushed = BuildCounters()
        self.on_batch: Callable[[TeacherStats], None] | None = None  # progress hook, called after each commit
        self._run_total = self._run_settled = 0
        self._retried_cut: set[str] = set()  # cut calls already re-asked in this run
        self._run_started = time.monotonic()

    @property
    def supports_logprobs(self) -> bool:
        return self.backend.supports_logprobs

    @property
    def streaming(self) -> bool:
        """Whether requests go one by one into the backend's window (see the module docstring)."""
        can = callable(getattr(self.backend, "stream", None))
        return can if self._streaming is None else self._streaming and can

    def run(self, jobs: list[Job]) -> list[JobResult]:
        """Answer every job; results come back in job order."""
        before = self.snapshot()
        results = [JobResult() for _ in jobs]
        requests = [job.request for job in jobs]
        self._run_total, self._run_settled, self._run_started = len(jobs), 0, time.monotonic()
        self._retried_cut = set()
        if self.streaming:
            with relaxed_gc:
                self._run_streaming(jobs, results, requests)
        else:
            self._run_rounds(jobs, results, requests)
        for result in results:
            if result.quarantine:
                self._count(quarantined=1)
                logger.warning("teacher: quarantined after %d attempts (%s)", result.attempts, result.quarantine)
        self.stats.jobs += len(jobs)
        self.stats.jobs_ok += sum(1 for r in results if r.ok)
        self._flush()
        logger.info("teacher run: %s", (self.stats - before).to_dict())
        return results

    def snapshot(self) -> TeacherStats:
        """A copy of the stats so far; `teacher.stats - snapshot` is the work done since."""
        return self.stats + TeacherStats()

    def progress(self) -> dict[str, Any]:
        """Live figures for progress lines: tokens/s, cost, the backend's window, the current run's ETA."""
        c = self.stats.counters
        live: dict[str, Any] = {
            "tokens_per_s": round(self.stats.tokens_per_s, 1),
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
        }
        if c.cost_usd:
            live["cost_usd"] = round(c.cost_usd, 4)
        window = getattr(self.backend, "window_size", None)
        if window is not None:
            live["window"] = window
        if self._run_settled and self._run_total > self._run_settled:
            per_job = (time.monotonic() - self._run_started) / self._run_settled
            live["eta_s"] = round(per_job * (self._run_total - self._run_settled), 1)
        return live

    # ------------------------------------------------------------------ one answer

    def _settle(self, i: int, job: Job, result: JobResult, requests: list[TeacherRequest], answer: tuple) -> bool:
        """Record one answer (call_id, response, parse result) for job `i`; True when the job must be asked again
        (then `requests[i]` holds the next request: the same, a repair turn, or a larger token budget)."""
        call_id, response, parsed = answer
        request = requests[i]
        if self._truncated(request, response, parsed):
            result.truncation_retries += 1
            requests[i] = dataclasses.replace(
                request, max_new_tokens=min(self.max_new_tokens_cap, 2 * request.max_new_tokens)
            )
            if call_id not in self._retried_cut:  # jobs sharing the cut call share its retry too
                self._retried_cut.add(call_id)
                self._count(retries_truncated=1)
            return True
        result.attempts += 1
        result.call_id, result.response = call_id, response
        result.quarantine, result.detail = None, ""
        if not response.ok:
            result.quarantine, result.detail = BACKEND_ERROR, response.error or "unknown error"
        elif parsed is None:
            result.value = response
        else:
            self.stats.answers += 1
            if parsed.ok:
                result.value, result.n_dropped_items = parsed.value, parsed.n_dropped_items
                self.stats.answers_parsed += 1
                self.stats.dropped_items += parsed.n_dropped_items
            else:
                result.quarantine = MALFORMED_OUTPUT
                result.detail = json.dumps({"parse": parsed.reason, "why": parsed.detail, "raw": response.text})
                requests[i] = repair_request(job.request, response.text, f"{parsed.reason}: {parsed.detail}")
                self._count(parse_failures=1)
        if result.quarantine and result.attempts <= self.max_retries:
            self.stats.repairs += result.quarantine == MALFORMED_OUTPUT
            return True
        self._run_settled += 1
        return False

    def _truncated(self, request: TeacherRequest, response: TeacherResponse, parsed: ParseResult | None) -> bool:
        """Whether to ask again with a larger budget: cut at the budget, and the budget can still grow."""
        if not self.truncation_retry or not response.ok or request.max_new_tokens >= self.max_new_tokens_cap:
            return False
        if response.finish_reason == "length":
            return True
        return parsed is not None and parsed.reason == MALFORMED_JSON and is_cut_json(response.text)

    # ------------------------------------------------------------------ rounds (in-process backends)

    def _run_rounds(self, jobs: list[Job], results: list[JobResult], requests: list[TeacherRequest]) -> None:
        pending = list(range(len(jobs)))
        round_no = 0
        while pending:
            if round_no and self.retry_backoff_s and any(results[i].quarantine == BACKEND_ERROR for i in pending):
                time.sleep(self.retry_backoff_s * 2 ** (round_no - 1))
            answers = self._answer([requests[i] for i in pending], [jobs[i].parse for i in pending])
            pending = [
                i
                for i, answer in zip(pending, answers, strict=True)
                if self._settle(i, jobs[i], results[i], requests, answer)
            ]
            round_no += 1

    def _answer(
        self, requests: list[TeacherRequest], parsers: list[Parser | None]
    ) -> list[tuple[str, TeacherResponse, ParseResult | None]]:
        """(call_id, response, parse result) per request: cache first, then the backend in committed batches."""
        keys = [self._identify(r) for r in requests]
        ids = [call_id for call_id, _ in keys]
        request_json = dict(keys)
        unique: dict[str, int] = {}
        for i, call_id in enumerate(ids):
            unique.setdefault(call_id, i)  # identical requests are asked once
        answers: dict[str, tuple[TeacherResponse, ParseResult | None]] = {}
        cached = self.cache.lookup(unique) if self.cache else {}
        for call_id, response in cached.items():
            answers[call_id] = (response, _parse(parsers[unique[call_id]], response))
        self._count(cache_hits=sum(1 for call_id in ids if call_id in cached))
        misses = [call_id for call_id in unique if call_id not in cached]
        misses.sort(key=lambda c: _batch_key(requests[unique[c]]))
        for start in range(0, len(misses), self.batch_size):
            batch = misses[start : start + self.batch_size]
            sent, sent_json = [requests[unique[c]] for c in batch], [request_json[c] for c in batch]
            answered = self._call_backend(sent, [parsers[unique[c]] for c in batch], batch, sent_json)
            answers.update(zip(batch, answered, strict=True))
        return [(call_id, *answers[call_id]) for call_id in ids]

    def _call_backend(
        self, batch: list[TeacherRequest], parsers: list[Parser | None], call_ids: list[str], sent_json: list[str]
    ) -> list[tuple[TeacherResponse, ParseResult | None]]:
        started = time.perf_counter()
        try:
            responses = self.backend.generate(batch)
            if len(responses) != len(batch):
                raise RuntimeError(f"backend returned {len(responses)} responses for {len(batch)} requests")
        except Exception as exc:  # a whole-batch failure: every request in it failed, all are retried
            logger.warning("teacher backend %s failed a batch of %d: %r", self.backend.name, len(batch), exc)
            elapsed = time.perf_counter() - started
            responses = [TeacherResponse.failed(f"{type(exc).__name__}: {exc}", elapsed / len(batch)) for _ in batch]
        parsed = [_parse(parser, response) for parser, response in zip(parsers, responses, strict=True)]
        self._commit(call_ids, batch, sent_json, responses, parsed, time.perf_counter() - started)
        return list(zip(responses, parsed, strict=True))

    # ------------------------------------------------------------------ streaming (server backends)

    def _run_streaming(self, jobs: list[Job], results: list[JobResult], requests: list[TeacherRequest]) -> None:
        stream = self.backend.stream()  # type: ignore[attr-defined]
        waiting: dict[str, tuple[str, list[int]]] = {}  # call id in flight -> (its request JSON, the jobs waiting)
        ready = list(range(len(jobs)))
        window = getattr(self.backend, "window_size", 0) or len(jobs)
        merged_tail = False
        busy_since = time.perf_counter()
        while ready or waiting:
            if ready:
                if not waiting:
                    busy_since = time.perf_counter()
                ready = self._dispatch(ready, jobs, results, requests, waiting, stream)
                continue
            if not merged_tail and stream.pending <= TAIL_WINDOWS * window and self.cache is not None:
                merged_tail = True
                if self.cache.unmerged_calls > TAIL_MERGE_WINDOWS * window:
                    self._merge()  # while the last answers fly, so that the run's final merge is short
            arrived = stream.wait(timeout=1.0)
            if arrived:
                now = time.perf_counter()
                elapsed, busy_since = now - busy_since, now
                ready = self._arrived(arrived, jobs, results, requests, waiting, elapsed)

    def _dispatch(
        self,
        ready: list[int],
        jobs: list[Job],
        results: list[JobResult],
        requests: list[TeacherRequest],
        waiting: dict[str, tuple[str, list[int]]],
        stream: Any,
    ) -> list[int]:
        """Answer `ready` jobs from the cache, join identical calls in flight, submit the rest (in one hand-over);
        returns the jobs whose cached answer sends them round again."""
        keys = {i: self._identify(requests[i]) for i in ready}
        cached = self.cache.lookup({c for c, _ in keys.values() if c not in waiting}) if self.cache else {}
        self._count(cache_hits=sum(1 for c, _ in keys.values() if c in cached))
        parsed: dict[str, ParseResult | None] = {}
        again, submit = [], []
        for i in ready:
            call_id, request_json = keys[i]
            if call_id in cached:
                if call_id not in parsed:
                    parsed[call_id] = _parse(jobs[i].parse, cached[call_id])
                if self._settle(i, jobs[i], results[i], requests, (call_id, cached[call_id], parsed[call_id])):
                    again.append(i)
            elif call_id in waiting:
                waiting[call_id][1].append(i)
            else:
                waiting[call_id] = (request_json, [i])
                submit.append((call_id, requests[i]))
        stream.submit_many(submit)
        return again

    def _arrived(
        self,
        arrived: list[tuple[str, TeacherResponse]],
        jobs: list[Job],
        results: list[JobResult],
        requests: list[TeacherRequest],
        waiting: dict[str, tuple[str, list[int]]],
        elapsed: float,
    ) -> list[int]:
        """Parse and commit answers that came in together; returns the jobs to ask again."""
        call_ids, sent, sent_json, responses, parsed, waiters = [], [], [], [], [], []
        for call_id, response in arrived:
            request_json, job_ids = waiting.pop(call_id)
            call_ids.append(call_id)
            sent.append(requests[job_ids[0]])
            sent_json.append(request_json)
            responses.append(response)
            parsed.append(_parse(jobs[job_ids[0]].parse, response))
            waiters.append(job_ids)
        self._commit(call_ids, sent, sent_json, responses, parsed, elapsed)
        return [
            i
            for call_id, response, result, job_ids in zip(call_ids, responses, parsed, waiters, strict=True)
            for i in job_ids
            if self._settle(i, jobs[i], results[i], requests, (call_id, response, result))
        ]

    # ------------------------------------------------------------------ accounting and commits

    def _identify(self, request: TeacherRequest) -> tuple[str, str]:
        """(call id, canonical request JSON): the JSON is encoded once, hashed into the id and kept for the
        commit, which stores it."""
        request_json = canonical_request(request)
        return call_id_of(self.backend.name, self.backend.model, request, request_json), request_json

    def _commit(
        self,
        call_ids: list[str],
        sent: list[TeacherRequest],
        sent_json: list[str],
        responses: list[TeacherResponse],
        parsed: list[ParseResult | None],
        elapsed: float,
    ) -> None:
        """Count answers fresh from the backend and write them (with the counters so far) in one transaction."""
        backend, model = self.backend.name, self.backend.model
        records = []
        for call_id, request, request_json, response, result in zip(
            call_ids, sent, sent_json, responses, parsed, strict=True
        ):
            status = STATUS_FAILED if not response.ok else STATUS_MALFORMED if result and not result.ok else STATUS_OK
            records.append(CallRecord(call_id, backend, model, request, response, status, request_json))
        prompt = sum(r.prompt_tokens for r in responses)
        completion = sum(r.completion_tokens for r in responses)
        self._count(
            backend_calls=len(responses),
            backend_errors=sum(1 for r in responses if not r.ok),
            backend_seconds=elapsed,
            completion_tokens=completion,
            prompt_tokens=prompt,
            truncated=sum(1 for r in responses if r.ok and r.finish_reason == "length"),
            cost_usd=(prompt * self.prices[0] + completion * self.prices[1]) / 1e6,
            **self._backend_counters(),
        )
        if self.cache is not None:
            self.cache.append(records, self.build_id, self._take_unflushed())
            if time.monotonic() - self._merged_at >= self.merge_interval_s:
                self._merge()
        if self.on_batch is not None:
            self.on_batch(self.stats)

    def _backend_counters(self) -> dict[str, int]:
        """What the backend counted itself (HTTP requests, retries by cause), for backends that count."""
        take = getattr(self.backend, "take_counters", None)
        return take() if callable(take) else {}

    def _count(self, **deltas: float) -> None:
        delta = BuildCounters(**deltas)
        self.stats.counters = self.stats.counters + delta
        self._unflushed = self._unflushed + delta

    def _take_unflushed(self) -> BuildCounters:
        delta, self._unflushed = self._unflushed, BuildCounters()
        return delta

    def _flush(self) -> None:
        """Everything so far into the DuckDB file: counters not yet written, then the journal."""
        if self.cache is not None:
            self.cache.append([], self.build_id, self._take_unflushed())
            self._merge()

    def _merge(self) -> None:
        self.cache.merge_journal()
        self._merged_at = time.monotonic()

    def close(self) -> None:
        self._flush()
        if self.cache is not None:
            self.cache.close()
        self.backend.close()


class _RelaxedGC:
    """Collects young objects every `GC_GEN0_STREAMING` allocations instead of 700 while answers stream (nested
    uses share one setting; the previous thresholds come back when the last ends).

    Each request's objects (task, HTTP request and response, buffers) live for its whole time at the server, far
    longer than 700 net allocations, so with the default thresholds nearly all were examined by a young
    collection, promoted, examined again by the middle one and promoted again, where full collections walked
    them: gc.callbacks counted 1.0-1.5 s of collections in a 5,120-request run at 256 in flight (2 loaded cores),
    0.1 s with this, and the event loop stands still while one runs. Collected or not, garbage without cycles is
    freed at once; only cycles wait longer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = gc.get_threshold()

    def __enter__(self) -> None:
        with self._lock:
            if not self._depth:
                self._saved = gc.get_threshold()
                gc.set_threshold(max(self._saved[0], GC_GEN0_STREAMING), *self._saved[1:])
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if not self._depth:
                gc.set_threshold(*self._saved)


GC_GEN0_STREAMING = 20_000
# a run's last windows in flight: merge the journal meanwhile when it holds more than this many windows of calls
# (fewer would not repay the merge's fixed cost: opening the file and the checkpoint, 30-150 ms)
TAIL_WINDOWS, TAIL_MERGE_WINDOWS = 2, 8
relaxed_gc = _RelaxedGC()  # public: a benchmark gives its bare peer loop the same setting


def _parse(parser: Parser | None, response: TeacherResponse) -> ParseResult | None:
    if parser is None or not response.ok:
        return None
    return parser(response.text)


def _batch_key(request: TeacherRequest) -> tuple[str, int]:
    """Requests of one prompt kind together (same system and few-shot turns: the local backend runs that shared
    prefix once per batch instead of prefilling it per row), then similar lengths (less padding)."""
    shared = "\x00".join(m["content"] for m in request.messages[:-1])
    return shared, sum(len(m["content"]) for m in request.messages)
