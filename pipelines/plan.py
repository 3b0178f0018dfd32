"""A build's plan: the selected assets cut into steps of one partitioning, in dependency order, and step results.

Dagster runs one partition per run. A graph that alternates between unpartitioned assets (per-source ingest, the
global MinHash step, the published dataset) and century-partitioned ones is cut into steps of one kind; a
partitioned step runs once per century (pipelines/build.py). Shared by the build and its progress reporters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg


@dataclass(slots=True)
class Step:
    partitioned: bool
    keys: list[dg.AssetKey] = field(default_factory=list)

    def label(self) -> str:
        names = [key.to_user_string() for key in self.keys]
        return ", ".join(names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")


@dataclass(slots=True)
class StepResult:
    step: Step
    partition: str | None
    success: bool
    seconds: float
    run_id: str
    error: str = ""
    failed_keys: list[dg.AssetKey] = field(default_factory=list)  # of `step.keys`: those that did not succeed

    def failed_label(self) -> str:
        return Step(self.step.partitioned, self.failed_keys or self.step.keys).label()


def plan_steps(asset_graph, selected: set[dg.AssetKey]) -> list[Step]:
    """Group selected assets into alternating unpartitioned (even) / partitioned (odd) steps."""
    stage_of: dict[dg.AssetKey, int] = {}
    for key in asset_graph.toposorted_asset_keys:
        if key not in selected:
            continue
        partitioned = asset_graph.get(key).is_partitioned
        parity = 1 if partitioned else 0
        stage = parity
        for parent in asset_graph.get(key).parent_keys:
            if parent in stage_of:
                parent_stage = stage_of[parent]
                needed = parent_stage if parent_stage % 2 == parity else parent_stage + 1
                stage = max(stage, needed)
        stage_of[key] = stage
    steps: dict[int, Step] = {}
    for key, stage in stage_of.items():
        steps.setdefault(stage, Step(partitioned=stage % 2 == 1)).keys.append(key)
    return [steps[stage] for stage in sorted(steps)]
