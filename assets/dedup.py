"""Quality stage, part 2: exact + MinHash dedup across centuries, then the per-century pretraining corpus.

`near_duplicate_clusters` is the one global step (it reads every cleaned century); `documents_dedup` applies its
table to one century; `pretrain_corpus` writes that century in ProgressGym's shape.
"""

import dagster as dg
import polars as pl

from pipelines.metadata import png_metadata, stage_asset, stage_result
from pipelines.partitions import century_partitions
from pipelines.resources import SettingsResource
from quality.dedup.documents import drop_duplicates, find_duplicates, minhash_config
from quality.pretrain import build_pretrain, century_bar_chart
from quality.tokens import teacher_tokenizer
from sources.schema import DOCUMENTS, DUPLICATES

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
    frames = (store.read("documents_clean", century, schema=DOCUMENTS) for century in centuries)
    result = find_duplicates(frames, minhash_config(config.dedup))
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
    result = drop_duplicates(store.read("documents_clean", century, schema=DOCUMENTS), duplicates)
    path = store.write("documents_dedup", result.documents, century)
    store.write_rejects("dedup", result.rejects, century)
    return stage_result(result.stats, result.documents, path, PREVIEW_COLUMNS)


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
