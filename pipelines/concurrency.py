"""Concurrency pools: `gpu` (finetuning) holds one slot, `teacher` (model-calling steps) as many as the backend bears.

dagster.yaml sets what a file can: the run queue (at most 4 runs, one run tagged `gpu` at a time) and the default
pool size of 1, which already keeps every pool, `gpu` included, to one step at a time. Per-pool sizes live in the
instance's database, so `chronoprism build` and `chronoprism ui` write them from the settings on every start:

- `gpu`: 1, one finetuning step at a time per GPU host (a multi-GPU job is one step: `accelerate launch`).
- `teacher`: 1 for in-process backends (transformers, vllm, scripted), since each step loads its own model copy;
  `teacher.concurrency` for the `openai` backend, whose server fleet takes that many requests at once.
"""

from __future__ import annotations

import dagster as dg

from sources.settings import Settings

GPU_POOL = "gpu"
TEACHER_POOL = "teacher"
IN_PROCESS_BACKENDS = ("transformers", "vllm", "scripted")


def teacher_pool_limit(settings: Settings) -> int:
    if settings.teacher.backend in IN_PROCESS_BACKENDS:
        return 1
    return max(1, settings.teacher.concurrency)


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
