"""The Hugging Face dataset directory with its card, and publishing it to the Hub (or a dry-run plan)."""

import json
import os

import dagster as dg
import polars as pl

from assets._common import file_data_version, stage_asset, stage_metadata
from pipelines.resources import SettingsResource
from sources.schema import BENCHMARK, DOCUMENTS, MIXTURE, PREFERENCE, PRETRAIN, VALUE_TREND, VRD_SPLIT
from sources.settings import Settings
from sources.stats import StageStats
from sources.storage import Store, write_text_atomic
from training.dataset import CardInfo, code_version, source_notes, write_dataset
from training.publish import publish


def dataset_dir(settings: Settings):
    """DESIGN.md §5: `$CHRONOPRISM_HOME/publish/<publish.name>/`."""
    return settings.home_path / "publish" / settings.publish.name


def publish_files(settings: Settings) -> dict:
    """Where publishing keeps its state (last push), its dry-run plan and its last outcome: beside the dataset."""
    base = settings.home_path / "publish"
    name = settings.publish.name
    return {
        "state_path": base / f"{name}.last_push.json",
        "plan_path": base / f"{name}.publish_plan.json",
        "outcome_path": base / f"{name}.last_publish.json",
    }


def gather_tables(store: Store) -> dict[str, dict[str, pl.DataFrame]]:
    """config -> split -> rows, from the split tables (one file each, `split` column where there are several)."""

    def by_split(table: str, schema: dict) -> dict[str, pl.DataFrame]:
        rows = store.read(table, schema=schema, missing_ok=True)
        return {split: rows.filter(pl.col("split") == split) for split in sorted(set(rows["split"]))}

    centuries = store.partitions("pretrain_corpus")
    tables = {
        "vrd": by_split("vrd_splits", VRD_SPLIT),
        "sft_mixture": by_split("sft_mixture", MIXTURE),
        "preference_pairs": {"train": store.read("preference_pairs", schema=PREFERENCE, missing_ok=True)},
        "benchmark": {"test": store.read("benchmark", schema=BENCHMARK, missing_ok=True)},
        "pretrain": {c: store.read("pretrain_corpus", c, schema=PRETRAIN) for c in centuries},
        "value_trend": {"trend": store.read("value_trend_data", schema=VALUE_TREND, missing_ok=True)},
    }
    return {config: splits for config, splits in tables.items() if any(not df.is_empty() for df in splits.values())}


def card_info(settings: Settings, store: Store) -> CardInfo:
    documents = store.scan("documents")
    columns = ["source", "license", "provenance"]
    docs = (
        documents.select(columns).collect()
        if documents is not None
        else pl.DataFrame(schema={c: DOCUMENTS[c] for c in columns})
    )
    return CardInfo(
        name=settings.publish.name,
        license=settings.publish.license,
        sources=source_notes(docs),
        teacher={"backend": settings.teacher.backend, "model": settings.teacher.model},
        thresholds={
            "filter.relevance_threshold": settings.filter.relevance_threshold,
            "filter.relevance_scorer": settings.filter.relevance_scorer,
            "filter.rouge_threshold": settings.filter.rouge_threshold,
            "filter.cosine_threshold": settings.filter.cosine_threshold,
            "filter.decontam_ngram": settings.filter.decontam_ngram,
            "publish.validation_fraction": settings.publish.validation_fraction,
            "publish.test_fraction": settings.publish.test_fraction,
            "publish.split_salt": settings.publish.split_salt,
            "dedup.semantic_threshold": settings.dedup.semantic_threshold,
        },
        code_version=code_version(),
        repo_id=settings.publish.repo_id,
    )


@stage_asset(
    "publish",
    ["vrd_splits", "sft_mixture", "preference_pairs", "benchmark", "pretrain_corpus", "value_trend_data", "documents"],
    ("huggingface", "parquet"),
    reads="publish.filter.teacher.dedup",  # the card records thresholds and the teacher
)
def hf_dataset(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """The local Hugging Face dataset directory (DESIGN.md §5) with a generated card: YAML `configs:` for every
    table, per-century statistics, build info, license notes and the data-side value trend."""
    config, store = settings.get(), settings.store()
    tables = gather_tables(store)
    out = dataset_dir(config)
    files = write_dataset(out, tables, card_info(config, store))
    rows = {f"{c}/{s}": df.height for c, splits in tables.items() for s, df in splits.items()}
    stats = StageStats("hf_dataset", n_in=sum(rows.values()), n_out=sum(rows.values())).check()
    card = (out / "README.md").read_text(encoding="utf-8")
    return dg.MaterializeResult(
        metadata=stage_metadata(
            stats,
            out,
            extra={"rows_per_config_split": rows, "files": len(files), "card": dg.MetadataValue.md(card)},
        ),
        data_version=file_data_version(out),
    )


@stage_asset("publish", ["hf_dataset"], ("huggingface",), reads="publish")
def hf_publish(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Push the dataset to the Hub when `publish.repo_id` and the token env var are set (one commit with the
    changed files, nothing when the content hash matches the last push); otherwise write a dry-run plan."""
    config = settings.get()
    paths = publish_files(config)
    token = os.environ.get(config.publish.token_env) or None
    outcome = publish(
        dataset_dir(config),
        config.publish.repo_id,
        token,
        paths["state_path"],
        paths["plan_path"],
        private=config.publish.private,
        token_env=config.publish.token_env,
        dry_run=config.publish.dry_run,
    )
    record = {k: v for k, v in outcome.to_dict().items() if k != "files"}
    write_text_atomic(paths["outcome_path"], json.dumps(record, indent=2) + "\n")
    context.log.info(outcome.message or f"{outcome.action}: {outcome.target}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(f"{outcome.action}:{outcome.target}:{outcome.content_hash[:16]}"),
        metadata={
            "action": dg.MetadataValue.text(outcome.action),
            "target": dg.MetadataValue.text(outcome.target or "(none: dry run)"),
            "content_hash": dg.MetadataValue.text(outcome.content_hash),
            "files": dg.MetadataValue.int(len(outcome.files)),
            "bytes": dg.MetadataValue.int(sum(f.size for f in outcome.files)),
            "changed_files": dg.MetadataValue.json(outcome.added),
            "deleted_files": dg.MetadataValue.json(outcome.deleted),
            "commit": dg.MetadataValue.text(outcome.commit or ""),
            "plan_path": dg.MetadataValue.path(outcome.plan_path or ""),
            "message": dg.MetadataValue.text(outcome.message),
        },
    )
