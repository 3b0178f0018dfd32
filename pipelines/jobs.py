"""Jobs: one per asset group (for the launchpad; new groups appear by themselves), and the weekly rebuild.

The `training_job` carries the `gpu` run tag, which dagster.yaml limits to one queued run at a time; inside any run,
the `gpu` pool on `finetuned_model` limits its step to one at a time across runs.
"""

import dagster as dg

import assets as asset_package
from pipelines.concurrency import GPU_POOL
from pipelines.resources import SettingsResource

GPU_GROUPS = ("training",)
GPU_RUN_TAGS = {GPU_POOL: "1"}


def asset_groups() -> list[str]:
    """The group names of every asset under assets/ (so a new stage module gets its job without an edit here)."""
    loaded = dg.load_assets_from_package_module(asset_package)
    return sorted({spec.group_name for item in loaded for spec in getattr(item, "specs", []) if spec.group_name})


def stage_job(group: str):
    return dg.define_asset_job(
        f"{group}_job",
        selection=dg.AssetSelection.groups(group),
        description=f"Materialize the `{group}` stage (pick a century partition in the launchpad).",
        tags=GPU_RUN_TAGS if group in GPU_GROUPS else None,
    )


@dg.op(description="Materialize every stale asset except hf_publish, then publish if every blocking check passed.")
def rebuild_then_publish_op(context: dg.OpExecutionContext, settings: SettingsResource) -> dg.Output[bool]:
    from pipelines.definitions import make_definitions  # the definitions import this module
    from pipelines.rebuild import rebuild_then_publish

    outcome = rebuild_then_publish(make_definitions({"settings": settings}), context.instance, context.log.info)
    metadata = {
        "runs": len(outcome.results),
        "failed": len(outcome.failed),
        "published": outcome.published,
        "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in outcome.problems) or "none"),
    }
    if outcome.problems:
        raise dg.Failure(description="not published: " + "; ".join(outcome.problems)[:2000], metadata=metadata)
    return dg.Output(outcome.published, metadata=metadata)


@dg.job(
    description="What the weekly_rebuild schedule runs: the `chronoprism build` planner on the instance (fresh "
    "partitions skipped), then hf_publish only when every blocking check upstream of it passed.",
    tags={"chronoprism/job": "weekly_rebuild"},
)
def weekly_rebuild_job():
    rebuild_then_publish_op()


JOBS: list = [*(stage_job(group) for group in asset_groups()), weekly_rebuild_job]
