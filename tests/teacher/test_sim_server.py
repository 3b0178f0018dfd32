"""The OpenAI backend and the streaming Teacher against the simulated server (a real aiohttp process on loopback):
the in-flight window, 429 + Retry-After with AIMD, 5xx, truncation retries, commits as answers arrive, kill -9."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

from sources.schema import PASSAGES, frame_of
from teacher.cache import TeacherCache
from teacher.client import MALFORMED_OUTPUT
from teacher.generate import GenerationConfig, extract_situations, generate_vrd
from teacher.scoring import LOGPROBS, score_relevance
from teacher.testing.load import load_jobs, load_teacher
from teacher.testing.sim_server import SimServerProcess, request_key
from tests.conftest import REPO_ROOT

SECRET = "sk-sim-never-log-me"


def test_the_window_keeps_exactly_max_in_flight_requests_at_the_server(tmp_path):
    with SimServerProcess(latency=0.05, per_token=0.0) as server:
        teacher = load_teacher(server.base_url, TeacherCache(tmp_path / "c.duckdb"), max_in_flight=8)
        results = teacher.run(load_jobs(40))
        teacher.close()
        stats = server.stats()
    assert all(r.ok for r in results)
    assert stats["max_in_flight"] == 8 and stats["ok"] == 40
    assert teacher.stats.counters.backend_calls == 40 and teacher.stats.counters.http_requests == 40
    assert teacher.stats.counters.prompt_tokens > 0 and teacher.stats.counters.completion_tokens > 0


def test_each_answer_is_committed_and_identical_requests_share_one_call(tmp_path):
    cache = TeacherCache(tmp_path / "c.duckdb")
    jobs = load_jobs(12) + load_jobs(12)[:5]  # five requests asked twice
    with SimServerProcess(latency=0.02, per_token=0.0) as server:
        teacher = load_teacher(server.base_url, cache, max_in_flight=4)
        teacher.run(jobs)
        teacher.close()
        stats = server.stats()
        # the journal merged into the DuckDB file after every answer (the slow way): the same cache in the end
        coalesced = load_teacher(server.base_url, cache, max_in_flight=4)
        coalesced.merge_interval_s = 0.0
        results = coalesced.run(load_jobs(12, salt="again "))
        coalesced.close()
    assert stats["ok"] == 12 and set(stats["answered"].values()) == {1}
    assert cache.calls_frame().height == 12 + 12 and teacher.stats.counters.backend_calls == 12
    assert cache.build_counters("load").backend_calls == 12 + 12 and all(r.ok for r in results)


def test_a_long_run_merges_its_journal_while_the_last_windows_fly(tmp_path, monkeypatch):
    """With many calls in the journal near the end of a run, it is merged while the last two windows are in
    flight, and the merge the run ends with holds only those."""
    cache = TeacherCache(tmp_path / "c.duckdb")
    merged: list[int] = []  # calls in the journal at each merge
    merge = TeacherCache.merge_journal
    monkeypatch.setattr(TeacherCache, "merge_journal", lambda self: (merged.append(self.unmerged_calls), merge(self)))
    with SimServerProcess(latency=0.02, per_token=0.0) as server:
        teacher = load_teacher(server.base_url, cache, max_in_flight=4)
        teacher.merge_interval_s = 3600.0  # no merge by the clock: only the tail's and the run's last
        results = teacher.run(load_jobs(120) + load_jobs(120)[:30])  # 30 asked twice
        during = list(merged)
        stats = server.stats()
        teacher.close()
    assert all(r.ok for r in results) and stats["ok"] == 120 and set(stats["answered"].values()) == {1}
    assert len(during) == 2 and during[0] > 8 * 4 and during[1] <= 2 * 4  # the tail merge, then the last answers
    assert cache.calls_frame().height == 120 and cache.build_counters("load").backend_calls == 120


def test_429_with_retry_after_shrinks_the_window_and_every_request_is_answered(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with SimServerProcess(latency=0.01, per_token=0.0, rpm=1200) as server:  # 20/s, a burst of 20
        teacher = load_teacher(server.base_url, TeacherCache(tmp_path / "c.duckdb"), max_in_flight=32)
        results = teacher.run(load_jobs(60))
        window = teacher.backend.window
        teacher.close()
        stats = server.stats()
    assert all(r.ok for r in results) and stats["ok"] == 60 and set(stats["answered"].values()) == {1}
    c = teacher.stats.counters
    assert stats["rate_limited"] > 0 and c.retries_rate_limited == stats["rate_limited"]
    assert c.http_requests == 60 + c.retries_rate_limited and c.backend_errors == 0
    assert window.shrinks >= 1 and window.size < 32
    assert SECRET not in caplog.text


def test_server_errors_are_retried_with_backoff(tmp_path):
    with SimServerProcess(latency=0.0, per_token=0.0, p_5xx=0.3, seed=3) as server:
        teacher = load_teacher(server.base_url, None, max_in_flight=8, http_retries=8, backoff_s=0.01)
        results = teacher.run(load_jobs(30))
        teacher.close()
        stats = server.stats()
    assert all(r.ok for r in results)
    assert teacher.stats.counters.retries_server_error == stats["server_errors"] > 0


def test_truncated_answers_come_back_whole_with_a_doubled_budget(tmp_path):
    with SimServerProcess(latency=0.0, per_token=0.0, p_truncate=0.5, answer_tokens=40, long_tokens=100) as server:
        teacher = load_teacher(server.base_url, TeacherCache(tmp_path / "c.duckdb"), max_in_flight=8)
        results = teacher.run(load_jobs(20, max_new_tokens=64))
        stats = server.stats()
        teacher.close()
        off = load_teacher(server.base_url, None, max_in_flight=8)
        off.truncation_retry = False
        without = off.run(load_jobs(20, max_new_tokens=64))
        off.close()
    c = teacher.stats.counters
    assert all(r.ok for r in results) and stats["truncated"] > 0
    # 64 -> 128 tokens: each long answer is cut once, then whole; repairs are for malformed output only
    assert c.truncated == c.retries_truncated == sum(r.truncation_retries for r in results) == stats["truncated"]
    assert c.parse_failures == 0 and teacher.stats.repairs == 0
    assert all(r.response.finish_reason == "stop" for r in results)
    # without truncation retries a cut answer is malformed output and gets a repair turn instead
    assert off.stats.repairs == stats["truncated"] and off.stats.counters.retries_truncated == 0
    assert sum(r.quarantine == MALFORMED_OUTPUT for r in without) <= stats["truncated"]


def test_kill_9_mid_run_then_rerun_asks_nothing_committed_again(tmp_path):
    home, n = tmp_path / "home", 400
    with SimServerProcess(latency=0.1, per_token=0.0) as server:
        cmd = [sys.executable, "-m", "teacher.testing.load", str(home), server.base_url, str(n), "8"]
        worker = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.stats().get("ok", 0) < 40:  # answers flow (~5 s for all)
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        answered_before = server.stats()["ok"]
        calls = TeacherCache.for_home(home).calls_frame()  # opening the cache merges the dead worker's journal
        assert 0 < calls.height < n
        assert answered_before - calls.height <= 8  # a kill loses at most what was in flight
        done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        counters = json.loads(done.stdout.strip().splitlines()[-1])
        stats = server.stats()
    assert counters["ok"] == n and counters["cache_hits"] == calls.height
    assert counters["backend_calls"] == n - calls.height
    keys = [
        request_key(json.loads(r)["messages"], json.loads(r)["max_new_tokens"]) for r in calls["request"].to_list()
    ]
    assert all(stats["answered"][k] == 1 for k in keys)  # nothing committed was answered twice
    assert len(stats["answered"]) == n


def test_the_server_answers_over_its_rate_with_429_and_retry_after():
    import urllib.error
    import urllib.request

    with SimServerProcess(latency=0.0, rpm=60) as server:
        body = json.dumps({"model": "sim", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
        statuses = []
        for _ in range(2):
            request = urllib.request.Request(
                server.base_url + "/chat/completions", body.encode(), {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    statuses.append((reply.status, None))
            except urllib.error.HTTPError as exc:
                statuses.append((exc.code, exc.headers.get("Retry-After")))
    assert statuses[0] == (200, None) and statuses[1][0] == 429 and int(statuses[1][1]) >= 1


def test_the_generation_stages_run_against_a_server_with_truncation_and_5xx(tmp_path):
    """The real prompts (situations, per-kind VRD, relevance logprobs) through the streaming path."""
    rows = [
        {"passage_id": f"p{i}", "doc_id": "d", "century": "C017", "char_start": 0, "char_end": 1,
         "text": f"Passage {i}: the widow paid her tithe though her children were hungry."}
        for i in range(4)
    ]  # fmt: skip
    with SimServerProcess(latency=0.0, per_token=0.0, p_truncate=0.3, p_5xx=0.2, long_tokens=100) as server:
        teacher = load_teacher(server.base_url, TeacherCache(tmp_path / "c.duckdb"), max_in_flight=16)
        cfg = GenerationConfig(max_situations=None, situation_max_new_tokens=40, vrd_max_new_tokens=64)
        situations = extract_situations(frame_of(rows, PASSAGES), teacher, cfg)
        candidates = generate_vrd(situations.frame, teacher, cfg)
        [(p_yes, score)] = score_relevance(teacher, [("Forgiving a debt", "value", "Mercy")])
        teacher.close()
    assert situations.rejects.is_empty() and situations.frame.height == 4 * 2
    assert candidates.rejects.is_empty() and set(candidates.frame["kind"]) == {"value", "right", "duty"}
    c = teacher.stats.counters
    assert c.truncated > 0 and c.retries_truncated == c.truncated and c.retries_server_error > 0
    assert score.method == LOGPROBS and p_yes > 0.5
