"""A run killed with kill -9 resumes from the cache: nothing finished is asked again, the result is the same."""

import json
import os
import signal
import subprocess
import sys
import time

import polars as pl

from sources.schema import PASSAGES, frame_of
from teacher.cache import TeacherCache, cache_path
from tests.conftest import REPO_ROOT
from tests.teacher.resume_worker import run


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    rows = [
        {
            "passage_id": f"p{i}",
            "doc_id": "d",
            "century": "C017",
            "char_start": 0,
            "char_end": 1,
            "text": f"Passage {i}: the widow paid her tithe though her children were hungry.",
        }
        for i in range(6)
    ]
    passages_path = tmp_path / "passages.parquet"
    frame_of(rows, PASSAGES).write_parquet(passages_path)
    expected, uninterrupted = run(tmp_path / "clean_home", frame_of(rows, PASSAGES), 0.0)

    home, out = tmp_path / "home", tmp_path / "out.parquet"
    cmd = [sys.executable, "-m", "tests.teacher.resume_worker", str(home), str(passages_path), str(out)]
    slow = subprocess.Popen([*cmd, "0.4"], cwd=REPO_ROOT)
    committed = 0
    deadline = time.monotonic() + 60
    while committed < 4 and time.monotonic() < deadline:  # at least two batches of two are in the cache
        time.sleep(0.1)
        if cache_path(home).exists():
            committed = TeacherCache.for_home(home).calls_frame().height
    os.kill(slow.pid, signal.SIGKILL)
    slow.wait()
    assert slow.returncode == -signal.SIGKILL and not out.exists()
    committed = TeacherCache.for_home(home).calls_frame().height
    assert 4 <= committed < uninterrupted["backend_calls"]

    resumed = subprocess.run([*cmd, "0"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    counters = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert counters["backend_calls"] == uninterrupted["backend_calls"] - committed  # no finished call repeated
    assert counters["cache_hits"] >= committed
    assert pl.read_parquet(out).equals(expected)
