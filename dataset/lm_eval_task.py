"""The lm-evaluation-harness task shipped with the published dataset (`lm_eval/` beside `data/`).

The task files live in dataset/lm_eval_files/ as they are shipped (a YAML per task, a group, and `utils.py`, which
reads `../data/benchmark/test.parquet` relative to itself), so `lm_eval --include_path <dataset>/lm_eval --tasks
chronoprism` works on a local build and on a downloaded copy. lm-eval itself is only needed by whoever runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

TASK_DIR = "lm_eval"
FILES = Path(__file__).resolve().parent / "lm_eval_files"
TASK_FILES = ("chronoprism.yaml", "chronoprism_valence.yaml", "chronoprism_relevance.yaml", "utils.py")


def write_lm_eval_task(root: Path, benchmark: pl.DataFrame | None) -> int:
    """Copy the task files under `root/lm_eval/` when there is a benchmark to score; returns its row count."""
    if benchmark is None or benchmark.is_empty():
        return 0
    target = root / TASK_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in TASK_FILES:
        shutil.copyfile(FILES / name, target / name)
    return benchmark.height
