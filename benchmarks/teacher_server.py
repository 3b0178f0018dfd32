"""Teacher at server scale, against the simulated OpenAI-compatible server (teacher/testing/sim_server.py).

Four scenarios, each run `--runs` times (median and min-max spread printed), through the real path: a Teacher
with the generation cache over the OpenAI backend, the server a separate process on a loopback port.

1. **Throughput**: 100 ms + 2 ms/token per answer (40 tokens: 0.18 s), capacity 256. After a warm-up (event loop,
   connections, cache file), requests/s at 1, 8, 64 and 256 in flight vs the ideal (in-flight / 0.18 s; the ideal
   time counts whole waves, ceil(N / in-flight) x 0.18 s), 40 waves a point. Beside ours: the window without the
   cache, and a bare aiohttp loop (no Teacher) against the same server: what this machine allows at all.
   Goal: >= 90 % of ideal at 64 and 256. The peer row is this project before issue 15: rounds of 8 requests,
   4 in flight, each round waiting for its slowest answer.
2. **Rate limit**: the server allows 600 requests/minute (10/s, burst 10) and answers more with 429 +
   Retry-After; the client starts at 64 in flight and knows no limit. Goal: every request answered once, nothing
   lost or duplicated in the cache, total time <= 1.2 x the limit's minimum ((N - 10) / 10 s + one answer).
3. **Truncation**: 10 % of prompts need 100 tokens, asked with max_tokens 64, so they come back cut with
   finish_reason "length". Goal: all recovered by the doubled-budget retry, counted as `retries_truncated`.
4. **kill -9**: a worker process runs 2,000 requests at 64 in flight and is killed with SIGKILL mid-way; a rerun
   finishes. Goal: every request answered, and no request that had been committed to the cache asked again
   (the server's per-request answer counts prove it).

    python benchmarks/teacher_server.py                  # 3 runs of each, a few minutes on 2 cores
    python benchmarks/teacher_server.py --runs 5 --scale 4 --rate-requests 600 --kill-requests 10000

Exits non-zero when an agreement check fails (an unanswered, lost or twice-answered request, an unrecovered
truncation); speed goals are reported, not enforced (shared CPUs make timings noisy).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from teacher.cache import TeacherCache  # noqa: E402
from teacher.testing.load import load_jobs, load_teacher  # noqa: E402
from teacher.testing.sim_server import SimServerProcess, request_key  # noqa: E402

LATENCY_S, PER_TOKEN_S, ANSWER_TOKENS, CAPACITY = 0.1, 0.002, 40, 256
REQUEST_S = LATENCY_S + PER_TOKEN_S * ANSWER_TOKENS  # 0.18 s per answer
WINDOWS = (1, 8, 64, 256)
# requests per point = in-flight x WAVES (at least 20): 7.2 s at the ideal rate. A teacher stage sends thousands of
# requests; at 10 waves (1.8 s) the per-run fixed costs (one cache lookup for the batch, the final journal merge:
# 0.1-0.3 s) were 10-15 % of the point, which a real stage pays once per minutes. `--scale 0.25` gives 10 waves.
WAVES = 40
RPM, RPM_BURST = 600, 10
RATE_REQUESTS = 150  # at 600/min: at least 14 s
TRUNCATE_SHARE, TRUNCATE_REQUESTS = 0.1, 500
KILL_REQUESTS, KILL_WINDOW = 2000, 64
SERVER = {"latency": LATENCY_S, "per_token": PER_TOKEN_S, "capacity": CAPACITY, "answer_tokens": ANSWER_TOKENS}


class Failed(Exception):
    """An agreement check failed: the run answered wrongly, not just slowly."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Failed(what)


def summary(values: list[float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


class Point(NamedTuple):
    """One timed run: wall seconds, and CPU seconds of the client process (all its threads) and of the server."""

    seconds: float
    client_cpu: float
    server_cpu: float


class Timed:
    """Wall and CPU time of a block, the client's (this process) and the server process's."""

    def __init__(self, server: SimServerProcess):
        self.server = server

    def __enter__(self) -> Timed:
        self.wall, self.cpu, self.server_cpu = time.perf_counter(), time.process_time(), self.server.cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        server_cpu = self.server.cpu_seconds()
        self.point = Point(
            time.perf_counter() - self.wall,
            time.process_time() - self.cpu,
            server_cpu - self.server_cpu if server_cpu is not None and self.server_cpu is not None else math.nan,
        )


def throughput(window: int, n: int, workdir: Path, streaming: bool = True, cached: bool = True) -> Point:
    """Time to answer `n` fresh requests at `window` in flight, checked complete."""
    with SimServerProcess(**SERVER) as server:
        path = workdir / f"tp-{window}-{streaming}-{time.monotonic_ns()}.duckdb"
        cache = TeacherCache(path) if cached else None
        teacher = load_teacher(server.base_url, cache, max_in_flight=window)
        teacher._streaming = streaming
        teacher.batch_size = 8
        teacher.run(load_jobs(min(window, 20), salt="warm-up "))  # event loop, connections, cache file: once
        with Timed(server) as timed:
            results = teacher.run(load_jobs(n))
        teacher.close()
        stats = server.stats()
    warm = min(window, 20)
    check(
        all(r.ok for r in results) and stats["ok"] == n + warm, f"throughput at {window}: not every request answered"
    )
    held = cache.calls_frame().height - warm if cache else n
    check(held == n, f"throughput at {window}: cache holds {held}/{n}")
    return timed.point


def bare_aiohttp(window: int, n: int) -> Point:
    """Time for a minimal client (`window` aiohttp workers, no Teacher, no parsing, no cache) to get `n`
    answers from the same server: what this machine allows at all, the simulated server sharing its cores. It runs
    under the same garbage-collector setting as a streaming Teacher run (`relaxed_gc`), so the two compare fairly."""
    import asyncio

    import aiohttp

    from teacher.client import relaxed_gc

    async def run(server: SimServerProcess) -> Point:
        url = server.base_url
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def worker(salts: Iterator[str]) -> None:
                for salt in salts:
                    body = {"model": "sim", "messages": load_jobs(1, salt=salt)[0].request.messages, "max_tokens": 64}
                    async with session.post(f"{url}/chat/completions", json=body) as reply:
                        json.loads(await reply.text())

            await asyncio.gather(*(worker(iter([f"warm-up {w} "])) for w in range(min(window, 20))))  # connections
            salts = (f"{i} " for i in range(n))  # shared: each worker takes the next request when its answer is in
            with relaxed_gc, Timed(server) as timed:
                await asyncio.gather(*(worker(salts) for _ in range(window)))
            return timed.point

    with SimServerProcess(**SERVER) as server:
        return asyncio.run(run(server))


def rate_limited(n: int, workdir: Path) -> tuple[float, dict]:
    with SimServerProcess(**SERVER, rpm=RPM) as server:
        cache = TeacherCache(workdir / f"rl-{time.monotonic_ns()}.duckdb")
        teacher = load_teacher(server.base_url, cache, max_in_flight=64)
        started = time.perf_counter()
        results = teacher.run(load_jobs(n))
        elapsed = time.perf_counter() - started
        window = teacher.backend.window
        teacher.close()
        stats = server.stats()
    check(all(r.ok for r in results), "rate limit: a request was not answered")
    check(set(stats["answered"].values()) == {1} and len(stats["answered"]) == n, "rate limit: asked twice or lost")
    check(cache.calls_frame().height == n, "rate limit: the cache lost or duplicated answers")
    c = teacher.stats.counters
    return elapsed, {"429s": stats["rate_limited"], "retries": c.retries_rate_limited, "shrinks": window.shrinks}


def truncation(n: int, workdir: Path) -> dict:
    flags = {**SERVER, "p_truncate": TRUNCATE_SHARE, "long_tokens": 100}
    with SimServerProcess(**flags) as server:
        teacher = load_teacher(server.base_url, TeacherCache(workdir / f"tr-{time.monotonic_ns()}.duckdb"), 64)
        results = teacher.run(load_jobs(n, max_new_tokens=64))
        teacher.close()
        stats = server.stats()
    c = teacher.stats.counters
    check(all(r.ok for r in results), "truncation: a cut answer was not recovered")
    check(c.truncated == c.retries_truncated == stats["truncated"] > 0, "truncation: counts disagree")
    check(c.parse_failures == 0, "truncation: a cut answer was counted as malformed output")
    return {"cut": stats["truncated"], "retries_truncated": c.retries_truncated, "of": n}


def kill_and_rerun(n: int, workdir: Path) -> dict:
    home = workdir / f"kill-{time.monotonic_ns()}"
    with SimServerProcess(**SERVER) as server:
        cmd = [sys.executable, "-m", "teacher.testing.load", str(home), server.base_url, str(n), str(KILL_WINDOW)]
        worker = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while server.stats().get("ok", 0) < n * 0.4 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        asked_before = server.stats().get("ok", 0)
        calls = TeacherCache.for_home(home).calls_frame()  # opening the cache merges the dead worker's journal
        rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
        counters = json.loads(rerun.stdout.strip().splitlines()[-1])
        stats = server.stats()
    keys = [request_key(json.loads(r)["messages"], json.loads(r)["max_new_tokens"]) for r in calls["request"]]
    twice = sum(stats["answered"][k] > 1 for k in keys)
    check(counters["ok"] == n and len(stats["answered"]) == n, "kill -9: not every request answered")
    check(twice == 0, f"kill -9: {twice} committed requests were answered twice")
    check(counters["backend_calls"] == n - calls.height, "kill -9: the rerun asked committed requests again")
    lost_in_flight = asked_before - calls.height  # answered by the server, not yet committed when killed
    return {"committed": calls.height, "in_flight_lost": lost_in_flight, "rerun_calls": counters["backend_calls"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the throughput requests per point")
    parser.add_argument("--rate-requests", type=int, default=RATE_REQUESTS)
    parser.add_argument("--truncate-requests", type=int, default=TRUNCATE_REQUESTS)
    parser.add_argument("--kill-requests", type=int, default=KILL_REQUESTS)
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "rate", "truncation", "kill"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    failed = False
    with tempfile.TemporaryDirectory(prefix="teacher_server_bench_") as tmp:
        workdir = Path(tmp)
        try:
            if "throughput" not in args.skip:
                print(
                    f"== throughput: {LATENCY_S * 1000:.0f} ms + {PER_TOKEN_S * 1000:.0f} ms/token x {ANSWER_TOKENS}"
                )
                print(
                    f"{'in flight':>12} {'requests':>9} {'req/s (median, min-max)':>26} {'ideal':>8} {'% ideal':>16}"
                    f" {'CPU ms/req client + server':>27}"
                )
                # (label, in flight, requests, one run): ours; the window alone; a bare aiohttp loop; the peer
                points = [(f"{w}", w, True, True) for w in WINDOWS]
                points += [(f"{w} nocache", w, True, False) for w in (64, 256)]
                points += [(f"{w} bare", w, None, None) for w in (64, 256)]
                points += [("peer 4", 4, False, True)]
                medians = {}
                for label, window, streaming, cached in points:
                    n = max(20, int(window * WAVES * args.scale)) if streaming is not False else int(160 * args.scale)
                    runs = range(args.runs)
                    if streaming is None:
                        timed = [bare_aiohttp(window, n) for _ in runs]
                    else:
                        timed = [throughput(window, n, workdir, streaming, cached) for _ in runs]
                    ideal_s = math.ceil(n / window) * REQUEST_S
                    rates = [n / t.seconds for t in timed]
                    shares = [100 * ideal_s / t.seconds for t in timed]
                    medians[label] = statistics.median(rates)
                    ideal_rate = n / ideal_s
                    cpu = [(1000 * t.client_cpu / n, 1000 * t.server_cpu / n) for t in timed]
                    split = f"{statistics.median(c for c, _ in cpu):.2f} + {statistics.median(s for _, s in cpu):.2f}"
                    print(
                        f"{label:>12} {n:>9} {summary(rates):>26} {ideal_rate:>8.1f} {summary(shares):>16} {split:>27}"
                    )
                    if streaming and cached and window >= 64:
                        verdict = "met" if statistics.median(shares) >= 90 else "MISSED"
                        print(f"{'':>12} goal >= 90 % of ideal: {verdict}")
                print("nocache = the window alone, without the cache commits (the client's own ceiling here)")
                print("bare = a minimal aiohttp loop, no Teacher: what this machine allows with the server on it")
                print("CPU = medians over the timed part: the client process (all threads) + the server process")
                for w in (64, 256):
                    print(f"ours / bare at {w}: {medians[str(w)] / medians[f'{w} bare']:.2f}")
                print("peer 4 = before issue 15: rounds of 8 requests, 4 in flight, each round waits for its slowest")
                print(f"ratio ours/peer (req/s, 64 in flight vs peer): {medians['64'] / medians['peer 4']:.1f}x")
            if "rate" not in args.skip:
                n = args.rate_requests
                minimum = (n - RPM_BURST) / (RPM / 60) + REQUEST_S
                print(f"== rate limit: {n} requests, server allows {RPM}/min (429 + Retry-After), 64 in flight")
                runs = [rate_limited(n, workdir) for _ in range(args.runs)]
                ratios = [seconds / minimum for seconds, _ in runs]
                ratio = summary(ratios, "{:.2f}")
                print(f"time {summary([s for s, _ in runs])} s, minimum {minimum:.1f} s, ratio {ratio}")
                print(f"last run: {runs[-1][1]}; every request answered once, cache complete")
                print(f"goal <= 1.2 x minimum: {'met' if statistics.median(ratios) <= 1.2 else 'MISSED'}")
            if "truncation" not in args.skip:
                print(f"== truncation: {TRUNCATE_SHARE:.0%} of answers need 100 tokens, asked with 64")
                runs = [truncation(args.truncate_requests, workdir) for _ in range(args.runs)]
                print(f"every run: all recovered by the doubled budget; last run {runs[-1]}")
            if "kill" not in args.skip:
                print(
                    f"== kill -9 mid-way through {args.kill_requests} requests ({KILL_WINDOW} in flight), then rerun"
                )
                runs = [kill_and_rerun(args.kill_requests, workdir) for _ in range(args.runs)]
                for run in runs:
                    print(
                        f"committed before the kill {run['committed']}, answered by the server but not committed "
                        f"{run['in_flight_lost']}, asked by the rerun {run['rerun_calls']}; none committed asked twice"
                    )
        except Failed as exc:
            print(f"FAILED: {exc}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
