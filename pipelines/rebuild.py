"""The weekly rebuild as Dagster sees it: run requests for what is stale, publishing only behind green checks.

The `weekly_rebuild` schedule (pipelines/schedules.py) evaluates `rebuild_requests` on every tick:

- it asks `pipelines.freshness` which (asset, partition) pairs are stale (missing, new code version, new upstream
  data, changed settings or corpus files, a blocking check that did not pass) and requests the *front* of that
  set: the stale partitions none of whose upstream partitions is stale, one `RunRequest` per century partition
  (and one for the unpartitioned assets), so every request can run at once and the UI shows one run per
  partition;
- the rest of the wave follows by declarative automation (pipelines/automation.py): each asset downstream runs
  once the data it reads has a new data version, and only when every blocking check of its dependencies passed,
  so a failed check stops the wave, and `hf_publish` is only ever materialized behind green checks;
- when nothing is stale it returns a `SkipReason`, which the UI shows on the tick: no run, no teacher call.

Why not one backfill request: a schedule cannot launch an asset backfill through a public API
(`RunRequest.for_asset_graph_subset` is private and only the sensor daemon processes it), and a single run
cannot span our global steps (near-duplicate detection reads every century).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import dagster as dg

from pipelines.freshness import RunFacts, reads_partition, stale_partitions
from pipelines.tags import SOURCE_TAG
from sources.settings import Settings

PUBLISH_ASSETS = frozenset({dg.AssetKey("hf_publish")})
SOURCE = "weekly_rebuild"  # the `chronoprism/source` tag on the runs it requests

Item = tuple[dg.AssetKey, str | None]


def blocking_check_problems(asset_graph, instance: dg.DagsterInstance, keys: set[dg.AssetKey]) -> list[str]:
    """Blocking checks on `keys` that did not pass in the run that wrote each materialized partition."""
    facts = RunFacts(instance, asset_graph)
    problems = []
    for key in sorted(keys):
        node = asset_graph.get(key)
        if not node.check_keys:
            continue
        for partition in sorted(instance.get_materialized_partitions(key)) if node.is_partitioned else [None]:
            where = key.to_user_string() + (f"[{partition}]" if partition else "")
            problems += [f"{where}: {problem}" for problem in facts.blocking_check_problems(key, partition)]
    return problems


def front(asset_graph, stale: Mapping[Item, str]) -> list[Item]:
    """The stale items with no stale item upstream of them: what can run now, all at once."""
    ancestors: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for key in asset_graph.toposorted_asset_keys:
        parents = asset_graph.get(key).parent_keys
        ancestors[key] = set(parents).union(*(ancestors.get(parent, set()) for parent in parents))
    return [
        (key, partition)
        for key, partition in stale
        if not any(
            other in ancestors.get(key, set()) and reads_partition(partition, other_partition)
            for other, other_partition in stale
        )
    ]


def rebuild_requests(
    asset_graph, instance: dg.DagsterInstance, settings: Settings, tick_id: str
) -> list[dg.RunRequest] | dg.SkipReason:
    """One tick of the weekly rebuild (see the module docstring); `tick_id` makes the run keys unique per tick."""
    stale = stale_partitions(asset_graph, instance, settings)
    if not stale:
        return dg.SkipReason("nothing is stale: every partition is fresh, nothing to rebuild or publish")
    ready = front(asset_graph, stale)
    held = [item for item in ready if item[0] in PUBLISH_ASSETS]
    if held:
        upstream = dg.AssetSelection.assets(*PUBLISH_ASSETS).upstream().resolve(asset_graph) - PUBLISH_ASSETS
        problems = blocking_check_problems(asset_graph, instance, upstream)
        if problems:
            ready = [item for item in ready if item not in held]
            if not ready:
                return dg.SkipReason("not publishing: " + "; ".join(problems)[:1000])
    by_partition: dict[str | None, list[dg.AssetKey]] = defaultdict(list)
    for key, partition in ready:
        by_partition[partition].append(key)
    return [
        dg.RunRequest(
            run_key=f"{tick_id}:{partition or 'unpartitioned'}",
            asset_selection=sorted(keys),
            partition_key=partition,
            tags={SOURCE_TAG: SOURCE},
        )
        for partition, keys in sorted(by_partition.items(), key=lambda item: item[0] or "")
    ]
