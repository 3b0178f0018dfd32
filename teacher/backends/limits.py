"""Flow control for a server-backed teacher: an adaptive in-flight window, per-minute budgets, backoff.

- `AdaptiveWindow`: at most `limit` requests in flight; a new one starts the moment one finishes. On a 429 the
  limit halves (at most once per `cooldown_s`, so one burst of 429s from the same window counts once); each
  success adds 1/limit, so a full window of successes grows it by one, up to the configured maximum (AIMD, as
  TCP does). The current limit is what progress output shows as `window`.
- `MinuteBudget`: requests or tokens per minute as a token bucket refilled continuously, holding at most one
  second's worth, so requests are paced evenly instead of a minute's burst followed by a wall of 429s. A request
  larger than the bucket may take it negative (debt): the next ones wait until it is repaid.
- `backoff_s`: full-jitter exponential backoff (a uniform draw below base * 2**attempt, capped), so clients that
  failed together do not retry together. `retry_after_s` reads `retry-after-ms` (OpenAI) or `Retry-After`
  (seconds or an HTTP date).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

MAX_BACKOFF_S = 60.0


class AdaptiveWindow:
    """At most `size` holders at once, first come first served; the size follows AIMD on rate limiting.

    Waiters queue in a deque and a release wakes only as many as there is room for (a condition variable would
    wake every one of thousands of queued requests on each release)."""

    def __init__(self, max_limit: int, cooldown_s: float = 1.0, adaptive: bool = True):
        self.max_limit = max(1, int(max_limit))
        self.limit = float(self.max_limit)
        self.cooldown_s = cooldown_s
        self.adaptive = adaptive
        self.in_flight = 0
        self.peak = 0
        self.shrinks = 0
        self._last_shrink = -float("inf")
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def size(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> None:
        if self.in_flight < self.size and not self._waiters:
            self._enter()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter  # _wake() counted us in before setting the result

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _enter(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._enter()
                waiter.set_result(None)

    def on_success(self) -> None:
        if self.adaptive and self.limit < self.max_limit:
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
            self._wake()

    def on_rate_limited(self) -> None:
        now = time.monotonic()
        if self.adaptive and now - self._last_shrink >= self.cooldown_s:
            self.limit = max(1.0, self.limit / 2)
            self._last_shrink = now
            self.shrinks += 1


class MinuteBudget:
    """`per_minute` units (requests or tokens) a minute, paced; see the module docstring."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self._at = time.monotonic()
        self._lock: asyncio.Lock | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self._at) * self.rate)
        self._at = now

    async def take(self, amount: float = 1.0) -> None:
        """Wait until the bucket holds `amount` (or is full, for amounts larger than it), then take it."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # first come, first served
            need = min(amount, self.capacity)
            self._refill()
            while self.level < need:
                await asyncio.sleep((need - self.level) / self.rate)
                self._refill()
            self.level -= amount

    def give_back(self, amount: float) -> None:
        """Return what was reserved but not used (a token estimate above the actual usage)."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


def backoff_s(attempt: int, base_s: float, rng: random.Random | None = None, cap_s: float = MAX_BACKOFF_S) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    if base_s <= 0:
        return 0.0
    return (rng or random).uniform(0.0, min(cap_s, base_s * 2**attempt))


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait, from `retry-after-ms` or `Retry-After`; None when it does not say."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
