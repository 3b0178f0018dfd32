"""Using the estimator: place undated rows in a century (opt-in), and find documents whose date it doubts.

Placement is a stage of its own (`date_estimate`): rows in = the `undated_<source>` rows, rows out = those
placed (`date_method = "estimated"`), rejected = the rest, which keep their ingest reason (missing_date /
unparseable_date) with the estimate added to `detail`. A row is placed only when the confidence calibrated on
*unseen* sources clears the threshold and its conformal century set is that one century (unseen.py); a text the
model finds out of distribution (a set of several centuries) stays quarantined however confident it looks.
Together with ingest (which hands these rows over instead of writing them to its rejects) every row read still
ends in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sources.base import UNDATED_REASONS  # the only ingest rejections the estimator may overturn
from sources.dating.model import DATE_METHOD, DateEstimator, Estimate, date_of
from sources.schema import ESTIMATED_DOCUMENTS, REJECTS, UNDATED, Reject, conform, doc_id_of, empty, frame_of
from sources.stats import StageStats

STAGE = "date_estimate"


@dataclass(slots=True)
class Placement:
    documents: pl.DataFrame  # ESTIMATED_DOCUMENTS
    rejects: pl.DataFrame  # REJECTS
    stats: StageStats


def keep_rejected(undated: pl.DataFrame, why: str) -> Placement:
    """Every undated row back to rejects unscored (estimation off): nothing is lost from the accounting."""
    return _place(conform(undated, UNDATED), [None] * undated.height, threshold=1.0, model="", why=why)


def place_undated(undated: pl.DataFrame, estimator: DateEstimator, threshold: float) -> Placement:
    """Score each undated row; place it when the calibrated confidence reaches `threshold`."""
    undated = conform(undated, UNDATED)
    scorable = undated["reason"].is_in(list(UNDATED_REASONS)).to_list()
    texts = [text for text, ok in zip(undated["text"].to_list(), scorable, strict=True) if ok]
    scored = iter(estimator.estimate(texts))
    estimates = [next(scored) if ok else None for ok in scorable]
    return _place(undated, estimates, threshold, estimator.version, why="")


def _place(
    undated: pl.DataFrame, estimates: list[Estimate | None], threshold: float, model: str, why: str
) -> Placement:
    stats = StageStats(STAGE)
    placed: list[dict] = []
    rejects: list[Reject] = []
    for row, estimate in zip(undated.iter_rows(named=True), estimates, strict=True):
        stats.n_in += 1
        if estimate is not None and estimate.confidence >= threshold and estimate.single_century:
            date = date_of(estimate)
            text = row["text"]
            placed.append(
                {
                    "doc_id": doc_id_of(row["source"], row["source_doc_id"]),
                    "source": row["source"],
                    "source_doc_id": row["source_doc_id"],
                    "title": row["title"],
                    "author": row["author"],
                    "language": row["language"],
                    "text": text,
                    "year": date.year,
                    "year_min": date.year_min,
                    "year_max": date.year_max,
                    "date_method": date.method,
                    "century": estimate.century,
                    "n_chars": len(text),
                    "license": row["license"],
                    "provenance": row["provenance"],
                    "date_confidence": round(estimate.confidence, 4),
                    "date_model": model,
                }
            )
            stats.n_out += 1
            stats.measure("confidence_placed", estimate.confidence)
            continue
        if estimate is None:
            note = why or "not scored"
        else:
            why_not = (
                f"< threshold {threshold:g}"
                if estimate.confidence < threshold
                else f"out of distribution: century set {{{', '.join(estimate.centuries)}}} is not one century"
            )
            note = (
                f"estimated {estimate.century} with p={estimate.confidence:.2f} on unseen sources "
                f"(in-domain {estimate.in_domain:.2f}) {why_not} ({model})"
            )
            stats.measure("confidence_kept", estimate.confidence)
        rejects.append(
            Reject.of(
                row_ref=row["row_ref"],
                source=row["source"],
                stage=STAGE,
                reason=row["reason"],
                detail=f"{row['detail']}; {note}",
                text=row["text"],
            )
        )
        stats.reject(row["reason"])
    documents = pl.DataFrame(placed, schema=ESTIMATED_DOCUMENTS) if placed else empty(ESTIMATED_DOCUMENTS)
    return Placement(documents, frame_of(rejects, REJECTS), stats.check())


def disagreements(
    documents: pl.DataFrame, estimator: DateEstimator, min_gap: int = 2, min_confidence: float = 0.9
) -> pl.DataFrame:
    """Documents (not themselves estimated) whose estimate is `min_gap`+ centuries from their metadata century
    with confidence >= `min_confidence`: likely mis-dated. Columns: doc_id, source, title, year, century,
    estimated_century, confidence, gap."""
    dated = documents.filter(pl.col("date_method") != DATE_METHOD)
    columns = {
        "doc_id": pl.String,
        "source": pl.String,
        "title": pl.String,
        "year": pl.Int32,
        "century": pl.String,
        "estimated_century": pl.String,
        "confidence": pl.Float64,
        "gap": pl.Int32,
    }
    if dated.is_empty():
        return pl.DataFrame(schema=columns)
    estimates = estimator.estimate(dated["text"].to_list())
    scored = dated.select("doc_id", "source", "title", "year", "century").with_columns(
        pl.Series("estimated_century", [e.century for e in estimates], dtype=pl.String),
        pl.Series("confidence", [e.confidence for e in estimates], dtype=pl.Float64),
    )
    number = pl.col("estimated_century").str.slice(1).cast(pl.Int32)
    gap = (number - pl.col("century").str.slice(1).cast(pl.Int32)).abs()
    return (
        scored.with_columns(gap.alias("gap"))
        .filter((pl.col("gap") >= min_gap) & (pl.col("confidence") >= min_confidence))
        .sort("confidence", descending=True)
        .select(list(columns))
    )
