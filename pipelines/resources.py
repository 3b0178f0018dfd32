"""Configurable resources: the settings object and the table store, one place for both.

`SettingsResource` wraps `sources.settings.Settings` so the Dagster launchpad can override the few fields people
change per run (corpus dirs, bundled on/off) while everything else comes from the TOML file / env.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from sources.settings import Settings
from sources.storage import Store
from teacher import Teacher, open_teacher


class SettingsResource(dg.ConfigurableResource):
    """chronoprism settings for a run; see sources/settings.py for every field and its default."""

    corpus_dirs: list[str] = Field(default_factory=list, description="extra user corpus directories")
    include_bundled: bool | None = Field(None, description="None = the settings file's value (default True)")
    overrides_json: str = Field("{}", description='JSON of dotted overrides, e.g. {"teacher.backend": "scripted"}')

    def get(self) -> Settings:
        overrides: dict[str, Any] = json.loads(self.overrides_json or "{}")
        if self.corpus_dirs:
            overrides["corpus.corpus_dirs"] = list(self.corpus_dirs)
        if self.include_bundled is not None:
            overrides["corpus.include_bundled"] = self.include_bundled
        return Settings.load(overrides)

    def store(self) -> Store:
        return Store(self.get().home_path)


class TeacherResource(dg.ConfigurableResource):
    """The teacher (backend + generation cache at <home>/cache/teacher.duckdb) built from the run's settings, so
    the `teacher` section stays the one place that says which model answers; see docs/teacher.md."""

    @contextmanager
    def open(self, settings: Settings, run_id: str | None = None) -> Iterator[Teacher]:
        """A Teacher counting into this build (CHRONOPRISM_BUILD_ID, else `run_id`); closed (counters flushed)
        when the block ends."""
        teacher = open_teacher(settings, run_id)
        try:
            yield teacher
        finally:
            teacher.close()


def default_resources() -> dict[str, Any]:
    """The resource set for local runs (CLI, `dagster dev`, tests); a deployment swaps entries here."""
    return {
        "settings": SettingsResource(),
        "teacher": TeacherResource(),
        # runs the finetuning trainer (python -m training.launch) as a subprocess speaking Dagster Pipes
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }
