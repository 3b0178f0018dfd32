import dataclasses
import json
import multiprocessing
import os
import shutil
import signal

import pytest

from sources.schema import stable_id
from teacher.backends.base import TeacherRequest, TeacherResponse
from teacher.cache import (
    STATUS_FAILED,
    STATUS_OK,
    BuildCounters,
    CallRecord,
    TeacherCache,
    cache_path,
    call_id_of,
    current_build_id,
    register_build,
    status_summary,
)

REQUEST = TeacherRequest(
    messages=[{"role": "user", "content": "Situation: Forgiving a debt"}],
    max_new_tokens=64,
    task="vrd",
    prompt_version="vrd/v1",
)


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "Situation: Paying a debt"}]},
        {"max_new_tokens": 65},
        {"temperature": 0.7},
        {"top_p": 0.9},
        {"seed": 1},
        {"assistant_prefix": "{"},
        {"stop": ["]"]},
        {"json_schema": {"type": "object"}},
        {"top_logprobs": 5},
        {"prompt_version": "vrd/v2"},
    ],
)
def test_every_request_field_changes_the_key(change):
    assert call_id_of("transformers", "m", dataclasses.replace(REQUEST, **change)) != call_id_of(
        "transformers", "m", REQUEST
    )


def test_the_key_and_the_stored_request_are_the_canonical_json_of_the_payload(tmp_path):
    """Keys must not change between versions: a rebuild on an old cache would ask everything again."""
    request = dataclasses.replace(REQUEST, messages=[{"role": "user", "content": "Schuld vergeben: ü, 债"}])
    canonical = json.dumps(request.payload(), sort_keys=True, ensure_ascii=False)
    assert call_id_of("openai", "m", request) == stable_id("openai", "m", canonical)
    assert call_id_of("openai", "m", request, canonical) == call_id_of("openai", "m", request)
    cache = TeacherCache(tmp_path / "c.duckdb")
    record = CallRecord("a", "openai", "m", request, TeacherResponse(text="ok"), STATUS_OK)
    cache.append([record, dataclasses.replace(record, call_id="b", request_json=canonical)], "b1")
    cache.merge_journal()
    assert cache.calls_frame()["request"].to_list() == [canonical, canonical]


def test_backend_and_model_change_the_key_and_equal_requests_share_it():
    key = call_id_of("transformers", "m", REQUEST)
    assert key == call_id_of("transformers", "m", dataclasses.replace(REQUEST))
    assert key != call_id_of("openai", "m", REQUEST)
    assert key != call_id_of("transformers", "other", REQUEST)


def _record(call_id: str, text: str = "ok", status: str = STATUS_OK) -> CallRecord:
    response = (
        TeacherResponse(text=text, completion_tokens=3)
        if status != STATUS_FAILED
        else TeacherResponse.failed("TimeoutError")
    )
    return CallRecord(call_id, "scripted", "m", REQUEST, response, status)


def test_lookup_skips_failed_calls_and_attempts_accumulate(tmp_path):
    cache = TeacherCache(tmp_path / "c.duckdb")
    cache.record([_record("a"), _record("b", status=STATUS_FAILED)], "build1")
    assert set(cache.lookup(["a", "b", "c"])) == {"a"}
    assert cache.lookup(["a"])["a"].text == "ok"
    cache.record([_record("b", text="later")], "build1")  # the retry succeeded
    assert cache.lookup(["b"])["b"].text == "later"
    calls = cache.calls_frame()
    assert dict(zip(calls["call_id"], calls["attempts"], strict=True)) == {"a": 1, "b": 2}
    assert set(calls["status"]) == {STATUS_OK}


def test_counters_per_build_and_status_summary(home):
    assert status_summary(home)["last_build"]["backend_calls"] == 0  # no cache yet: zeros, no file created
    assert not cache_path(home).exists()
    cache = TeacherCache.for_home(home)
    cache.record([_record("a")], "first", BuildCounters(backend_calls=1, parse_failures=1))
    cache.add_counters("first", BuildCounters(quarantined=1))
    cache.add_counters("second", BuildCounters(cache_hits=5))
    summary = status_summary(home)
    assert summary["last_build"]["build_id"] == "second"
    for part in ("last_build", "total"):
        assert {"backend_calls", "cache_hits", "parse_failures", "quarantined"} <= set(summary[part])
    assert summary["last_build"]["backend_calls"] == 0 and summary["last_build"]["cache_hits"] == 5
    assert summary["total"] | {"builds": 2} == summary["total"]
    assert (summary["total"]["backend_calls"], summary["total"]["quarantined"]) == (1, 1)
    assert cache.build_counters("first").parse_failures == 1


def test_a_registered_build_that_asks_nothing_is_the_last_build(home):
    cache = TeacherCache.for_home(home)
    cache.add_counters("earlier", BuildCounters(backend_calls=7))
    register_build(home, "fresh-rebuild")
    register_build(home, "fresh-rebuild")  # idempotent
    summary = status_summary(home)
    assert summary["last_build"]["build_id"] == "fresh-rebuild" and summary["last_build"]["backend_calls"] == 0
    assert summary["total"]["backend_calls"] == 7 and summary["total"]["builds"] == 2


def test_build_id_prefers_the_environment(monkeypatch):
    monkeypatch.setenv("CHRONOPRISM_BUILD_ID", "cli-build")
    assert current_build_id("dagster-run") == "cli-build"
    monkeypatch.delenv("CHRONOPRISM_BUILD_ID")
    assert current_build_id("dagster-run") == "dagster-run"
    assert current_build_id().startswith("adhoc-")


def _writer(path: str, worker: int) -> None:
    cache = TeacherCache(path)
    for batch in range(10):
        records = [_record(f"w{worker}-b{batch}-{i}") for i in range(5)]
        cache.record(records, "shared", BuildCounters(backend_calls=5))
        cache.lookup([r.call_id for r in records])


def test_concurrent_processes_write_one_cache(tmp_path):
    """Dagster's multiprocess executor: several processes commit batches to one file at once."""
    path = str(tmp_path / "teacher.duckdb")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(path, w)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    cache = TeacherCache(path)
    assert cache.calls_frame().height == 150
    assert cache.build_counters("shared").backend_calls == 150


def _append_then_die(path: str) -> None:
    cache = TeacherCache(path)
    cache.append([_record("journaled-a"), _record("journaled-b")], "killed", BuildCounters(backend_calls=2))
    os.kill(os.getpid(), signal.SIGKILL)  # before any merge: only the journal holds the answers


def test_journaled_answers_are_committed_before_any_merge_and_survive_a_kill(tmp_path):
    path = str(tmp_path / "teacher.duckdb")
    writer = TeacherCache(path)
    writer.append([_record("a")], "live", BuildCounters(backend_calls=1))
    assert set(writer.lookup(["a", "x"])) == {"a"}  # its own journal answers at once
    reader = TeacherCache(path)
    assert reader.calls_frame().height == 0  # the live writer's journal is not merged by others
    ctx = multiprocessing.get_context("spawn")
    killed = ctx.Process(target=_append_then_die, args=(path,))
    killed.start()
    killed.join(timeout=120)
    assert killed.exitcode == -signal.SIGKILL
    after = TeacherCache(path)  # a new process opening the cache after the kill
    assert set(after.calls_frame()["call_id"]) == {"journaled-a", "journaled-b"}
    assert after.build_counters("killed").backend_calls == 2
    writer.close()  # merges and removes its journal
    assert set(TeacherCache(path).calls_frame()["call_id"]) == {"a", "journaled-a", "journaled-b"}
    assert not list((tmp_path / "journal").glob("*.jsonl"))


def test_a_line_cut_mid_write_is_skipped_and_a_retried_call_counts_its_attempts(tmp_path):
    path = tmp_path / "teacher.duckdb"
    cache = TeacherCache(path)
    cache.append([_record("b", status=STATUS_FAILED)], "one", BuildCounters(backend_calls=1, backend_errors=1))
    cache.append([_record("b", text="later")], "one", BuildCounters(backend_calls=1))  # the retry succeeded
    journal = next((tmp_path / "journal").glob("*.jsonl"))
    dead = journal.with_name("0-killed.jsonl")  # the same lines in the journal of a writer that is gone
    shutil.copy(journal, dead)
    with open(dead, "a", encoding="utf-8") as f:
        f.write('{"call": ["cut-mid')  # what a kill during a write leaves
    recovered = TeacherCache(tmp_path / "other" / "teacher.duckdb")
    (recovered.path.parent / "journal").mkdir()
    shutil.move(dead, recovered.path.parent / "journal" / dead.name)
    cache.merge_journal()  # the live writer merges from memory, the file only backs it up
    for merged in (TeacherCache(path), recovered):  # ... and a new process reads it back from the journal
        calls = merged.calls_frame()
        assert calls["call_id"].to_list() == ["b"] and calls["attempts"].to_list() == [2]
        assert calls["response"].to_list() == ["later"] and calls["status"].to_list() == [STATUS_OK]
        assert merged.build_counters("one") == BuildCounters(backend_calls=2, backend_errors=1)
