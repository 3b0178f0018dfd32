"""Concurrency pools: `gpu` (finetuning) holds one slot, `teacher` (model-calling steps) as many as the backend bears.

dagster.yaml sets what a file can: the run queue (at most 4 runs, one run tagged `gpu` at a time) and the default
pool size of 1, which already keeps every pool, `gpu` included, to one step at a time. Per-pool sizes live in the
instance's database, so `chronoprism build` and `chronoprism ui` write them from the settings on every start:

- `gpu`: 1, one finetuning step at a time per GPU host (a multi-GPU job is one step: `accelerate launch`).
- `teacher`: `teacher.concurrency` for the `openai` backend, whose server fleet takes that many requests at once;
  for `transformers` on a machine without a GPU, cores // `teacher.torch_threads` (each step loads its own copy of
  a small model and keeps its threads to itself: on 2 cores at 1 thread, two centuries generate at once where one
  left a core idle); for `scripted` (no model), the cores; 1 otherwise (vllm, transformers on a GPU: one model per
  device).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from sources.settings import Settings

GPU_POOL = "gpu"
TEACHER_POOL = "teacher"
IN_PROCESS_BACKENDS = ("transformers", "vllm", "scripted")


def cpu_cores() -> int:
    """Every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def has_cuda_device() -> bool:
    """An NVIDIA device node, without importing torch (seconds) in the CLI."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def teacher_pool_limit(settings: Settings) -> int:
    teacher = settings.teacher
    if teacher.backend not in IN_PROCESS_BACKENDS:
        return max(1, teacher.concurrency)
    if teacher.backend == "scripted":  # no model at all
        return cpu_cores()
    if teacher.backend == "transformers" and not has_cuda_device():
        return max(1, cpu_cores() // (teacher.torch_threads or cpu_cores()))
    return 1


def pool_limits(settings: Settings) -> dict[str, int]:
    return {GPU_POOL: 1, TEACHER_POOL: teacher_pool_limit(settings)}


def apply_pool_limits(instance: dg.DagsterInstance, settings: Settings) -> dict[str, int]:
    """Write the pool sizes into the instance (only where they differ); returns them."""
    limits = pool_limits(settings)
    storage = instance.event_log_storage
    for pool, limit in limits.items():
        if storage.get_concurrency_info(pool).slot_count != limit:
            storage.set_concurrency_slots(pool, limit)
    return limits
