"""Resolve CHRONOPRISM_HOME and the Dagster instance inside it, the same way for CLI, make and `dagster dev`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sources.settings import DEFAULT_HOME

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def chronoprism_home() -> Path:
    return Path(os.environ.get("CHRONOPRISM_HOME", DEFAULT_HOME)).expanduser().resolve()


def dagster_home(home: Path | None = None) -> Path:
    """DAGSTER_HOME when set; else `<home>/dagster` with the repo's dagster.yaml copied in (kept up to date)."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]).expanduser().resolve()
    path = (home or chronoprism_home()) / "dagster"
    path.mkdir(parents=True, exist_ok=True)
    target = path / "dagster.yaml"
    if REPO_DAGSTER_YAML.is_file() and (not target.is_file() or target.read_bytes() != REPO_DAGSTER_YAML.read_bytes()):
        shutil.copyfile(REPO_DAGSTER_YAML, target)
    return path


def activate() -> tuple[Path, Path]:
    """Export CHRONOPRISM_HOME (absolute) and DAGSTER_HOME for this process and its children."""
    home = chronoprism_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["CHRONOPRISM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(dagster_home(home))
    return home, Path(os.environ["DAGSTER_HOME"])
