"""Shared fixtures: an isolated CHRONOPRISM_HOME per test, offline HF settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
