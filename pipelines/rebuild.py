"""The weekly rebuild: materialize what is stale, then publish only if every blocking check upstream passed.

Used by the `weekly_rebuild_job` (pipelines/jobs.py) that the `weekly_rebuild` schedule starts. It reuses the CLI's
planner (pipelines/build.py), so the job skips fresh partitions exactly like `chronoprism build` does, and the
runs it starts appear in the UI tagged with one build id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from pipelines.build import StepResult, run_build
from pipelines.freshness import RunFacts
from pipelines.progress import PlainReporter

PUBLISH_ASSETS = ("hf_publish",)
SOURCE = "weekly_rebuild"  # the `chronoprism/source` tag on the runs it starts


@dataclass
class RebuildOutcome:
    results: list[StepResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why publishing was held back
    published: bool = False

    @property
    def failed(self) -> list[StepResult]:
        return [result for result in self.results if not result.success]


def blocking_check_problems(
    defs: dg.Definitions, instance: dg.DagsterInstance, assets: set[dg.AssetKey] | None = None
) -> list[str]:
    """Blocking checks on `assets` (default: all) that did not pass when each materialized partition was written."""
    graph = defs.resolve_asset_graph()
    facts = RunFacts(instance, graph)
    problems = []
    for key in sorted(assets if assets is not None else graph.materializable_asset_keys):
        partitions = sorted(instance.get_materialized_partitions(key)) if graph.get(key).is_partitioned else [None]
        for partition in partitions if graph.get(key).check_keys else []:
            where = key.to_user_string() + (f"[{partition}]" if partition else "")
            problems += [f"{where}: {problem}" for problem in facts.blocking_check_problems(key, partition)]
    return problems


def rebuild_then_publish(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    report: Callable[[str], None] = print,
    publish_assets: tuple[str, ...] = PUBLISH_ASSETS,
) -> RebuildOutcome:
    graph = defs.resolve_asset_graph()
    publish = {dg.AssetKey(name) for name in publish_assets} & set(graph.materializable_asset_keys)
    rest = set(graph.materializable_asset_keys) - publish
    outcome = RebuildOutcome()
    if rest:
        outcome.results = _build(defs, instance, rest, report)
    if not publish:
        report("no publish asset defined: nothing to publish")
        return outcome
    upstream = dg.AssetSelection.assets(*publish).upstream().resolve(graph) - publish
    outcome.problems = [f"{r.failed_label()} [{r.partition or 'all'}] failed: {r.error}" for r in outcome.failed]
    outcome.problems += blocking_check_problems(defs, instance, upstream)
    if outcome.problems:
        report("not publishing: " + "; ".join(outcome.problems))
        return outcome
    results = _build(defs, instance, publish, report)
    outcome.results += results
    outcome.published = all(result.success for result in results)
    return outcome


def _build(defs, instance, keys: set[dg.AssetKey], report) -> list[StepResult]:
    reporter = PlainReporter(report)
    selection = dg.AssetSelection.assets(*keys)
    return run_build(defs, selection, None, instance, with_upstream=False, reporter=reporter, source=SOURCE)
