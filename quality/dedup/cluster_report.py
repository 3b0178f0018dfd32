"""Near-duplicate clusters seen whole: size, centuries and sources of the members, and the ones too big to trust.

`near_duplicate_clusters` (DUPLICATES) holds one row per *dropped* document naming the copy kept; a cluster is the
kept document plus everything that names it. MinHash on templated text (boilerplate prefaces, form letters, a
refrain repeated across chapters) can chain thousands of documents into one cluster and silently empty a century,
so `oversized_clusters` names every cluster above an absolute size or above a share of one partition's documents.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl

from sources.schema import CLUSTER_REPORT, DUPLICATES, conform, empty


@dataclass(frozen=True, slots=True)
class ClusterLimits:
    """When a cluster deserves a warning; None turns a rule off."""

    max_size: int | None = 50  # members (kept one included); a chapter copied into 14 Bible editions is 14
    max_share: float | None = 0.2  # of one century's cleaned documents dropped into a single cluster


def cluster_report(duplicates: pl.DataFrame, sources: pl.DataFrame) -> pl.DataFrame:
    """One CLUSTER_REPORT row per cluster, largest first.

    `duplicates` is the DUPLICATES table; `sources` maps doc_id -> source (and century) for every cleaned document
    (only members are looked up, a member missing there gets source "unknown").
    """
    duplicates = conform(duplicates, DUPLICATES)
    if duplicates.is_empty():
        return empty(CLUSTER_REPORT)
    kept = duplicates.select(
        pl.col("kept_doc_id").alias("cluster_id"),
        pl.col("kept_doc_id").alias("doc_id"),
        pl.col("kept_century").alias("century"),
        pl.lit(0.0).alias("similarity"),
        pl.lit(True).alias("is_kept"),
    ).unique("cluster_id")
    dropped = duplicates.select(
        pl.col("kept_doc_id").alias("cluster_id"),
        "doc_id",
        "century",
        "similarity",
        pl.lit(False).alias("is_kept"),
    )
    members = pl.concat([kept, dropped]).join(
        sources.select("doc_id", "source").unique("doc_id"), on="doc_id", how="left"
    )
    members = members.with_columns(pl.col("source").fill_null("unknown"))
    report = (
        members.group_by("cluster_id")
        .agg(
            pl.len().alias("size"),
            pl.col("century").filter(pl.col("is_kept")).first().alias("kept_century"),
            pl.col("century").n_unique().alias("n_centuries"),
            pl.col("century").unique().sort().str.join(",").alias("centuries"),
            pl.col("source").unique().sort().str.join(",").alias("sources"),
            pl.col("similarity").filter(~pl.col("is_kept")).min().alias("min_similarity"),
        )
        .join(_largest_century(members), on="cluster_id")
        .sort(["size", "cluster_id"], descending=[True, False])
    )
    return conform(report, CLUSTER_REPORT)


def _largest_century(members: pl.DataFrame) -> pl.DataFrame:
    """Per cluster, the century with most members (ties: the earliest century, so reruns agree)."""
    return (
        members.group_by("cluster_id", "century")
        .agg(pl.len().cast(pl.Int64).alias("largest_century_members"))
        .sort(["cluster_id", "largest_century_members", "century"], descending=[False, True, False])
        .group_by("cluster_id", maintain_order=True)
        .first()
        .rename({"century": "largest_century"})
    )


@dataclass(frozen=True, slots=True)
class OversizedCluster:
    cluster_id: str
    size: int
    century: str  # the century whose share is largest
    share: float  # members in that century / documents of that century
    rule: str  # "max_size" or "max_share"

    def describe(self) -> str:
        return (
            f"cluster {self.cluster_id[:12]} has {self.size} members; {self.share:.0%} of {self.century} ({self.rule})"
        )


def oversized_clusters(
    report: pl.DataFrame, docs_per_century: dict[str, int], limits: ClusterLimits
) -> list[OversizedCluster]:
    """Clusters over `limits.max_size` members or holding more than `limits.max_share` of any one century's
    documents (`docs_per_century`: cleaned documents per century, before dedup). Largest first."""
    found: list[OversizedCluster] = []
    for row in conform(report, CLUSTER_REPORT).iter_rows(named=True):
        century = row["largest_century"]
        total = docs_per_century.get(century, 0)
        share = row["largest_century_members"] / total if total else 0.0
        rule = None
        if limits.max_size is not None and row["size"] > limits.max_size:
            rule = "max_size"
        elif limits.max_share is not None and share > limits.max_share:
            rule = "max_share"
        if rule:
            found.append(OversizedCluster(row["cluster_id"], row["size"], century, share, rule))
    return found


def cluster_size_histogram(report: pl.DataFrame) -> bytes:
    """PNG: how many clusters have each size (log-scaled count axis, sizes binned by powers of two)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = report["size"].to_list()
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    if sizes:
        top = max(sizes)
        edges = [2]
        while edges[-1] <= top:
            edges.append(edges[-1] * 2)
        ax.hist(sizes, bins=edges, color="#4c72b0", edgecolor="white", log=True)
        ax.set_xscale("log", base=2)
    else:
        ax.text(0.5, 0.5, "no near-duplicate clusters", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("cluster size (documents, kept one included)")
    ax.set_ylabel("clusters")
    ax.set_title(f"near-duplicate clusters: {len(sizes)}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
