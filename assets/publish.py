"""The Hugging Face dataset directory with its card, and publishing it to the Hub (or a dry-run plan)."""

import json
import os

import dagster as dg

from dataset.formats import document_metadata
from dataset.hf_dataset import card_info, gather_tables, write_dataset
from dataset.publish import dataset_dir, load_back_check, publish, publish_files
from pipelines.metadata import file_data_version, stage_asset, stage_metadata
from pipelines.resources import SettingsResource
from sources.stats import StageStats
from sources.storage import write_text_atomic


@stage_asset(
    "publish",
    ["vrd_splits", "sft_mixture", "preference_pairs", "benchmark", "pretrain_corpus", "value_trend_data", "documents"],
    ("huggingface", "parquet"),
    reads="publish.filter.teacher.dedup.collapse",  # the card records thresholds, the teacher, collapse warnings
)
def hf_dataset(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """The local Hugging Face dataset directory (DESIGN.md §5) with a generated card: YAML `configs:` for every
    table, per-century statistics, build info, license notes and the data-side value trend."""
    config, store = settings.get(), settings.store()
    tables = gather_tables(store)
    out = dataset_dir(config)
    files = write_dataset(out, tables, card_info(config, store), documents=document_metadata(store))
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
        verify=load_back_check,  # every pushed config loads back with the card's row counts, or the push failed
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
