"""The fixtures of the whole suite: an isolated CHRONOPRISM_HOME per test, offline HF settings, the models dir, the
tiny random Llama, a small pretraining frame. Plain builders live in tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import ADDRESS, GENEALOGY, SERMON, pretrain_frame

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CHRONOPRISM_HOME (and Dagster home inside it) for one test."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("CHRONOPRISM_HOME", str(path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("CHRONOPRISM_CONFIG", raising=False)
    for key in list(os.environ):
        if key.startswith("CHRONOPRISM__"):
            monkeypatch.delenv(key)
    return path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models dir per test session, so the SmolLM2 GGUF is de-quantised at most once per run."""
    shared = os.environ.get("CHRONOPRISM_TEST_MODELS")
    if shared:
        return Path(shared)
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(models_dir: Path) -> Path:
    """A local HF dir with the tiny random Llama and the SmolLM2 tokenizer (made once per session)."""
    from training.base_models import tiny_model_dir

    return tiny_model_dir(models_dir)


@pytest.fixture
def pretrain() -> pl.DataFrame:
    return pretrain_frame(
        {
            "sermon": ("bible", SERMON * 3),
            "genealogy": ("bible", GENEALOGY * 8),
            "address": ("sotu", ADDRESS * 3),
            "stub": ("sotu", "Amen."),
        }
    )


@pytest.fixture(autouse=True)
def _forget_dagster_current_instance():
    """Entering a `DagsterInstance` sets Dagster's current defs-state storage (a ContextVar) that a nested enter of
    the same instance (a schedule or sensor context built on it) can leave set after the instance is gone; the next
    test would then read a deleted temp instance ("unable to open database file"). Each test starts without one."""
    yield
    from dagster._core.storage.defs_state import base  # no public API resets it

    base._current_storage.set(None)
