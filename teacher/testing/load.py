"""Load for the simulated server: N distinct jobs with a strict parser, and a worker process a test can kill -9.

    python -m teacher.testing.load HOME BASE_URL N [MAX_IN_FLIGHT]

runs N jobs through a Teacher over the OpenAI backend at BASE_URL with the cache in HOME, then prints the run's
counters as one JSON line. Used by tests/teacher/test_sim_server.py and benchmarks/teacher_server.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from teacher.backends.base import TeacherRequest
from teacher.backends.openai_http import OpenAIBackend
from teacher.cache import TeacherCache
from teacher.client import Job, Teacher
from teacher.parse import EMPTY_OUTPUT, MALFORMED_JSON, SCHEMA_MISMATCH, ParseResult


def parse_answer(text: str) -> ParseResult:
    """Strict: the whole answer is one JSON object with an `answer` key (a cut-off answer never parses)."""
    if not text.strip():
        return ParseResult(reason=EMPTY_OUTPUT, detail="empty answer")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return ParseResult(reason=MALFORMED_JSON, detail=str(exc))
    if not isinstance(data, dict) or "answer" not in data:
        return ParseResult(reason=SCHEMA_MISMATCH, detail="no 'answer' key")
    return ParseResult(value=data["answer"])


def load_jobs(n: int, max_new_tokens: int = 64, salt: str = "") -> list[Job]:
    """`n` distinct requests, each about 25 prompt tokens."""
    return [
        Job(
            TeacherRequest(
                messages=[{"role": "user", "content": f"Question {salt}{i}: name one value at stake, as JSON."}],
                max_new_tokens=max_new_tokens,
                task="load",
            ),
            parse=parse_answer,
            ref=f"q{i}",
        )
        for i in range(n)
    ]


def load_teacher(base_url: str, cache: TeacherCache | None, max_in_flight: int, **backend: Any) -> Teacher:
    """A Teacher over the OpenAI backend with truncation retries on (as `teacher.backend=openai` has them)."""
    options = {"http_retries": 5, "backoff_s": 0.05, "timeout_s": 60.0, **backend}
    return Teacher(
        OpenAIBackend(base_url, "sim", max_in_flight=max_in_flight, **options),
        cache,
        max_retries=1,
        truncation_retry=True,
        build_id="load",
    )


def main(argv: list[str]) -> None:
    home, base_url, n = Path(argv[0]), argv[1], int(argv[2])
    max_in_flight = int(argv[3]) if len(argv) > 3 else 64
    teacher = load_teacher(base_url, TeacherCache.for_home(home), max_in_flight)
    try:
        results = teacher.run(load_jobs(n))
    finally:
        teacher.close()
    print(json.dumps({**teacher.stats.to_dict(), "ok": sum(r.ok for r in results)}))


if __name__ == "__main__":
    main(sys.argv[1:])
