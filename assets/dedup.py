"""Quality stage, part 2: exact + MinHash dedup across centuries, then the per-century pretraining corpus.

`near_duplicate_clusters` is the one global step (it reads every cleaned century); `documents_dedup` applies its
table to one century; `pretrain_corpus` writes that century in ProgressGym's shape.
"""

import dagster as dg
import polars as pl

from pipelines.metadata import png_metadata, stage_asset, stage_result, throughput_progress, written_result
from pipelines.partitions import century_partitions
from pipelines.resources import SettingsResource
from quality.dedup.documents import drop_duplicates, find_duplicates, minhash_config
from quality.pretrain import build_pretrain, century_bar_chart
from quality.tokens import teacher_tokenizer
from sources.parallel import batch_map_of
from sources.schema import DOCUMENTS, DUPLICATES
from sources.stats import StageStats
from sources.storage import batch_bytes_for

PREVIEW_COLUMNS = ["source", "title", "year", "n_chars", "text"]
DUPLICATES_TABLE = "near_duplicate_clusters"


@stage_asset("quality", ["documents_clean"], ("numpy", "parquet"))
def near_duplicate_clusters(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Exact copies and MinHash LSH near-duplicates (word 5-grams, 20 bands x 8 rows, exact-Jaccard verified)
    across every century at once, clustered by union-find; each cluster keeps its earliest-dated member. One row per
    dropped document: doc_id -> kept_doc_id."""
    config = settings.get()
    store = settings.store()
    centuries = store.partitions("documents_clean")
    batch_bytes = batch_bytes_for(config.memory_budget_gb)  # [issue 14] read twice in batches, never held whole

    def frames():
        for century in centuries:
            yield from store.batches("documents_clean", century, schema=DOCUMENTS, batch_bytes=batch_bytes)

    total = sum(store.num_rows("documents_clean", century) for century in centuries)
    progress = throughput_progress(context, DUPLICATES_TABLE, total)
    result = find_duplicates(frames, minhash_config(config.dedup), store.home / "tmp", progress, batch_map_of(config))
    path = store.write(DUPLICATES_TABLE, result.duplicates)
    context.log.info(f"{result.summary}")
    # the table holds the dropped documents; n_out counts the documents kept
    extra = {**result.summary, "centuries_read": centuries, "dagster/row_count": result.duplicates.height}
    return stage_result(result.stats, result.duplicates, path, extra=extra)


@stage_asset("quality", ["documents_clean", DUPLICATES_TABLE], partitioned=True)
def documents_dedup(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """The cleaned documents of one century without the copies `near_duplicate_clusters` marked; each one becomes a
    rejects/dedup row (exact_duplicate / near_duplicate) whose detail names the kept doc_id, century and Jaccard."""
    store = settings.store()
    century = context.partition_key
    duplicates = store.read(DUPLICATES_TABLE, schema=DUPLICATES)
    batch_bytes = batch_bytes_for(settings.get().memory_budget_gb)  # [issue 14] the century in batches
    stats, rejects = StageStats("dedup"), []
    with store.writer("documents_dedup", DOCUMENTS, century) as out:
        for docs in store.batches("documents_clean", century, schema=DOCUMENTS, batch_bytes=batch_bytes):
            result = drop_duplicates(docs, duplicates)
            out.write(result.documents)
            stats, rejects = stats + result.stats, [*rejects, result.rejects]
    store.write_rejects("dedup", pl.concat(rejects), century)
    return written_result(stats.check(), out, PREVIEW_COLUMNS)


def _tokens_by_century(context: dg.AssetExecutionContext) -> dict[str, int]:
    """Latest `tokens` metadata of every earlier pretrain_corpus partition (the chart's other bars)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key), limit=len(century_partitions.get_partition_keys()) * 20
    ).records
    tokens: dict[str, int] = {}
    for record in records:  # newest first
        materialization = record.event_log_entry.asset_materialization
        value = materialization.metadata.get("tokens") if materialization else None
        if materialization and materialization.partition and value is not None:
            tokens.setdefault(materialization.partition, int(value.value))
    return tokens


@stage_asset("quality", ["documents_dedup"], partitioned=True)
def pretrain_corpus(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """One century of deduplicated text in ProgressGym's pretraining shape (text, doc_id, year, source), with docs,
    characters and SmolLM2 tokens, each by source, and a bar chart of documents and tokens per century."""
    store = settings.store()
    century = context.partition_key
    tokenizer = teacher_tokenizer(store.home / "models")
    result = build_pretrain(store.read("documents_dedup", century, schema=DOCUMENTS), tokenizer)
    path = store.write("pretrain_corpus", result.corpus, century)
    per_century = {c: {"tokens": n} for c, n in _tokens_by_century(context).items()}
    per_century[century] = {"tokens": result.summary["tokens"]}
    for other in store.partitions("pretrain_corpus"):
        rows = store.scan("pretrain_corpus", [other]).select(pl.len()).collect().item()
        per_century.setdefault(other, {})["docs"] = rows
    extra = {
        **result.summary,
        "per_century": per_century,
        "chart": png_metadata(century_bar_chart(per_century, century)),
    }
    return stage_result(result.stats, result.corpus, path, ["source", "year", "text"], extra=extra)


CLUSTER_REPORT_TABLE = "near_duplicate_cluster_report"


@stage_asset("quality", [DUPLICATES_TABLE, "documents_clean"], ("polars", "parquet", "matplotlib"))
def near_duplicate_cluster_report(
    context: dg.AssetExecutionContext, settings: SettingsResource
) -> dg.MaterializeResult:
    """[issue 18] One row per near-duplicate cluster (kept document + its copies): size, centuries and sources of
    the members, lowest Jaccard; a histogram of cluster sizes in the metadata. The check
    `near_duplicate_cluster_report_size` warns when one cluster is too large (`dedup.cluster_warn_*`)."""
    from quality.dedup.cluster_report import cluster_report, cluster_size_histogram
    from sources.storage import write_bytes_atomic

    store = settings.store()
    duplicates = store.read(DUPLICATES_TABLE, schema=DUPLICATES)
    lazy = store.scan("documents_clean")
    members = pl.concat([duplicates["doc_id"], duplicates["kept_doc_id"]]).unique()
    sources = (
        lazy.select("doc_id", "source").filter(pl.col("doc_id").is_in(members.to_list())).collect()
        if lazy is not None
        else pl.DataFrame(schema={"doc_id": pl.String, "source": pl.String})
    )
    report = cluster_report(duplicates, sources)
    path = store.write(CLUSTER_REPORT_TABLE, report)
    png = cluster_size_histogram(report)
    plot_path = write_bytes_atomic(store.home / "reports" / f"{CLUSTER_REPORT_TABLE}.png", png)
    stats = StageStats(CLUSTER_REPORT_TABLE, n_in=report.height, n_out=report.height).check()
    extra = {
        "clusters": report.height,
        "largest_cluster": int(report["size"].max() or 0) if report.height else 0,
        "cross_century_clusters": int((report["n_centuries"] > 1).sum()),
        "histogram": png_metadata(png),
        "plot_path": dg.MetadataValue.path(str(plot_path)),
    }
    preview = ["size", "centuries", "sources", "min_similarity", "cluster_id"]
    return stage_result(stats, report, path, preview, extra=extra)
