"""Evaluation: each century's finetuned model on the benchmark (value_eval), and the value trend across them."""

import dagster as dg

from pipelines.metadata import png_metadata, preview_markdown, stage_asset, stage_metadata, table_data_version
from pipelines.partitions import CENTURIES
from pipelines.resources import SettingsResource
from sources.schema import BENCHMARK, VALUE_EVAL, VALUE_TREND, empty
from sources.stats import StageStats
from sources.storage import write_bytes_atomic

NOT_WORSE_THAN_BASE = "not_worse_than_base"
EVAL_PREVIEW = ["century", "situation", "kind", "text", "valence", "predicted", "base_predicted", "p_supports"]
PROFILE_ROWS = 20


@stage_asset(
    "training",
    ["finetuned_model", "benchmark"],
    ("pytorch", "parquet"),
    partitioned=True,
    pool="gpu",  # the scorer loads the model like the trainer does: not beside a training run on one GPU
    check_specs=[
        dg.AssetCheckSpec(
            NOT_WORSE_THAN_BASE,
            asset="value_eval",
            description="warns when the finetuned model's valence accuracy is below its base model's",
        )
    ],
)
def value_eval(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Every benchmark item's valence (supports / opposes / either) as scored by this century's finetuned model with
    log-likelihoods: accuracy against the gold labels (overall and on the century's own items), majority baseline,
    confusion counts and the value profile, beside the base model's accuracy on the same items (scored once, cached).
    A century without a finetuned model writes no rows and is skipped by `value_trend`."""
    from training.base_models import resolve_base_model
    from training.evaluation import evaluate_century
    from training.finetune import MODEL_DIR
    from training.launch import finetuned_dir

    config, store, century = settings.get(), settings.store(), context.partition_key
    items = store.read("benchmark", schema=BENCHMARK)
    model_dir = finetuned_dir(store.home, century) / MODEL_DIR
    if not (model_dir / "config.json").is_file():
        context.log.warning(f"{century}: no finetuned model at {model_dir}; nothing is evaluated")
        store.write("value_eval", empty(VALUE_EVAL), century)
        skipped = {"skipped": "no finetuned model"}
        return dg.MaterializeResult(
            metadata={**skipped, "n_items": 0},
            check_results=[dg.AssetCheckResult(check_name=NOT_WORSE_THAN_BASE, passed=True, metadata=skipped)],
        )
    base_dir = resolve_base_model(config.training.base_model, store.home / "models")
    result = evaluate_century(model_dir, items, century, base_dir, cache_dir=store.home / "models" / "eval")
    path = store.write("value_eval", result.scored, century)
    base_accuracy = (result.base_accuracy or {}).get("accuracy")
    extra = {
        "n_items": result.accuracy["n"],
        "accuracy": result.accuracy["accuracy"],
        "majority_baseline": result.accuracy["majority_baseline"],
        "confusion": result.accuracy["confusion"],
        "own_century": result.own_century,
        "base_accuracy": base_accuracy,
        "worse_than_base": result.worse_than_base,
        "value_profile": dg.MetadataValue.md(preview_markdown(result.profile, rows=PROFILE_ROWS)),
        "model_dir": dg.MetadataValue.path(str(model_dir)),
        "base_model": dg.MetadataValue.path(str(base_dir)),
    }
    check = dg.AssetCheckResult(
        check_name=NOT_WORSE_THAN_BASE,
        passed=result.worse_than_base is not True,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"accuracy": result.accuracy["accuracy"], "base_accuracy": base_accuracy},
    )
    stats = StageStats("value_eval", n_in=items.height, n_out=result.scored.height).check()
    return dg.MaterializeResult(
        metadata=stage_metadata(
            stats, path, result.scored, EVAL_PREVIEW, {k: v for k, v in extra.items() if v is not None}
        ),
        data_version=table_data_version(result.scored),
        check_results=[check],
    )


# reads publish.trend_top_k: as many items as the data-side trend
@stage_asset(
    "training", ["value_eval", "value_trend_data"], ("polars", "parquet", "matplotlib"), reads="dataset.publish"
)
def value_trend(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """What the century models value, beside what the data says: per frequent benchmark item, each model's valence
    shares next to `value_trend_data` of its century; the cosine between consecutive centuries' profiles (model and
    data side, PG-Follow style); a plot of both trends. Every `value_eval` partition present is read; centuries
    without a model are skipped and named."""
    from training.evaluation import value_trend_report
    from training.plots import value_trend_png

    config, store = settings.get(), settings.store()
    evals = {
        century: store.read("value_eval", century, schema=VALUE_EVAL) for century in store.partitions("value_eval")
    }
    data_trend = store.read("value_trend_data", schema=VALUE_TREND, missing_ok=True)
    report = value_trend_report(evals, data_trend, CENTURIES, config.publish.trend_top_k)
    if report.skipped:
        context.log.info(f"skipped (no finetuned model, or an empty benchmark): {', '.join(report.skipped)}")
    path = store.write("value_trend", report.table)
    png = value_trend_png(report, CENTURIES)
    plot_path = write_bytes_atomic(store.home / "reports" / "value_trend.png", png)
    extra = {
        "plot": png_metadata(png),
        "plot_path": dg.MetadataValue.path(str(plot_path)),
        "evaluated_centuries": report.evaluated,
        "skipped_centuries": report.skipped,
        "cosine_consecutive": report.cosines,
        "summary": dg.MetadataValue.md(preview_markdown(report.summary, rows=len(CENTURIES))),
    }
    stats = StageStats("value_trend", n_in=report.table.height, n_out=report.table.height).check()
    return dg.MaterializeResult(
        metadata=stage_metadata(stats, path, report.table, None, extra), data_version=table_data_version(report.table)
    )
