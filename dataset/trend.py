"""The data-side value trend: which values, rights and duties the teacher finds in each century's situations,
and with which valence, before any model is trained.

Items are compared by normalised text (NFKC, lower case, words only: dataset.decontam.normalise). Per century
and kind: the `top_k` most frequent items, how many rows name them, the share of that century's situations that
name them, and their valence shares (supports / opposes / either).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import polars as pl

from quality.normalize import normalise
from sources.schema import VALUE_TREND, VRD_KIND_PLURALS, VRD_KINDS, conform, empty


def value_trend(rows: pl.DataFrame, top_k: int = 8) -> pl.DataFrame:
    """`rows` need century, situation_id, kind, text, valence (the vrd split rows)."""
    if rows.is_empty():
        return empty(VALUE_TREND)
    rows = rows.with_columns(pl.col("text").map_elements(normalise, return_dtype=pl.String).alias("item"))
    situations = rows.group_by("century").agg(pl.col("situation_id").n_unique().alias("_situations"))
    counts = (
        rows.group_by("century", "kind", "item")
        .agg(
            pl.len().alias("n"),
            pl.col("situation_id").n_unique().alias("_named_by"),
            *[(pl.col("valence") == v).mean().alias(v) for v in ("supports", "opposes", "either")],
        )
        .join(situations, on="century")
        .with_columns((pl.col("_named_by") / pl.col("_situations")).alias("share_of_situations"))
        .sort(["century", "kind", "n", "item"], descending=[False, False, True, False])
        .with_columns(pl.int_range(1, pl.len() + 1).over("century", "kind").cast(pl.Int32).alias("rank"))
        .filter(pl.col("rank") <= top_k)
    )
    return conform(counts, VALUE_TREND)


def plot_value_trend(trend: pl.DataFrame, kinds: Sequence[str] = VRD_KINDS, items: int = 8) -> bytes:
    """PNG, one row per kind with items (values, rights, duties): left, the share of each century's situations
    naming the most frequent items (heatmap); right, their net valence (supports - opposes). Empty cells: the item
    is not among that century's top items."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    centuries = sorted(trend["century"].unique().to_list())
    grids = []  # (kind, item names, share grid, net grid)
    for kind in kinds:
        part = trend.filter(pl.col("kind") == kind)
        top = part.group_by("item").agg(pl.col("n").sum()).sort(["n", "item"], descending=[True, False]).head(items)
        names = top["item"].to_list()
        if not names:
            continue
        share = np.full((len(names), len(centuries)), np.nan)
        net = np.full_like(share, np.nan)
        for row in part.filter(pl.col("item").is_in(names)).iter_rows(named=True):
            i, j = names.index(row["item"]), centuries.index(row["century"])
            share[i, j] = row["share_of_situations"]
            net[i, j] = row["supports"] - row["opposes"]
        grids.append((kind, names, share, net))
    if not grids:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no VRD items yet", ha="center", va="center")
        return _png(fig)
    heights = [max(len(names), 2) for _, names, _, _ in grids]
    fig, axes = plt.subplots(
        len(grids),
        2,
        figsize=(11, 0.45 * sum(heights) + 1.2 * len(grids) + 0.6),
        gridspec_kw={"height_ratios": heights},
        constrained_layout=True,
        squeeze=False,
    )
    for row_axes, (kind, names, share, net) in zip(axes, grids, strict=True):
        panels = ((share, "viridis", 0.0, 1.0, "share of situations"), (net, "RdBu", -1.0, 1.0, "net valence"))
        for ax, (grid, cmap, low, high, title) in zip(row_axes, panels, strict=True):
            image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=low, vmax=high, aspect="auto")
            ax.set_xticks(range(len(centuries)), centuries, rotation=45)
            ax.set_yticks(range(len(names)), [n[:32] for n in names])
            ax.set_title(f"{VRD_KIND_PLURALS[kind]}: {title}")
            fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def trend_markdown(trend: pl.DataFrame, kinds: Sequence[str] = VRD_KINDS, per_century: int = 2) -> str:
    """A compact markdown table for the dataset card: each century's most frequent items of each kind with valence
    shares."""
    order = pl.col("kind").replace_strict({kind: i for i, kind in enumerate(kinds)}, default=len(kinds))
    part = trend.filter(pl.col("kind").is_in(list(kinds)) & (pl.col("rank") <= per_century))
    part = part.sort([pl.col("century"), order, pl.col("rank")])
    if part.is_empty():
        return "_No VRD items yet._"
    lines = [
        "| century | kind | rank | item | rows | share of situations | supports | opposes | either |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in part.iter_rows(named=True):
        item = r["item"].replace("|", "\\|")
        lines.append(
            f"| {r['century']} | {r['kind']} | {r['rank']} | {item} | {r['n']} | {r['share_of_situations']:.2f} | "
            f"{r['supports']:.2f} | {r['opposes']:.2f} | {r['either']:.2f} |"
        )
    return "\n".join(lines)
