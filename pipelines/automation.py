"""Declarative automation: when upstream data really changed, the affected partitions downstream follow.

Every asset that reads a non-root asset gets `new_data_downstream()` unless its module set a condition of its own.
Root assets (the raw sources) are left to the corpus sensor, the CLI and the weekly schedule, which know when their
files changed; the corpus sensor also requests the `documents` partitions a file touches, so nothing here reacts
to raw assets, and `documents` (which reads only raw assets) has no condition. The condition differs from
`AutomationCondition.eager()` in five ways, all for "only affected centuries rebuild":

- it reacts to a new *data version* of a dependency partition, not to any materialization: assets return a
  content hash as data version, so a rerun that wrote the same rows stops the wave there;
- it ignores updates made by `chronoprism build` (runs tagged `chronoprism/build_id`): the CLI runs its own
  downstream steps, so the daemon must not start the same work a second time;
- it never fires because something is merely missing (eager does on its first tick), so turning automation on
  in a fresh instance does not launch the whole graph;
- it waits while a dependency of the same partitioning is requested on the same tick (eager would put both in
  one run), so the wave advances one hop a tick and stops where the data stops changing;
- it waits for every blocking check of its dependencies to pass, so a failed check stops the wave, and
  `hf_publish` (downstream of every gated table) is only materialized behind green checks.

One limit: Dagster only sees same-tick requests of dependencies it could run in the same run. When a partition
and an unpartitioned dependency (documents_dedup[C019] and near_duplicate_clusters) are both triggered on one
tick, both are requested; if the unpartitioned one then writes new data, the partition is requested again.

Evaluated by the `chronoprism_automation` sensor (stopped by default; start it in the UI under Automation).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from pipelines.tags import BUILD_ID_TAG


def new_data_downstream() -> dg.AutomationCondition:
    changed_outside_cli = (
        dg.AutomationCondition.data_version_changed()
        & ~dg.AutomationCondition.executed_with_tags(tag_keys={BUILD_ID_TAG})
    ).with_label("new data (not from chronoprism build)")
    return (
        dg.AutomationCondition.any_deps_match(changed_outside_cli)
        .ignore(dg.AssetSelection.all().roots())
        .since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        # a dependency of the same partitioning requested on this tick runs first, so the wave can stop there
        & ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested())
        & ~dg.AutomationCondition.in_progress()
        # a failed blocking check upstream stops the wave there: nothing downstream of it (hf_publish included)
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("new_data_downstream")


def with_automation(assets: Sequence) -> list:
    """The assets with `new_data_downstream()` on every spec that reads a non-root asset and has no condition of
    its own (an asset reading only roots, like `documents`, is requested by the corpus sensor instead)."""
    condition = new_data_downstream()
    specs = [spec for item in assets if isinstance(item, dg.AssetsDefinition) for spec in item.specs]
    followed = {spec.key for spec in specs if spec.deps}  # materializable and not a root

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.automation_condition is not None or not any(dep.asset_key in followed for dep in spec.deps):
            return spec
        return spec.replace_attributes(automation_condition=condition)

    return [item.map_asset_specs(apply) if isinstance(item, dg.AssetsDefinition) else item for item in assets]


automation_sensor = dg.AutomationConditionSensorDefinition(
    "chronoprism_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=30,
    description="Evaluates each asset's automation condition (new_data_downstream: rebuild the partitions whose "
    "upstream data changed). Start it together with corpus_files_sensor for hands-off incremental ingest.",
)
