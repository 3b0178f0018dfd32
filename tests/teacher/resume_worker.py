"""Run situations + VRD generation for the kill -9 resume test (a separate process the test can kill).

usage: python -m tests.teacher.resume_worker HOME PASSAGES_PARQUET OUT_PARQUET DELAY_S
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl

from teacher.backends.scripted import ScriptedBackend
from teacher.cache import TeacherCache
from teacher.client import Teacher
from teacher.generate import GenerationConfig, extract_situations, generate_vrd


def run(home: Path, passages: pl.DataFrame, delay_s: float) -> tuple[pl.DataFrame, dict]:
    teacher = Teacher(ScriptedBackend(delay_s=delay_s), TeacherCache.for_home(home), batch_size=2)
    cfg = GenerationConfig(max_situations=None)
    situations = extract_situations(passages, teacher, cfg).frame
    candidates = generate_vrd(situations, teacher, cfg).frame
    return candidates, teacher.stats.counters.to_dict()


if __name__ == "__main__":
    home, passages_path, out, delay = sys.argv[1:5]
    frame, counters = run(Path(home), pl.read_parquet(passages_path), float(delay))
    frame.write_parquet(out)
    print(json.dumps(counters))
