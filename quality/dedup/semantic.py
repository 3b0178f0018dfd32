"""Semantic dedup: pairs whose embedding cosine reaches a threshold, found block by block in bounded memory.

The cosine matrix of N unit vectors is never built whole: rows are taken `block_size` at a time against the same
and later blocks, so the largest temporary is block_size x block_size floats (4 MB at 1024) whatever N is. Time is
still O(N^2 d), fine for the thousands of passages or VRD items per century this serves. Pairs are joined by
union-find; each cluster keeps the member that comes first in the caller's priority order (for passages: the
earliest-dated document's, as everywhere else in dedup).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from quality.dedup.clusters import UnionFind, kept_members


@dataclass(slots=True)
class SemanticDuplicates:
    kept: np.ndarray  # (n,) int64: the index each row is a duplicate of; itself when kept
    similarity: np.ndarray  # (n,) cosine to the kept row (1.0 for kept rows)
    pairs: np.ndarray  # (m, 2) int64 pairs at or above the threshold, i < j

    @property
    def keep_mask(self) -> np.ndarray:
        return self.kept == np.arange(len(self.kept))


def similar_pairs(vectors: np.ndarray, threshold: float, block_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) with cosine >= threshold, and their cosines; vectors are normalised here."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    n = len(vectors)
    found_pairs, found_sims = [], []
    for start in range(0, n, block_size):
        rows = vectors[start : start + block_size]
        for other in range(start, n, block_size):
            sims = rows @ vectors[other : other + block_size].T  # (<= block, <= block)
            if other == start:  # each pair once, never a row with itself
                sims[np.tril_indices(len(rows), m=sims.shape[1])] = -np.inf
            i, j = np.nonzero(sims >= threshold)
            if len(i):
                found_pairs.append(np.stack([i + start, j + other], axis=1))
                found_sims.append(sims[i, j])
    if not found_pairs:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    return np.concatenate(found_pairs).astype(np.int64), np.concatenate(found_sims)


def semantic_duplicates(
    vectors: np.ndarray, threshold: float = 0.95, block_size: int = 1024, priority: Sequence[int] | None = None
) -> SemanticDuplicates:
    """Cluster rows whose cosine >= threshold; each cluster keeps its lowest `priority` row (ties and default: row
    order)."""
    n = len(vectors)
    pairs, _ = similar_pairs(vectors, threshold, block_size)
    labels = UnionFind(n).union_pairs(pairs).labels()
    rank = np.arange(n)
    if priority is not None:
        rank[np.argsort(np.asarray(priority), kind="stable")] = np.arange(n)
    kept = kept_members(labels, rank)
    similarity = np.ones(n, dtype=np.float32)
    dropped = np.flatnonzero(kept != np.arange(n))
    if len(dropped):
        unit = np.asarray(vectors, dtype=np.float32)
        unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
        similarity[dropped] = np.einsum("ij,ij->i", unit[dropped], unit[kept[dropped]])
    return SemanticDuplicates(kept, similarity, pairs)


def semantic_dedup_texts(
    texts: Sequence[str],
    embed: Callable[[Sequence[str]], np.ndarray],
    threshold: float = 0.95,
    block_size: int = 1024,
    priority: Sequence[int] | None = None,
) -> SemanticDuplicates:
    """Embed `texts` with `embed` (e.g. quality.embeddings.embed) and cluster them."""
    return semantic_duplicates(embed(list(texts)), threshold, block_size, priority)
