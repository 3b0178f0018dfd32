"""Jobs: one per asset group, for the launchpad (new groups appear by themselves).

The `training_job` carries the `gpu` run tag, which dagster.yaml limits to one queued run at a time; inside any run,
the `gpu` pool on `finetuned_model` limits its step to one at a time across runs.
"""

from collections.abc import Iterable, Sequence

import dagster as dg

from pipelines.concurrency import GPU_POOL

GPU_GROUPS = ("training",)
GPU_RUN_TAGS = {GPU_POOL: "1"}


def asset_groups(assets: Sequence) -> list[str]:
    """The group names of the given asset definitions."""
    return sorted({spec.group_name for item in assets for spec in getattr(item, "specs", []) if spec.group_name})


def stage_job(group: str):
    return dg.define_asset_job(
        f"{group}_job",
        selection=dg.AssetSelection.groups(group),
        description=f"Materialize the `{group}` stage (pick a century partition in the launchpad).",
        tags=GPU_RUN_TAGS if group in GPU_GROUPS else None,
    )


def stage_jobs(groups: Iterable[str]) -> list:
    return [stage_job(group) for group in groups]
