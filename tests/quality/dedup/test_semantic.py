"""Blocked semantic dedup: same pairs as the full matrix, memory bounded by the block, keep-first priority."""

import tracemalloc

import numpy as np

from quality.dedup.semantic import semantic_duplicates, similar_pairs


def planted_vectors(n: int = 600, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    for i in range(0, n - 1, 10):  # every tenth row gets a close copy next to it
        vectors[i + 1] = vectors[i] + rng.normal(scale=0.02, size=dim)
    return vectors


def test_blocked_pairs_equal_the_full_matrix():
    vectors = planted_vectors()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    full = unit @ unit.T
    i, j = np.nonzero(np.triu(full >= 0.95, k=1))
    pairs, sims = similar_pairs(vectors, 0.95, block_size=64)
    assert sorted(map(tuple, pairs.tolist())) == sorted(zip(i.tolist(), j.tolist(), strict=True))
    assert len(pairs) == 60 and np.all(sims >= 0.95)


def test_memory_stays_bounded_by_the_block():
    vectors = planted_vectors(n=4000, dim=16)  # the full cosine matrix would be 64 MB
    tracemalloc.start()
    semantic_duplicates(vectors, 0.95, block_size=128)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_each_cluster_keeps_its_highest_priority_member():
    vectors = planted_vectors(n=20)
    default = semantic_duplicates(vectors, 0.95, block_size=7)
    assert default.kept[1] == 0 and not default.keep_mask[1] and default.similarity[1] > 0.95
    later_first = semantic_duplicates(vectors, 0.95, block_size=7, priority=[1, 0] + [5] * 18)
    assert later_first.kept[0] == 1 and later_first.keep_mask[1]
    assert semantic_duplicates(np.zeros((0, 8)), 0.9).kept.shape == (0,)
