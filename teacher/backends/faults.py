"""A fault-injecting wrapper around any backend: timeouts, exceptions and garbage, a configurable share, seeded.

One seeded RNG, drawn in call order, so a run is reproducible. Each fault kind gets an equal part of `share` of
the calls. `exception` fails a whole batch the way a local model does (the wrapper raises), so it is drawn once
per batch with that part as its probability; `timeout` and `garbage` are drawn per request (an error response
after `timeout_delay_s`; a 200 with junk text that cannot parse). Counts of what was injected are kept in
`injected` so tests and `benchmarks/teacher_faults.py` can reconcile them with the Teacher's own accounting.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence

from teacher.backends.base import BackendError, TeacherBackend, TeacherRequest, TeacherResponse

FAULT_KINDS = ("timeout", "exception", "garbage")
GARBAGE = (
    "",
    "I'm sorry, I cannot help with that.",
    '{"situations": [',
    "<<<\x00\x07 \ufffd\ufffd>>>",
    "[[[[{{{{",
    '{"items": "none"}',
)


class InjectedFault(BackendError):
    """An exception the fault wrapper raised on purpose."""


class FaultInjectingBackend:
    """Wraps `inner`; the Teacher sees the inner backend's name and model, so cache keys do not change."""

    def __init__(
        self,
        inner: TeacherBackend,
        share: float = 0.2,
        seed: int = 0,
        kinds: Sequence[str] = FAULT_KINDS,
        timeout_delay_s: float = 0.0,
    ):
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown or not kinds:
            raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}, got {list(kinds)}")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be within [0, 1], got {share}")
        self.inner = inner
        self.share = share
        self.kinds = tuple(kinds)
        self.timeout_delay_s = timeout_delay_s
        self._rng = random.Random(seed)
        self.injected: Counter = Counter()
        self.requests_seen = 0
        self.faulted_calls = 0  # calls that got a fault (every call of a batch that raised)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def supports_logprobs(self) -> bool:
        return self.inner.supports_logprobs

    @property
    def supports_prefix(self) -> bool:
        return self.inner.supports_prefix

    def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        self.requests_seen += len(requests)
        # each kind takes an equal part of `share`: an exception fails a whole batch, so it is drawn per batch
        part = self.share / len(self.kinds)
        if "exception" in self.kinds and self._rng.random() < part:
            self.injected["exception"] += 1
            self.faulted_calls += len(requests)
            raise InjectedFault(f"injected exception in a batch of {len(requests)}")
        per_request = [k for k in self.kinds if k != "exception"]
        draws = [
            self._rng.choice(per_request) if per_request and self._rng.random() < part * len(per_request) else None
            for _ in requests
        ]
        self.faulted_calls += sum(1 for d in draws if d)
        healthy = [r for r, fault in zip(requests, draws, strict=True) if fault is None]
        answers = iter(self.inner.generate(healthy) if healthy else [])
        responses = []
        for fault in draws:
            if fault is None:
                responses.append(next(answers))
            elif fault == "timeout":
                self.injected["timeout"] += 1
                if self.timeout_delay_s:
                    time.sleep(self.timeout_delay_s)
                responses.append(TeacherResponse.failed("TimeoutError: injected timeout", self.timeout_delay_s))
            else:
                self.injected["garbage"] += 1
                text = self._rng.choice(GARBAGE)
                responses.append(TeacherResponse(text=text, completion_tokens=len(text) // 4, finish_reason="stop"))
        return responses

    def close(self) -> None:
        self.inner.close()
