"""Date estimation (issue 9): the century classifier, opt-in placement of undated rows, and a check on `documents`.

    raw_<source> ──► estimated_documents ──► documents[century] ──► date_estimator
                     (undated rows placed       (takes the placed      (trains on dated documents, reports
                      by the saved model)        rows of its century)    held-out metrics, saves the model)

`estimated_documents` sits upstream of `documents`, `date_estimator` downstream, so the graph has no cycle: the
placement uses the latest saved model (`<home>/models/dating/LATEST`) or, on a first run, trains one on the fly
from the same ingested rows (which `date_estimator` then finds by fingerprint instead of training again).
"""

import dagster as dg
import polars as pl

from assets.documents import ESTIMATED_DOCUMENTS, raw_table, undated_table
from pipelines.metadata import png_metadata, stage_asset, stage_metadata, table_data_version
from pipelines.partitions import century_partitions
from pipelines.resources import SettingsResource
from sources.registry import SOURCES
from sources.schema import DOCUMENTS, UNDATED
from sources.stats import StageStats, counts_by

PREVIEW_COLUMNS = ["source", "title", "century", "date_confidence", "date_model", "text"]
FLAGGED_SHOWN = 20


@stage_asset("sources", [raw_table(spec) for spec in SOURCES], ("scikitlearn", "parquet"), name=ESTIMATED_DOCUMENTS)
def estimated_documents(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Undated user rows placed in a century by the date estimator (opt-in: `corpus.estimate_dates`, `build
    --estimate-dates`). Rows rejected at ingest only for a missing or unparseable date are scored; those at or above
    `corpus.estimate_threshold` get `date_method="estimated"`, their probability and the model version, and join
    `documents`; the rest go to rejects/date_estimate with their ingest reason and the estimate in `detail`."""
    from sources.dating import STAGE, ensure_estimator, keep_rejected, models_dir_of, place_undated
    from sources.dating.store import dated_corpus

    config = settings.get()
    store = settings.store()

    def ingested() -> pl.DataFrame:
        tables = [store.read(raw_table(spec), schema=DOCUMENTS, missing_ok=True) for spec in SOURCES]
        return dated_corpus(tables, config)

    placed, stats, model = [], StageStats(STAGE), None
    for spec in SOURCES:
        undated = store.read(undated_table(spec), schema=UNDATED, missing_ok=True)
        if undated.is_empty():
            result = keep_rejected(undated, "")
        elif not config.corpus.estimate_dates:  # a table left from an opted-in ingest: its rows stay accounted for
            result = keep_rejected(undated, "date estimation is off (corpus.estimate_dates)")
        else:
            if model is None:
                model = ensure_estimator(models_dir_of(config), ingested, announce=context.log.info)
            result = place_undated(undated, model.estimator, config.corpus.estimate_threshold)
        store.write_rejects(STAGE, result.rejects, spec.name)
        placed.append(result.documents)
        stats = stats + result.stats
    documents = pl.concat(placed)
    path = store.write(ESTIMATED_DOCUMENTS, documents)
    context.log.info(f"placed {stats.n_out} of {stats.n_in} undated rows; {dict(stats.rejected)} stay rejected")
    extra = {
        "estimate_dates": config.corpus.estimate_dates,
        "threshold": config.corpus.estimate_threshold,
        "model_version": model.estimator.version if model else "",
        "model_trained_now": bool(model and not model.cached),
        "rows_per_century": counts_by(documents, "century"),
    }
    return dg.MaterializeResult(
        metadata=stage_metadata(stats.check(), path, documents, PREVIEW_COLUMNS, extra=extra),
        data_version=table_data_version(documents),
    )


@stage_asset("sources", ["documents"], ("scikitlearn",))
def date_estimator(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """A century classifier (char 2-4-gram hashing, sublinear tf-idf, SGD logistic regression, temperature scaling)
    trained on the dated rows of every `documents` partition and evaluated on 2,000-char passages held out by
    content (a Bible chapter position in every edition, a whole SOTU address). Reports accuracy, macro-F1, ECE
    before/after calibration, per-source figures, a confusion matrix and a reliability diagram; saves the model to
    <home>/models/dating/ (reused as is when the documents and config are unchanged)."""
    from sources.dating import models_dir_of, train_or_reuse
    from sources.dating.plots import confusion_png, reliability_png

    store = settings.store()
    documents = store.read_all("documents", schema=DOCUMENTS)
    trained = train_or_reuse(documents, models_dir_of(settings.get()))
    report = trained.estimator.report
    stats = StageStats("date_estimator")
    stats.n_in = documents.height
    stats.n_out = report.get("n_documents", 0)
    stats.reject("date_method_estimated", stats.n_in - stats.n_out)
    context.log.info(
        f"{trained.estimator.version} ({'reused' if trained.cached else 'trained'}): held-out accuracy "
        f"{report.get('accuracy')}, ECE {report.get('ece_uncalibrated')} -> {report.get('ece')}"
    )
    extra = {
        "model_version": trained.estimator.version,
        "reused_saved_model": trained.cached,
        "accuracy": _number(report.get("accuracy")),
        "macro_f1": _number(report.get("macro_f1")),
        "ece": _number(report.get("ece")),
        "ece_uncalibrated": _number(report.get("ece_uncalibrated")),
        "ece_sklearn_ovr": _number(report.get("ece_ovr")),
        "temperature": _number(report.get("temperature")),
        "document_accuracy": _number(report.get("document_accuracy")),
        "document_ece": _number(report.get("document_ece")),
        "per_source": report.get("per_source", {}),
        "passages_per_split": report.get("passages", {}),
        "document_threshold_coverage": report.get("document_threshold_coverage", {}),
        "classes": report.get("classes", []),
        "config": report.get("config_str", ""),
        # [issue 13] what the confidence is worth on sources the model never saw (leave-one-source-out)
        **unseen_metadata(report.get("unseen") or {}),
        "train_seconds": _number(report.get("total_seconds")),
        "confusion_matrix": png_metadata(confusion_png(report)),
        "reliability_diagram": png_metadata(reliability_png(report)),
    }
    return dg.MaterializeResult(
        metadata=stage_metadata(stats.check(), trained.path, extra=extra),
        data_version=dg.DataVersion(trained.estimator.version),
    )


def unseen_metadata(unseen: dict) -> dict:
    """Unseen-source accuracy, precision/coverage at the report threshold, and the per-held-out-source table."""
    at = (unseen.get("document_at_threshold") or {}).get(f"{unseen.get('threshold', 0.9):.2f}", {})
    return {
        "unseen_passage_accuracy": _number(unseen.get("passage_accuracy")),
        "unseen_document_accuracy": _number(unseen.get("document_accuracy")),
        "unseen_coverage_at_threshold": _number(at.get("coverage")),
        "unseen_precision_at_threshold": _number(at.get("precision")),
        "unseen_per_source": unseen.get("per_group", {}),
    }


def _number(value: float | None) -> float:
    return round(float(value), 4) if value is not None else float("nan")


@dg.asset_check(
    asset="documents",
    name="dates_agree_with_estimate",
    blocking=False,
    partitions_def=century_partitions,
    description="Warns about documents whose metadata century the saved date estimator strongly disagrees with "
    "(corpus.estimate_check_min_gap centuries or more, at corpus.estimate_check_min_confidence or above): likely "
    "mis-dated. Passes without scoring until a date estimator has been trained.",
)
def dates_agree_with_estimate(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    from pipelines.metadata import preview_markdown
    from sources.dating import DATE_METHOD, disagreements, load_latest, models_dir_of

    config = settings.get()
    store = settings.store()
    estimator = load_latest(models_dir_of(config))
    if estimator is None:
        return dg.AssetCheckResult(passed=True, metadata={"skipped": "no saved date estimator yet"})
    documents = store.read("documents", context.partition_key, schema=DOCUMENTS, missing_ok=True)
    flagged = disagreements(
        documents, estimator, config.corpus.estimate_check_min_gap, config.corpus.estimate_check_min_confidence
    )
    return dg.AssetCheckResult(
        passed=flagged.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "n_checked": documents.filter(pl.col("date_method") != DATE_METHOD).height,
            "n_flagged": flagged.height,
            "flagged_by_source": counts_by(flagged, "source"),
            "model_version": estimator.version,
            "flagged": dg.MetadataValue.md(preview_markdown(flagged, rows=FLAGGED_SHOWN)),
        },
    )


DATING_CHECKS = [dates_agree_with_estimate]
