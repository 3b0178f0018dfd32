"""Union-find clusters over duplicate pairs, and the keep rule shared by every dedup stage.

Keep rule (time-stamped data keeps its earliest witness): within a cluster the earliest `year` survives; ties go to
the longest text (`n_chars`), then to the smallest `doc_id`, so the choice never depends on row order.
"""

from __future__ import annotations

import numpy as np
import polars as pl


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def union_pairs(self, pairs: np.ndarray) -> UnionFind:
        for a, b in pairs.tolist():
            self.union(a, b)
        return self

    def labels(self) -> np.ndarray:
        """Root of every element (fully compressed)."""
        return np.array([self.find(x) for x in range(len(self.parent))], dtype=np.int64)


def keep_rank(frame: pl.DataFrame) -> np.ndarray:
    """Rank of each row under the keep rule (0 = kept first): earliest year, then longest, then smallest doc_id."""
    order = (
        frame.select("year", "n_chars", "doc_id")
        .with_row_index("_row")
        .sort(["year", "n_chars", "doc_id"], descending=[False, True, False])["_row"]
        .to_numpy()
    )
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def kept_members(labels: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For every element, the index of its cluster's kept member (itself when it is the one kept)."""
    best_rank = np.full(len(labels), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best_rank, labels, rank)
    by_rank = np.empty(len(rank), dtype=np.int64)
    by_rank[rank] = np.arange(len(rank))
    return by_rank[best_rank[labels]]
