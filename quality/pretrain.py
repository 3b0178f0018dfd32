"""The per-century pretraining corpus in ProgressGym's shape (text, doc_id, year, source), with its statistics."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from quality.tokens import count_tokens
from sources.schema import DOCUMENTS, PRETRAIN, conform
from sources.stats import StageStats

STAGE = "pretrain"


@dataclass(slots=True)
class PretrainResult:
    corpus: pl.DataFrame  # PRETRAIN, ordered by year then doc_id
    stats: StageStats  # every document goes through: n_in == n_out
    summary: dict[str, Any] = field(default_factory=dict)  # docs, chars, tokens, and each by source


def build_pretrain(docs: pl.DataFrame, tokenizer=None) -> PretrainResult:
    """Deduplicated documents of one century as pretraining rows; tokens counted when a tokenizer is given."""
    docs = conform(docs, DOCUMENTS).sort("year", "doc_id")
    corpus = docs.select(list(PRETRAIN))
    frame = docs.select("source", pl.col("text").str.len_chars().alias("chars"))
    if tokenizer is not None:
        frame = frame.with_columns(pl.Series("tokens", count_tokens(docs["text"].to_list(), tokenizer)))
    stats = StageStats(STAGE, n_in=docs.height, n_out=corpus.height)
    for n_chars in frame["chars"].to_list():
        stats.measure("chars", n_chars, "chars")
    sums = [pl.len().alias("docs"), pl.col("chars").sum()] + ([pl.col("tokens").sum()] if tokenizer else [])
    by_source = frame.group_by("source").agg(sums).sort("source")
    summary: dict[str, Any] = {"docs": corpus.height, "chars": int(frame["chars"].sum())}
    if tokenizer is not None:
        summary["tokens"] = int(frame["tokens"].sum())
    summary["by_source"] = {row.pop("source"): row for row in by_source.iter_rows(named=True)}
    return PretrainResult(corpus, stats.check(), summary)


def century_bar_chart(per_century: Mapping[str, Mapping[str, float]], highlight: str | None = None) -> bytes:
    """PNG bar chart, one bar per century for each measure (docs, tokens or chars); `highlight` is drawn darker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centuries = sorted(per_century)
    measures = sorted({m for values in per_century.values() for m in values})
    fig, axes = plt.subplots(1, max(len(measures), 1), figsize=(4.2 * max(len(measures), 1), 3.2), squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=False):
        values = np.array([per_century[c].get(measure, 0) for c in centuries], dtype=float)
        colors = ["#2b5d8a" if c == highlight else "#8fb3d4" for c in centuries]
        ax.bar(centuries, values, color=colors)
        ax.set_title(f"{measure} per century")
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()
