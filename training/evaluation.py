"""Evaluating the per-century models on the benchmark, and the model-side value trend across centuries.

`evaluate_century` (the `value_eval` asset): one century's finetuned model scores *every* benchmark item with
log-likelihoods (training/valence.py), so all models answer the same questions. It reports accuracy against the gold
valence (overall and on the century's own items), the majority baseline, confusion counts and the value profile.
The base model scores the same items once per (base model, benchmark), cached beside the models, and each century
is compared with it: a finetuned model less accurate than its base is flagged (Dagster's project_llm_fine_tune
warns the same way).

`value_trend_report` (the `value_trend` asset): for the benchmark's most frequent items, each model's valence shares
beside the data-side trend of the same century (dataset/trend.py, `value_trend_data`), a per-century summary, and
the cosine between consecutive centuries' profiles on both sides (ProgressGym's PG-Follow compares successive
historical models the same way). A profile vector concatenates, per item, its (supports, opposes, either) shares, so
it is never all zeros; an item a century lacks counts as zeros there.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sources.schema import BENCHMARK, VALENCES, VALUE_EVAL, VALUE_TREND_MODEL, conform, empty
from sources.storage import write_parquet_atomic
from training.valence import (
    VALENCE_TEMPLATE,
    load_scorer,
    normalise_item,
    score_valence,
    valence_accuracy,
    value_profile,
)

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class CenturyEval:
    """One century's model on the benchmark, and its base model on the same items."""

    scored: pl.DataFrame  # VALUE_EVAL rows
    accuracy: dict  # valence_accuracy over every item
    own_century: dict  # ... over the items of the model's own century
    base_accuracy: dict | None
    profile: pl.DataFrame  # value_profile of the model's answers

    @property
    def worse_than_base(self) -> bool | None:
        """True when the finetuned model is less accurate than its base; None when either has no accuracy."""
        ours, base = self.accuracy["accuracy"], (self.base_accuracy or {}).get("accuracy")
        return None if ours is None or base is None else ours < base


def score_items(model_dir: str | Path, items: pl.DataFrame, batch_size: int = 16) -> pl.DataFrame:
    """`items` scored by the model in `model_dir`; the weights are released before returning."""
    if items.is_empty():
        return score_valence(None, None, items)
    model, tokenizer = load_scorer(model_dir)
    try:
        return score_valence(model, tokenizer, items, batch_size)
    finally:
        del model
        gc.collect()


def model_fingerprint(model_dir: str | Path) -> str:
    """Path, size and mtime of every file of a model dir: a cheap key that changes when the weights are rewritten."""
    root = Path(model_dir).resolve()
    digest = hashlib.sha256(str(root).encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def base_scores(
    base_dir: str | Path, items: pl.DataFrame, cache_dir: Path | None = None, batch_size: int = 16
) -> pl.DataFrame:
    """The base model's scored items, computed once per (base model files, benchmark rows, prompt template) when a
    `cache_dir` is given."""
    if cache_dir is None:
        return score_items(base_dir, items, batch_size)
    digest = hashlib.sha256(f"{model_fingerprint(base_dir)}\n{VALENCE_TEMPLATE}".encode())
    if items.height:
        digest.update(conform(items, BENCHMARK).hash_rows(seed=0).to_numpy().tobytes())
    path = Path(cache_dir) / f"base-{digest.hexdigest()[:20]}.parquet"
    if path.is_file():
        logger.info("base model scores from the cache: %s", path)
        return pl.read_parquet(path)
    scored = score_items(base_dir, items, batch_size)
    write_parquet_atomic(scored, path)
    return scored


def evaluate_century(
    model_dir: str | Path,
    items: pl.DataFrame,
    century: str,
    base_dir: str | Path | None = None,
    cache_dir: Path | None = None,
    batch_size: int = 16,
) -> CenturyEval:
    """Score every benchmark item with one century's model (and its base, cached); the `value_eval` computation."""
    items = conform(items, BENCHMARK)
    scored = score_items(model_dir, items, batch_size)
    base = None
    if base_dir is not None:
        base = base_scores(base_dir, items, cache_dir, batch_size)
    scored = scored.with_columns(
        pl.lit(century, pl.String).alias("model_century"),
        (base["predicted"] if base is not None else pl.lit(None, pl.String)).alias("base_predicted"),
    )
    result = CenturyEval(
        scored=conform(scored, VALUE_EVAL),
        accuracy=valence_accuracy(scored),
        own_century=valence_accuracy(scored.filter(pl.col("century") == century)),
        base_accuracy=valence_accuracy(base) if base is not None else None,
        profile=value_profile(scored),
    )
    logger.info("%s: accuracy %s on %d items (base %s)", century, result.accuracy["accuracy"], items.height,
                (result.base_accuracy or {}).get("accuracy"))  # fmt: skip
    return result


# -- across centuries


@dataclass(slots=True)
class TrendReport:
    """The model-side value trend beside the data-side one."""

    table: pl.DataFrame  # VALUE_TREND_MODEL: per evaluated century x frequent item, model and data shares
    summary: pl.DataFrame  # per evaluated century: accuracy, base, majority, overall support shares
    cosines: list[dict]  # per consecutive pair of evaluated centuries: {"from", "to", "model", "data"}
    evaluated: list[str]  # centuries with a model, in order
    skipped: list[str]  # centuries without one
    data_trend: pl.DataFrame  # value_trend_data as read (for the plot's data-side line over every century)


def frequent_items(scored: pl.DataFrame, top_k: int) -> pl.DataFrame:
    """(kind, item, n): the `top_k` most frequent normalised items per kind among the distinct benchmark rows."""
    if scored.is_empty():
        return pl.DataFrame(schema={"kind": pl.String, "item": pl.String, "n": pl.Int64})
    rows = scored.unique("candidate_id").with_columns(
        pl.col("text").map_elements(normalise_item, return_dtype=pl.String).alias("item")
    )
    counts = rows.group_by("kind", "item").agg(pl.len().cast(pl.Int64).alias("n"))
    ranked = counts.sort(["kind", "n", "item"], descending=[False, True, False])
    return ranked.filter(pl.int_range(pl.len()).over("kind") < top_k)


def trend_table(evals: Mapping[str, pl.DataFrame], data_trend: pl.DataFrame, top_k: int) -> pl.DataFrame:
    """Per evaluated century and frequent benchmark item: the model's valence shares and the data's."""
    frames = [frame for frame in evals.values() if frame.height]
    if not frames:
        return empty(VALUE_TREND_MODEL)
    items = frequent_items(pl.concat(frames), top_k)
    model_side = []
    for century, frame in evals.items():
        if frame.is_empty():
            continue
        profile = value_profile(frame).rename(
            {"support_share": "model_supports", "oppose_share": "model_opposes", "either_share": "model_either",
             "mean_p_supports": "model_mean_p_supports"}
        )  # fmt: skip
        model_side.append(profile.drop("n").with_columns(pl.lit(century).alias("century")))
    data_side = data_trend.select(
        "century", "kind", "item", pl.col("n").alias("data_n"),
        *[pl.col(v).alias(f"data_{v}") for v in VALENCES],
    )  # fmt: skip
    table = (
        pl.concat(model_side)
        .join(items, on=["kind", "item"], how="inner")
        .join(data_side, on=["century", "kind", "item"], how="left")
    )
    return conform(table, VALUE_TREND_MODEL).sort(
        ["century", "kind", "n", "item"], descending=[False, False, True, False]
    )


def profile_cosine(a: pl.DataFrame, b: pl.DataFrame, columns: Sequence[str]) -> float | None:
    """Cosine between two profiles (kind, item, share columns) over the union of their items, missing = 0."""
    keys = ["kind", "item"]
    joined = a.select(*keys, *columns).join(b.select(*keys, *columns), on=keys, how="full", coalesce=True)
    left = joined.select(pl.col(columns).fill_null(0.0)).to_numpy().ravel()
    right = joined.select(pl.col([f"{c}_right" for c in columns]).fill_null(0.0)).to_numpy().ravel()
    norm = math.sqrt(float((left**2).sum()) * float((right**2).sum()))
    return float((left * right).sum()) / norm if norm > 0 else None


def consecutive_cosines(table: pl.DataFrame, data_trend: pl.DataFrame, evaluated: Sequence[str]) -> list[dict]:
    """Cosine between each evaluated century and the next: model profiles over the frequent benchmark items, data
    profiles over both centuries' top items in value_trend_data."""
    model_cols = [f"model_{v}" for v in VALENCES]
    pairs = []
    for before, after in zip(evaluated, evaluated[1:], strict=False):
        model = profile_cosine(*(table.filter(pl.col("century") == c) for c in (before, after)), model_cols)
        data = profile_cosine(*(data_trend.filter(pl.col("century") == c) for c in (before, after)), VALENCES)
        pairs.append({"from": before, "to": after, "model": model, "data": data})
    return pairs


SUMMARY = {
    "century": pl.String,
    "n_items": pl.Int64,
    "accuracy": pl.Float64,
    "base_accuracy": pl.Float64,
    "majority_baseline": pl.Float64,
    "model_support_share": pl.Float64,
    "data_support_share": pl.Float64,
}


def century_summary(evals: Mapping[str, pl.DataFrame], data_trend: pl.DataFrame) -> pl.DataFrame:
    """Per evaluated century: items, accuracy (model, base, majority baseline) and overall support share (the
    model's over every benchmark item; the data's over its top items in value_trend_data, weighted by rows)."""
    rows = []
    for century, scored in evals.items():
        if scored.is_empty():
            continue
        ours = valence_accuracy(scored)
        base = valence_accuracy(scored.drop("predicted").rename({"base_predicted": "predicted"}))
        data = data_trend.filter(pl.col("century") == century)
        n_data = int(data["n"].sum()) if data.height else 0
        rows.append({
            "century": century,
            "n_items": scored.height,
            "accuracy": ours["accuracy"],
            "base_accuracy": base["accuracy"] if scored["base_predicted"].is_not_null().any() else None,
            "majority_baseline": ours["majority_baseline"],
            "model_support_share": float((scored["predicted"] == "supports").mean()),
            "data_support_share": float((data["supports"] * data["n"]).sum() / n_data) if n_data else None,
        })  # fmt: skip
    return pl.DataFrame(rows, schema=SUMMARY)


def value_trend_report(
    evals: Mapping[str, pl.DataFrame], data_trend: pl.DataFrame, centuries: Sequence[str], top_k: int = 8
) -> TrendReport:
    """Everything `value_trend` shows, from each century's `value_eval` rows (missing or empty = no model)."""
    evaluated = [c for c in centuries if c in evals and evals[c].height]
    kept = {c: evals[c] for c in evaluated}
    table = trend_table(kept, data_trend, top_k)
    return TrendReport(
        table=table,
        summary=century_summary(kept, data_trend),
        cosines=consecutive_cosines(table, data_trend, evaluated),
        evaluated=evaluated,
        skipped=[c for c in centuries if c not in evaluated],
        data_trend=data_trend,
    )
