"""Flow control: the AIMD window, per-minute budgets, Retry-After parsing, jittered backoff."""

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from teacher.backends.limits import AdaptiveWindow, MinuteBudget, backoff_s, retry_after_s


def test_the_window_halves_on_429_once_per_cooldown_and_grows_back_by_one_per_window():
    window = AdaptiveWindow(64, cooldown_s=1000)
    window.on_rate_limited()
    window.on_rate_limited()  # the same burst: counted once
    assert window.size == 32 and window.shrinks == 1
    for _ in range(33):  # a window's worth of successes (each adds 1/limit while the limit creeps up)
        window.on_success()
    assert window.size == 33
    for _ in range(10_000):
        window.on_success()
    assert window.size == 64  # never above the configured maximum
    fixed = AdaptiveWindow(8, adaptive=False)
    fixed.on_rate_limited()
    assert fixed.size == 8


def test_the_window_admits_at_most_its_size_first_come_first_served():
    async def scenario() -> tuple[list[int], int]:
        window = AdaptiveWindow(3)
        order, running = [], 0

        async def work(i: int) -> None:
            nonlocal running
            await window.acquire()
            running += 1
            assert running <= 3
            order.append(i)
            await asyncio.sleep(0.001)
            running -= 1
            window.release()

        await asyncio.gather(*(work(i) for i in range(20)))
        return order, window.peak

    order, peak = asyncio.run(scenario())
    assert order == list(range(20)) and peak == 3


def test_a_minute_budget_holds_one_seconds_worth_and_lets_a_large_request_go_into_debt():
    budget = MinuteBudget(600)  # 10 a second
    assert budget.capacity == 10

    async def take_all() -> None:
        for _ in range(10):
            await budget.take(1)

    asyncio.run(take_all())
    assert budget.level < 1
    tokens = MinuteBudget(60_000)  # 1000 tokens a second
    asyncio.run(tokens.take(5000))  # waits for a full bucket, then goes 4000 into debt
    assert tokens.level < -3000
    tokens.give_back(1000)
    assert tokens.level < -2000


def test_retry_after_is_read_from_milliseconds_seconds_or_a_date():
    assert retry_after_s({"retry-after-ms": "1500", "Retry-After": "2"}) == 1.5
    assert retry_after_s({"Retry-After": "3"}) == 3.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_s({"Retry-After": later}) <= 30
    assert retry_after_s({}) is None and retry_after_s({"Retry-After": "soon"}) is None


@pytest.mark.parametrize("attempt", [0, 3, 20])
def test_backoff_is_jittered_below_the_exponential_bound(attempt):
    rng = random.Random(0)
    draws = [backoff_s(attempt, 0.5, rng) for _ in range(200)]
    bound = min(60.0, 0.5 * 2**attempt)
    assert all(0 <= d <= bound for d in draws) and len(set(draws)) > 150
    assert backoff_s(attempt, 0.0) == 0.0
