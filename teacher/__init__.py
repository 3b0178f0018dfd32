"""The teacher subsystem: backends, prompts, parsing, the generation cache, and ValuePrism-style generation.

`open_teacher(settings)` is the one entry point most callers need: a `Teacher` over the configured backend with
the cache at `<home>/cache/teacher.duckdb`, counting into the current build (see teacher/cache.py).
"""

from __future__ import annotations

from sources.settings import Settings
from teacher.backends import build_backend, truncation_retry_of
from teacher.cache import TeacherCache, current_build_id
from teacher.client import Teacher


def open_teacher(settings: Settings, run_id: str | None = None, cache: bool = True) -> Teacher:
    """A Teacher for `settings` (backend, batch size, retries) with the home's cache; `run_id` names the build
    when CHRONOPRISM_BUILD_ID is not set (the Dagster run id, from an asset)."""
    t = settings.teacher
    return Teacher(
        build_backend(t, settings.home_path),
        TeacherCache.for_home(settings.home_path) if cache else None,
        batch_size=t.batch_size,
        max_retries=t.max_retries,
        retry_backoff_s=t.retry_backoff_s,
        build_id=current_build_id(run_id),
        truncation_retry=truncation_retry_of(t),
        max_new_tokens_cap=t.max_new_tokens_cap,
        price_prompt_per_million=t.price_prompt_per_million,
        price_completion_per_million=t.price_completion_per_million,
        merge_interval_s=t.merge_interval_s,
    )


__all__ = ["Teacher", "open_teacher"]
