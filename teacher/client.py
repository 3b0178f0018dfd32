"""The Teacher: backend + cache + parsing + repair + quarantine, for any batch of jobs.

A job is a request plus a parser. `Teacher.run(jobs)` answers every job from the cache or the backend (in batches
of `batch_size`, each batch committed to the cache as soon as it returns), parses each answer, and gives a job
whose answer does not parse up to `max_retries` repair turns (the bad answer and what was wrong with it go back to
the model). Backend failures are retried as they were. A job still failing after that is quarantined with reason
`malformed_output` or `backend_error` and its raw text kept, so the caller can write it to `rejects`.
"""

from __future__ import annotations

import json
import logging
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
    current_build_id,
)
from teacher.parse import ParseResult
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
    prompt_tokens: int = 0

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
        for name in ("jobs", "jobs_ok", "answers", "answers_parsed", "repairs", "dropped_items", "prompt_tokens"):
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
    ):
        self.backend = backend
        self.cache = cache
        self.batch_size = max(1, batch_size)
        self.max_retries = max(0, max_retries)
        self.retry_backoff_s = retry_backoff_s
        self.build_id = build_id or current_build_id()
        self.stats = TeacherStats()
        self._unflushed = BuildCounters()
        self.on_batch: Callable[[TeacherStats], None] | None = None  # progress hook, called after each batch

    @property
    def supports_logprobs(self) -> bool:
        return self.backend.supports_logprobs

    def run(self, jobs: list[Job]) -> list[JobResult]:
        """Answer every job; results come back in job order."""
        before = self.snapshot()
        results = [JobResult() for _ in jobs]
        requests = [job.request for job in jobs]
        pending = list(range(len(jobs)))
        for attempt in range(self.max_retries + 1):
            if not pending:
                break
            if attempt and self.retry_backoff_s and any(results[i].quarantine == BACKEND_ERROR for i in pending):
                time.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
            answers = self._answer([requests[i] for i in pending], [jobs[i].parse for i in pending])
            retry = []
            for i, (call_id, response, parsed) in zip(pending, answers, strict=True):
                result = results[i]
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
                        result.detail = json.dumps(
                            {"parse": parsed.reason, "why": parsed.detail, "raw": response.text}
                        )
                        requests[i] = repair_request(
                            jobs[i].request, response.text, f"{parsed.reason}: {parsed.detail}"
                        )
                        self._count(parse_failures=1)
                if result.quarantine and attempt < self.max_retries:
                    retry.append(i)
                    self.stats.repairs += result.quarantine == MALFORMED_OUTPUT
            pending = retry
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

    # ------------------------------------------------------------------ one round of calls

    def _answer(
        self, requests: list[TeacherRequest], parsers: list[Parser | None]
    ) -> list[tuple[str, TeacherResponse, ParseResult | None]]:
        """(call_id, response, parse result) per request: cache first, then the backend in committed batches."""
        ids = [call_id_of(self.backend.name, self.backend.model, r) for r in requests]
        unique: dict[str, int] = {}
        for i, call_id in enumerate(ids):
            unique.setdefault(call_id, i)  # identical requests are asked once
        answers: dict[str, tuple[TeacherResponse, ParseResult | None]] = {}
        cached = self.cache.lookup(unique) if self.cache else {}
        for call_id, response in cached.items():
            answers[call_id] = (response, _parse(parsers[unique[call_id]], response))
        self._count(cache_hits=sum(1 for call_id in ids if call_id in cached))
        misses = [call_id for call_id in unique if call_id not in cached]
        misses.sort(key=lambda c: _prompt_chars(requests[unique[c]]))  # similar lengths batch with less padding
        for start in range(0, len(misses), self.batch_size):
            batch = misses[start : start + self.batch_size]
            for call_id, answer in zip(
                batch,
                self._call_backend([requests[unique[c]] for c in batch], [parsers[unique[c]] for c in batch], batch),
                strict=True,
            ):
                answers[call_id] = answer
        return [(call_id, *answers[call_id]) for call_id in ids]

    def _call_backend(
        self, batch: list[TeacherRequest], parsers: list[Parser | None], call_ids: list[str]
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
        elapsed = time.perf_counter() - started
        out, records = [], []
        for request, response, parser, call_id in zip(batch, responses, parsers, call_ids, strict=True):
            parsed = _parse(parser, response)
            status = STATUS_FAILED if not response.ok else STATUS_MALFORMED if parsed and not parsed.ok else STATUS_OK
            records.append(CallRecord(call_id, self.backend.name, self.backend.model, request, response, status))
            out.append((response, parsed))
            self.stats.prompt_tokens += response.prompt_tokens
        errors = sum(1 for r in responses if not r.ok)
        self._count(
            backend_calls=len(batch),
            backend_errors=errors,
            backend_seconds=elapsed,
            completion_tokens=sum(r.completion_tokens for r in responses),
        )
        if self.cache is not None:
            self.cache.record(records, self.build_id, self._take_unflushed())
        if self.on_batch is not None:
            self.on_batch(self.stats)
        return out

    def _count(self, **deltas: float) -> None:
        delta = BuildCounters(**deltas)
        self.stats.counters = self.stats.counters + delta
        self._unflushed = self._unflushed + delta

    def _take_unflushed(self) -> BuildCounters:
        delta, self._unflushed = self._unflushed, BuildCounters()
        return delta

    def _flush(self) -> None:
        if self.cache is not None:
            self.cache.add_counters(self.build_id, self._take_unflushed())

    def close(self) -> None:
        self._flush()
        self.backend.close()


def _parse(parser: Parser | None, response: TeacherResponse) -> ParseResult | None:
    if parser is None or not response.ok:
        return None
    return parser(response.text)


def _prompt_chars(request: TeacherRequest) -> int:
    return sum(len(m["content"]) for m in request.messages)
