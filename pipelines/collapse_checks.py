"""[issue 19] Teacher-collapse checks: `<asset>_collapse` on situations, vrd_candidates and vrd, per century.

Thin wrappers around quality/generation_stats.py: the check reads the written partition, computes its distribution
statistics and fails when a collapse rule fires (thresholds: the `collapse` settings section, documented in
docs/teacher.md). The description names what collapsed ("one text ('Justice') is 33 % of values in C019").
Severity WARN by default, so a weak teacher is flagged but the build goes on; `collapse.blocking = true` makes it
ERROR, and as these checks are blocking an ERROR stops everything downstream (splits, the dataset, publishing).
"""

from dataclasses import asdict

import dagster as dg

from pipelines.partitions import century_partitions
from pipelines.resources import SettingsResource
from quality.generation_stats import century_stats, collapse_findings, thresholds_of
from sources.storage import Store

COLLAPSE_ASSETS = ("situations", "vrd_candidates", "vrd")


def collapse_check(asset: str) -> dg.AssetChecksDefinition:
    """`<asset>_collapse`: the collapse rules over one century of `asset`."""

    @dg.asset_check(
        asset=asset,
        name=f"{asset}_collapse",
        blocking=True,  # an ERROR (collapse.blocking) stops downstream; a WARN never does
        partitions_def=century_partitions,
        description=f"Teacher collapse in {asset}: repeated texts, one valence, copied examples, restated passages "
        "(WARN; ERROR with collapse.blocking)",
    )
    def _check(context: dg.AssetCheckExecutionContext, settings: SettingsResource) -> dg.AssetCheckResult:
        config = settings.get()
        thresholds = thresholds_of(config)
        severity = dg.AssetCheckSeverity.ERROR if config.collapse.blocking else dg.AssetCheckSeverity.WARN
        stats = century_stats(Store(config.home_path), asset, context.partition_key, thresholds)
        if stats is None:  # a missing table is the `_gate` check's finding, not a collapse
            return dg.AssetCheckResult(passed=True, severity=severity, description="no table to judge")
        findings = collapse_findings(stats, thresholds)
        description = "; ".join(f.message for f in findings) or "no collapse found"
        context.log.info(f"{asset}_collapse [{context.partition_key}]: {description}")
        return dg.AssetCheckResult(
            passed=not findings,
            severity=severity,
            description=description,
            metadata={
                "findings": dg.MetadataValue.json([asdict(f) for f in findings]),
                "generation_stats": dg.MetadataValue.json(stats.to_dict()),
                "blocking": dg.MetadataValue.bool(config.collapse.blocking),
            },
        )

    return _check


COLLAPSE_CHECKS: list[dg.AssetChecksDefinition] = [collapse_check(asset) for asset in COLLAPSE_ASSETS]
