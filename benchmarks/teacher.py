"""Teacher throughput: the same prompts through the same CPU backend, batched vs one request at a time, then a
cached rebuild.

- batched: `Teacher(batch_size=16)`: one left-padded `generate` per 16 requests, the shared few-shot prefix run
  once (teacher/backends/local_transformers.py)
- one at a time: `Teacher(batch_size=1)`: the same backend, one request per `generate` (the prefix KV cache still
  helps it, so the ratio is about batching alone)
- cached rebuild: the batched run again on the filled cache (teacher/cache.py): 0 backend calls expected
Tokens/s counts generated tokens over wall time, after a one-batch warm-up. Greedy decoding, so the two runs must
give the same answers; the script exits non-zero when they disagree or the rebuild calls the backend.

    python benchmarks/teacher.py                      # SmolLM2-135M, 16 VRD prompts, 64 new tokens
    python benchmarks/teacher.py --requests 32 --max-new-tokens 96 --threads 2
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from teacher.backends.local_transformers import TransformersBackend  # noqa: E402
from teacher.cache import TeacherCache  # noqa: E402
from teacher.client import Job, Teacher  # noqa: E402
from teacher.parse import parse_vrd  # noqa: E402
from teacher.prompts import vrd_request  # noqa: E402

REQUESTS = 16
MAX_NEW_TOKENS = 64  # long enough for one or two items, short enough that the slow side ends in a minute
BATCH_SIZE = 16
THREADS = 1  # the settings default: one thread is steadier than two on a shared 2-core machine
MIN_AGREEMENT = 0.9  # share of identical answers (padding can flip a near-tie in float32, rarely)
SITUATIONS = [
    "Forgiving a debt owed by a poor neighbour",
    "Breaking an oath sworn to a king",
    "Sharing bread with a stranger",
    "Punishing a servant who stole grain",
    "Refusing to fight in an unjust war",
    "Lying to protect a friend",
    "Giving alms to a widow",
    "Keeping the Sabbath holy",
    "Freeing a slave",
    "Paying taxes to a foreign ruler",
    "Obeying a father's choice of husband",
    "Reporting a neighbour's crime",
    "Burning heretical books",
    "Taking revenge for a murdered brother",
    "Working on a holy day to feed one's children",
    "Voting against one's own party",
    "Sending children to school instead of the fields",
    "Lending money at interest",
    "Hiding a fugitive from the law",
    "Breaking a strike",
]


def models_dir() -> Path:
    home = Path(os.environ.get("CHRONOPRISM_HOME", REPO / ".chronoprism"))
    return Path(os.environ.get("CHRONOPRISM_TEST_MODELS", home / "models"))


def timed_run(teacher: Teacher, jobs: list[Job]) -> tuple[list, float]:
    started = time.perf_counter()
    results = teacher.run(jobs)
    return results, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    backend = TransformersBackend("smollm2-135m-instruct", models_dir(), threads=args.threads)
    situations = [
        SITUATIONS[i % len(SITUATIONS)] + ("" if i < len(SITUATIONS) else f" ({i})") for i in range(args.requests)
    ]
    jobs = [Job(vrd_request(s, max_new_tokens=args.max_new_tokens), parse=parse_vrd) for s in situations]
    warm = [Job(vrd_request("Warming up the model", max_new_tokens=8))]
    Teacher(backend, None, batch_size=args.batch_size).run(warm)
    print(
        f"backend transformers:{backend.model}  threads={args.threads}  requests={args.requests}  "
        f"max_new_tokens={args.max_new_tokens}"
    )

    rows = {}
    answers = {}
    for name, batch_size in (("batched", args.batch_size), ("one at a time", 1)):
        teacher = Teacher(backend, None, batch_size=batch_size, max_retries=0)
        results, seconds = timed_run(teacher, jobs)
        tokens = teacher.stats.counters.completion_tokens
        rows[name] = tokens / seconds
        answers[name] = [r.response.text if r.response else "" for r in results]
        parsed = sum(r.ok for r in results)
        print(
            f"{name:>14}: {seconds:7.1f} s  {tokens:5d} tokens  {rows[name]:6.1f} tokens/s  "
            f"parsed {parsed}/{len(jobs)}"
        )
    same = sum(a == b for a, b in zip(answers["batched"], answers["one at a time"], strict=True)) / len(jobs)
    print(f"agreement: {same:.0%} identical answers")
    print(f"ratio batched/one-at-a-time: {rows['batched'] / rows['one at a time']:.2f}x tokens/s (goal >= 3x)")

    with tempfile.TemporaryDirectory() as tmp:
        cache = TeacherCache(Path(tmp) / "teacher.duckdb")
        fill = Teacher(backend, cache, batch_size=args.batch_size, max_retries=0, build_id="fill")
        _, fill_s = timed_run(fill, jobs)
        rebuild = Teacher(backend, cache, batch_size=args.batch_size, max_retries=0, build_id="rebuild")
        _, rebuild_s = timed_run(rebuild, jobs)
        c = rebuild.stats.counters
        print(
            f"cached rebuild: {rebuild_s:.2f} s ({fill_s:.1f} s to fill), {c.backend_calls} backend calls, "
            f"{c.cache_hits} cache hits"
        )
    if same < MIN_AGREEMENT or c.backend_calls != 0:
        print("FAIL: batched and one-at-a-time answers disagree, or the rebuild called the backend")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
