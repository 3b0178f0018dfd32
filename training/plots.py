"""Small matplotlib figures for asset pages, returned as PNG bytes (Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from training.evaluation import TrendReport
    from training.value_vectors import ProgressReport


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _png(fig) -> bytes:
    """Render and close the figure."""
    plt = _pyplot()
    try:
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def loss_curve_png(history: list[dict], val_history: list[dict], title: str = "") -> bytes:
    """Training loss per logged step and validation loss per evaluation, on one axis."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.2), dpi=100)
    if history:
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="train", linewidth=1.2)
    if val_history:
        ax.plot([v["step"] for v in val_history], [v["val_loss"] for v in val_history], "o-", label="validation",
                markersize=3)  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def value_trend_png(report: TrendReport, centuries: Sequence[str], max_items: int = 12) -> bytes:
    """Three panels. Left: each model's net valence (supports - opposes) per frequent benchmark item, with the data's
    net valence for that century in brackets. Middle: the share of 'supports' per century, model side (every benchmark
    item) beside data side (value_trend_data, every century). Right: cosine between consecutive evaluated centuries'
    profiles, model vs data."""
    import numpy as np
    import polars as pl

    fig, (heat, share, cos) = _pyplot().subplots(1, 3, figsize=(15, 4.6), dpi=100, width_ratios=[1.4, 1, 0.8])
    table, evaluated = report.table, report.evaluated
    items = (
        table.group_by("kind", "item")
        .agg(pl.col("n").max())
        .sort(["n", "kind", "item"], descending=[True, False, False])
    )
    items = items.head(max_items)
    if items.height and evaluated:
        grid = np.full((items.height, len(evaluated)), np.nan)
        for i, (kind, item) in enumerate(items.select("kind", "item").iter_rows()):
            for j, century in enumerate(evaluated):
                row = table.filter(
                    (pl.col("century") == century) & (pl.col("kind") == kind) & (pl.col("item") == item)
                )
                if row.is_empty():
                    continue
                r = row.row(0, named=True)
                grid[i, j] = r["model_supports"] - r["model_opposes"]
                data = "" if r["data_supports"] is None else f"\n({r['data_supports'] - r['data_opposes']:+.2f})"
                color = "white" if abs(grid[i, j]) > 0.5 else "black"
                heat.text(j, i, f"{grid[i, j]:+.2f}{data}", ha="center", va="center", fontsize=7, color=color)
        image = heat.imshow(grid, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        heat.set_xticks(range(len(evaluated)), evaluated)
        heat.set_yticks(range(items.height), [f"{k}: {t[:28]}" for k, t in items.select("kind", "item").iter_rows()],
                        fontsize=7)  # fmt: skip
        fig.colorbar(image, ax=heat, fraction=0.04, label="net valence (model; data in brackets)")
    else:
        heat.text(0.5, 0.5, "no evaluated century", ha="center", va="center")
        heat.set_axis_off()
    heat.set_title("model profiles: supports - opposes", fontsize=10)

    x = {century: i for i, century in enumerate(centuries)}
    summary = report.summary
    data = report.data_trend.group_by("century").agg(
        ((pl.col("supports") * pl.col("n")).sum() / pl.col("n").sum()).alias("supports")
    )
    data = data.filter(pl.col("century").is_in(list(x))).sort("century")
    share.plot([x[c] for c in data["century"]], data["supports"].to_list(), "s--", color="tab:gray",
               label="data (value_trend_data)")  # fmt: skip
    share.plot([x[c] for c in summary["century"]], summary["model_support_share"].to_list(), "o-", color="tab:blue",
               label="model (benchmark)", markersize=7)  # fmt: skip
    share.set_xticks(range(len(centuries)), centuries, fontsize=8)
    share.set_ylim(-0.05, 1.05)
    share.set_ylabel("share judged 'supports'")
    share.set_title("model-side vs data-side trend", fontsize=10)
    share.grid(alpha=0.3)
    share.legend(fontsize=8)

    labels = [f"{p['from']}→{p['to']}" for p in report.cosines]
    for offset, side, color in ((-0.2, "model", "tab:blue"), (0.2, "data", "tab:gray")):
        values = [np.nan if p[side] is None else p[side] for p in report.cosines]
        bars = cos.bar(np.arange(len(labels)) + offset, values, width=0.4, color=color, label=side)
        cos.bar_label(bars, fmt="%.2f", fontsize=7)
    cos.set_xticks(range(len(labels)), labels, fontsize=8)
    cos.set_ylim(0, 1.05)
    cos.set_title("cosine, consecutive centuries", fontsize=10)
    if not labels:
        cos.text(0.5, 0.5, "needs two evaluated centuries", ha="center", va="center", transform=cos.transAxes)
    cos.legend(fontsize=8)
    return _png(fig)


def progress_png(vectors: pl.DataFrame, report: ProgressReport, centuries: Sequence[str]) -> bytes:
    """Model trend vs data trend, one panel per value dimension: the data's score in every century with annotations
    (grey line), each century model's score (blue dots), the base model's (dashed), points only where the dimension
    has items; averaged Follow / Predict with the base baseline in the title."""
    import polars as pl

    from training.value_vectors import DIMENSION_NAMES

    n_cols = 4
    n_rows = -(-len(DIMENSION_NAMES) // n_cols)
    fig, axes = _pyplot().subplots(n_rows, n_cols, figsize=(14, 2.4 * n_rows), dpi=100, sharex=True, sharey=True)
    x = {century: i for i, century in enumerate(centuries)}
    for ax, dimension in zip(axes.flat, DIMENSION_NAMES, strict=False):
        rows = vectors.filter(pl.col("dimension") == dimension)
        for side, style, color, label in (("data", "s-", "tab:gray", "data"), ("model", "o", "tab:blue", "model")):
            part = rows.filter((pl.col("side") == side) & pl.col("century").is_in(list(x)) & (pl.col("n") > 0))
            part = part.sort("century")  # a dimension without items (n = 0) has no point to show
            ax.plot([x[c] for c in part["century"]], part["score"].to_list(), style, color=color, label=label,
                    markersize=5)  # fmt: skip
        base = rows.filter(pl.col("side") == "base")
        if base.height:
            ax.axhline(base["score"][0], linestyle="--", color="tab:orange", linewidth=1, label="base")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(dimension, fontsize=9)
        ax.set_ylim(-1.05, 1.05)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(DIMENSION_NAMES) :]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xticks(range(len(centuries)), centuries, fontsize=7, rotation=45)
    axes.flat[0].legend(fontsize=7)
    fig.supylabel("P(supports) - P(opposes)  /  share supports - opposes", fontsize=9)

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    fig.suptitle(
        f"Follow {fmt(report.follow)} (base {fmt(report.base_follow)})   "
        f"Predict {fmt(report.predict)} (base {fmt(report.base_predict)})",
        fontsize=11,
    )
    return _png(fig)
