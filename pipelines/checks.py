"""Asset checks: thin wrappers around quality validators (blocking where bad data would poison downstream).

Every gated table gets two checks from one factory: `<asset>_gate` (blocking, ERROR severity: schema, non-null
and unique ids, year inside the partition's century, valence / kind / relevance domains) and `<asset>_soft`
(WARN severity: empty tables, short items, missing explanations). The split tables add cross-table gates: no
situation in two splits, and zero train/benchmark overlap. A failing blocking check stops every downstream asset
of the run. Metadata: failures by kind, plus the failing expectations with a few unexpected values.
The validators live in quality/validation.py (Great Expectations suites behind one plain function).
"""

from collections.abc import Callable

import dagster as dg
import polars as pl

from pipelines.collapse_checks import COLLAPSE_CHECKS
from pipelines.partitions import century_partitions
from pipelines.resources import SettingsResource
from quality.validation import Level, ValidationResult, columns_read, validate_table
from sources.settings import Settings
from sources.storage import Store

DETAILS_SHOWN = 20

# asset key -> (table name in the suites, partitioned by century?)
GATED_ASSETS: dict[str, tuple[str, bool]] = {
    "documents": ("documents", True),
    "pretrain_corpus": ("pretrain", True),
    "vrd_candidates": ("vrd_candidates", True),
    "vrd_relevant": ("vrd_relevant", True),
    "vrd": ("vrd", True),
    "vrd_splits": ("vrd_splits", False),
    "sft_mixture": ("sft_mixture", False),
    "preference_pairs": ("preference_pairs", False),
    "benchmark": ("benchmark", False),
}
# split tables without a `split` column hold one split
SPLIT_OF_TABLE = {"preference_pairs": "train", "benchmark": "test"}
SPLIT_UPSTREAM = {
    "vrd_splits": [],
    "sft_mixture": ["vrd_splits"],
    "preference_pairs": ["vrd_splits"],
    "benchmark": ["vrd_splits", "sft_mixture", "preference_pairs"],
}


def read_asset_table(
    store: Store, asset: str, partition: str | None, columns: set[str] | None = None
) -> pl.DataFrame | None:
    """The table as written (no schema coercion, so the schema rule sees what is really there); None if absent.

    [issue 14] With `columns`, only those are read and every other column is all null of its written dtype: the
    suites see the same column set, dtypes and rows without a documents partition's text being loaded whole."""
    if not store.exists(asset, partition):
        return None
    if columns is None:
        return store.read(asset, partition)
    lazy = pl.scan_parquet(store.table_path(asset, partition))
    schema = lazy.collect_schema()
    if not columns & set(schema):  # nothing to read would leave no rows to count
        return store.read(asset, partition)
    return lazy.select(
        [pl.col(name) if name in columns else pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items()]
    ).collect()


def situation_splits(store: Store, asset: str) -> pl.DataFrame | None:
    """(situation_id, split) of a split table."""
    df = read_asset_table(store, asset, None)
    if df is None:
        return None
    split = pl.col("split") if "split" in df.columns else pl.lit(SPLIT_OF_TABLE.get(asset, "train")).alias("split")
    return df.select("situation_id", split)


def check_result(result: ValidationResult, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=result.success,
        severity=severity,
        description=result.summary(),
        metadata={
            "failures_by_kind": dg.MetadataValue.json(result.failures),
            "n_rows": dg.MetadataValue.int(result.n_rows),
            "failed_expectations": dg.MetadataValue.json(result.details[:DETAILS_SHOWN]),
        },
    )


def missing(table: str, level: Level) -> ValidationResult:
    result = ValidationResult(table=table, level=level, n_rows=0)
    result.fail("missing_table", 1, note="the asset wrote no table file")
    return result


def table_check(asset: str, level: Level) -> dg.AssetChecksDefinition:
    """`<asset>_gate` (blocking) or `<asset>_soft` (warn) over the asset's own table (its partition)."""
    table, partitioned = GATED_ASSETS[asset]
    blocking = level == "blocking"
    extra: Callable[[Settings, Store], list[ValidationResult]] = (
        cross_table_gates(asset) if blocking else lambda *_: []
    )

    @dg.asset_check(
        asset=asset,
        name=f"{asset}_{'gate' if blocking else 'soft'}",
        blocking=blocking,
        partitions_def=century_partitions if partitioned else None,
        description=(
            f"{'Blocking' if blocking else 'Soft'} Great Expectations suite for {table}"
            + (": schema, non-null and unique ids, domains" if blocking else ": warnings only")
        ),
    )
    def _check(context: dg.AssetCheckExecutionContext, settings: SettingsResource) -> dg.AssetCheckResult:
        config = settings.get()
        store = Store(config.home_path)
        partition = context.partition_key if partitioned else None
        df = read_asset_table(store, asset, partition, columns_read(table, partition, level))
        result = missing(table, level) if df is None else validate_table(df, table, partition, level)
        for other in extra(config, store):
            if not other.success:
                for kind, count in other.failures.items():
                    result.fail(kind, count, **{"from": other.table})
                result.details.extend(other.details)
        context.log.info(result.summary())
        return check_result(result, dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN)

    return _check


def cross_table_gates(asset: str) -> Callable[[Settings, Store], list[ValidationResult]]:
    """Split disjointness against the split tables upstream of `asset`; for the benchmark, also zero overlap."""
    if asset not in SPLIT_UPSTREAM:
        return lambda *_: []

    def gates(config: Settings, store: Store) -> list[ValidationResult]:
        from dataset.decontam import find_contamination
        from dataset.splits import benchmark_references
        from quality.validation import validate_benchmark_overlap, validate_split_disjointness

        frames = {name: situation_splits(store, name) for name in [asset, *SPLIT_UPSTREAM[asset]]}
        results = [validate_split_disjointness({name: df for name, df in frames.items() if df is not None})]
        if asset == "benchmark":
            bench = read_asset_table(store, "benchmark", None)
            if bench is not None:
                references = benchmark_references(store)
                rules = find_contamination(bench, references, config.filter.decontam_ngram) if bench.height else []
                results.append(validate_benchmark_overlap(bench, rules))
        return results

    return gates


ASSET_CHECKS: list[dg.AssetChecksDefinition] = [
    table_check(asset, level) for asset in GATED_ASSETS for level in ("blocking", "warn")
]


# [issue 18] one cluster swallowing a partition (MinHash on templated text) is a warning, never a gate
@dg.asset_check(
    asset="near_duplicate_cluster_report",
    name="near_duplicate_cluster_report_size",
    blocking=False,
    description="Warns when a near-duplicate cluster exceeds dedup.cluster_warn_size members or holds more than "
    "dedup.cluster_warn_share of one century's cleaned documents; names each such cluster.",
)
def near_duplicate_cluster_size(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    from quality.dedup.cluster_report import ClusterLimits, oversized_clusters
    from sources.schema import CLUSTER_REPORT

    config = settings.get()
    store = Store(config.home_path)
    report = store.read("near_duplicate_cluster_report", schema=CLUSTER_REPORT, missing_ok=True)
    docs_per_century = {
        c: store.scan("documents_clean", [c]).select(pl.len()).collect().item()
        for c in store.partitions("documents_clean")
    }
    limits = ClusterLimits(config.dedup.cluster_warn_size, config.dedup.cluster_warn_share)
    found = oversized_clusters(report, docs_per_century, limits)
    for cluster in found:
        context.log.warning(cluster.describe())
    return dg.AssetCheckResult(
        passed=not found,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(c.describe() for c in found[:5]) or f"{report.height} clusters, none oversized",
        metadata={
            "oversized": dg.MetadataValue.json(
                [
                    {
                        "cluster_id": c.cluster_id,
                        "size": c.size,
                        "century": c.century,
                        "share": round(c.share, 4),
                        "rule": c.rule,
                    }
                    for c in found[:DETAILS_SHOWN]
                ]
            ),
            "n_oversized": dg.MetadataValue.int(len(found)),
            "limits": dg.MetadataValue.json({"max_size": limits.max_size, "max_share": limits.max_share}),
        },
    )


ASSET_CHECKS.append(near_duplicate_cluster_size)
ASSET_CHECKS += COLLAPSE_CHECKS  # [issue 19] teacher collapse on situations / vrd_candidates / vrd (warn)
