"""MinHash LSH: shingles, the S-curve, recall and precision on a small planted set of real Bible text."""

import numpy as np
import polars as pl
import pytest

from benchmarks.planted import plant_near_duplicates, verse_windows
from quality.dedup.clusters import UnionFind
from quality.dedup.minhash import (
    MinHashConfig,
    ShingleSets,
    candidate_pairs,
    find_near_duplicates,
    s_curve,
    shingle_hashes,
    signatures,
    threshold_of,
)


def python_jaccard(left: str, right: str, n: int = 5) -> float:
    """Word n-gram Jaccard the plain way, independent of quality.dedup.minhash's hashing."""
    import re

    def grams(text: str) -> set[str]:
        words = re.findall(r"\w+", text.lower())
        return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}

    a, b = grams(left), grams(right)
    return len(a & b) / len(a | b) if a or b else 0.0


def shingles_of(*texts: str):
    return shingle_hashes(pl.Series("text", list(texts)))


def test_s_curve_of_the_default_bands_and_rows():
    assert threshold_of(14, 8) == pytest.approx(0.685, abs=0.001)
    assert s_curve(0.8, 14, 8) == pytest.approx(0.924, abs=0.001)
    assert s_curve(0.5, 14, 8) < 0.06 and s_curve(0.9, 14, 8) > 0.999
    assert "20x8=160 perms" in str(MinHashConfig())


def test_shingles_are_word_5grams_ignoring_case_and_punctuation():
    sh = shingles_of("one two three four", "One, two; three: four five!", "one two three four five six", "")
    assert sh.counts.tolist() == [0, 1, 2, 0]
    same = shingles_of("And God said, Let there be light", "and god said let there be light")
    assert set(same.of(0).tolist()) == set(same.of(1).tolist())
    swapped = shingles_of("a b c d e f", "b a c d e f")
    assert not set(swapped.of(0).tolist()) & set(swapped.of(1).tolist())
    curly = shingles_of("the lord’s house — it is good", "the lord's house - it is good")
    assert set(curly.of(0).tolist()) == set(curly.of(1).tolist())


def test_chunked_shingling_matches_one_pass():
    texts = pl.Series("text", verse_windows(30, np.random.default_rng(3)))
    whole, chunked = shingle_hashes(texts), shingle_hashes(texts, chunk_bytes=2000)
    assert np.array_equal(whole.offsets, chunked.offsets) and np.array_equal(whole.hashes, chunked.hashes)


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(7)
    corpus = plant_near_duplicates(verse_windows(400, rng), 0.25, rng)
    shingles = shingle_hashes(pl.Series("text", corpus.texts))
    return corpus, shingles, ShingleSets(shingles)


def test_recall_and_precision_on_planted_pairs(planted):
    corpus, shingles, sets = planted
    found = find_near_duplicates(shingles, MinHashConfig(), sets=sets)
    assert np.all(found.similarity >= 0.8)  # every kept pair passed verification...
    # ...and the verification is right: an independent exact Jaccard (Python sets of word 5-gram strings, no
    # hashing, no numpy) agrees on every kept pair, so "precision 1" is not the checker checking itself
    assert len(found.pairs) >= 30
    for (a, b), similarity in zip(found.pairs.tolist(), found.similarity.tolist(), strict=True):
        independent = python_jaccard(corpus.texts[a], corpus.texts[b])
        assert independent >= 0.78 and abs(independent - similarity) < 0.02, (a, b, independent, similarity)
    labels = UnionFind(len(shingles)).union_pairs(found.pairs).labels()
    truth = [(a, b, sets.jaccard(a, b)) for a, b, _ in corpus.planted]
    positives = [(a, b) for a, b, j in truth if j >= 0.8]
    recall = np.mean([labels[a] == labels[b] for a, b in positives])
    assert len(positives) >= 30 and recall >= 0.9
    assert min(j for _, _, j in truth) < 0.6  # the planted levels really span 0.5-0.95


def test_without_verification_lsh_candidates_include_lower_pairs(planted):
    _, shingles, sets = planted
    found = find_near_duplicates(shingles, MinHashConfig(jaccard_threshold=None), sets=sets)
    assert found.n_candidates == len(found.pairs) and found.similarity.min() < 0.8


def test_large_buckets_are_chained_not_all_pairs():
    text = " ".join(f"w{i}" for i in range(60))
    shingles = shingles_of(*[text] * 40)
    config = MinHashConfig(max_bucket_pairs=4)
    pairs = candidate_pairs(signatures(shingles, config), config)
    assert len(pairs) == 39  # a chain through the 40 members, not 780 pairs
    assert len(set(UnionFind(40).union_pairs(pairs).labels().tolist())) == 1


def test_documents_without_shingles_never_match():
    shingles = shingles_of("too short", "also short", "")
    assert len(find_near_duplicates(shingles, MinHashConfig()).pairs) == 0
