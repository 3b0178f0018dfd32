"""Tokens, retries by cause and cost per build: counted by the Teacher, kept by the cache, shown by status."""

import duckdb

from sources.settings import Settings
from teacher import open_teacher
from teacher.backends import truncation_retry_of, vllm_engine_kwargs
from teacher.backends.scripted import ScriptedBackend
from teacher.cache import BuildCounters, TeacherCache, cache_path, status_summary
from teacher.client import Teacher
from teacher.testing.load import load_jobs

OLD_BUILDS_TABLE = """
CREATE TABLE teacher_builds (build_id VARCHAR PRIMARY KEY, started_at TIMESTAMP, updated_at TIMESTAMP,
    backend_calls BIGINT, cache_hits BIGINT, parse_failures BIGINT, quarantined BIGINT, backend_errors BIGINT,
    completion_tokens BIGINT, backend_seconds DOUBLE);
INSERT INTO teacher_builds VALUES ('old', now(), now(), 3, 0, 0, 0, 0, 30, 1.5);
"""


def test_a_cache_file_from_before_the_new_counters_keeps_working(home):
    path = cache_path(home)
    path.parent.mkdir(parents=True)
    with duckdb.connect(str(path)) as con:
        con.execute(OLD_BUILDS_TABLE)
    cache = TeacherCache(path)
    cache.add_counters("old", BuildCounters(backend_calls=1, prompt_tokens=40, retries_rate_limited=2))
    counters = cache.build_counters("old")
    assert (counters.backend_calls, counters.prompt_tokens, counters.retries_rate_limited) == (4, 40, 2)
    summary = status_summary(home)["last_build"]
    assert summary["tokens_per_s"] == 20.0 and summary["cost_usd"] == 0.0


def test_prompt_and_completion_tokens_and_cost_per_build(home):
    backend = ScriptedBackend()
    teacher = Teacher(
        backend,
        TeacherCache.for_home(home),
        build_id="priced",
        price_prompt_per_million=2.0,
        price_completion_per_million=10.0,
    )
    teacher.run(load_jobs(3))
    c = teacher.stats.counters
    assert c.prompt_tokens > 0 and c.completion_tokens > 0
    assert abs(c.cost_usd - (c.prompt_tokens * 2 + c.completion_tokens * 10) / 1e6) < 1e-12
    summary = status_summary(home)
    for part in ("last_build", "total"):
        row = summary[part]
        assert row["prompt_tokens"] == c.prompt_tokens and row["cost_usd"] == round(c.cost_usd, 6)
        assert {"retries_rate_limited", "retries_server_error", "retries_connection", "retries_truncated"} <= set(row)
        assert {"truncated", "http_requests", "tokens_per_s"} <= set(row)
    progress = teacher.progress()
    assert progress["prompt_tokens"] == c.prompt_tokens and "window" not in progress


def test_vllm_engine_and_truncation_settings(home):
    settings = Settings.load(
        {
            "teacher.vllm_tensor_parallel_size": 2,
            "teacher.vllm_max_model_len": 4096,
            "teacher.vllm_gpu_memory_utilization": 0.8,
            "teacher.vllm_dtype": "bfloat16",
        }
    )
    assert vllm_engine_kwargs(settings.teacher) == {
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.8,
        "dtype": "bfloat16",
        "max_model_len": 4096,
    }
    assert vllm_engine_kwargs(Settings.load({"teacher.vllm_data_parallel_size": 4}).teacher)["data_parallel_size"] == 4
    # the CPU demo model keeps its deliberate budgets; servers and vLLM retry cut answers
    assert not truncation_retry_of(Settings.load().teacher)
    assert truncation_retry_of(Settings.load({"teacher.backend": "openai"}).teacher)
    assert not truncation_retry_of(
        Settings.load({"teacher.backend": "vllm", "teacher.truncation_retry": False}).teacher
    )
    teacher = open_teacher(Settings.load({"teacher.backend": "scripted", "teacher.price_prompt_per_million": 1.5}))
    assert teacher.prices == (1.5, 0.0) and not teacher.truncation_retry
    teacher.close()


def test_throughput_budget_and_price_settings_do_not_stale_the_teacher_assets():
    from pipelines.freshness import section_hashes

    base = section_hashes(Settings.load())["teacher"]
    runtime = {
        "teacher.max_in_flight": 256,
        "teacher.requests_per_minute": 600,
        "teacher.tokens_per_minute": 1e6,
        "teacher.price_prompt_per_million": 0.5,
        "teacher.vllm_tensor_parallel_size": 4,
    }
    assert section_hashes(Settings.load(runtime))["teacher"] == base
    assert section_hashes(Settings.load({"teacher.max_new_tokens_cap": 512}))["teacher"] != base  # changes answers
