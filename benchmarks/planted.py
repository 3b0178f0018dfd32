"""Planted corpora from the bundled Bible text: real documents plus copies edited to known similarity levels.

Shared by benchmarks/dedup.py, benchmarks/filters.py and tests/quality/dedup. Documents are windows of consecutive
verses from several editions (so editions of the same passage also meet, as in the real demo corpus); a planted
copy has a fraction of its words replaced or deleted, the rate chosen so its word 5-gram Jaccard to the original
lands near a target level. Ground truth is always measured (exact Jaccard), never assumed from the target.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

EDITIONS = ("kjv", "rwebster", "asv", "ylt", "dar", "web", "bbe", "gb", "dr", "wyc", "tyn")
LEVELS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def verses_of(code: str) -> list[str]:
    """Every verse of one packaged edition, in canonical order."""
    bible = importlib.import_module(f"pythonbible_{code}.plain_text_readers_bible").bible
    content = bible.scripture_content
    return [
        content[start : bible.verse_end_indices[vid]].strip()
        for vid, start in sorted(bible.verse_start_indices.items())
    ]


def verse_windows(n_docs: int, rng: np.random.Generator, min_verses: int = 6, max_verses: int = 16) -> list[str]:
    """`n_docs` documents, each a run of consecutive verses (one per line) from a random edition and place."""
    editions = [verses_of(code) for code in EDITIONS]
    docs = []
    for _ in range(n_docs):
        verses = editions[rng.integers(len(editions))]
        size = int(rng.integers(min_verses, max_verses + 1))
        start = int(rng.integers(0, len(verses) - size))
        docs.append("\n".join(v for v in verses[start : start + size] if v))
    return docs


def edit_rate_for(jaccard: float, ngram: int = 5) -> float:
    """Word edit rate giving about this n-gram Jaccard: a fraction q=(1-rate)^n of n-grams survive, J = q/(2-q)."""
    surviving = 2 * jaccard / (1 + jaccard)
    return 1.0 - surviving ** (1.0 / ngram)


def edit_words(text: str, rate: float, rng: np.random.Generator, vocabulary: list[str]) -> str:
    """Replace (3/4) or delete (1/4) each word with probability `rate`; line structure kept."""
    lines = []
    for line in text.split("\n"):
        words = []
        for word in line.split(" "):
            if rng.random() >= rate:
                words.append(word)
            elif rng.random() < 0.75:
                words.append(vocabulary[rng.integers(len(vocabulary))])
        lines.append(" ".join(words))
    return "\n".join(lines)


@dataclass(slots=True)
class PlantedCorpus:
    texts: list[str]
    planted: list[tuple[int, int, float]]  # (original index, copy index, target level)


def plant_near_duplicates(
    base: list[str], fraction: float, rng: np.random.Generator, levels: tuple[float, ...] = LEVELS
) -> PlantedCorpus:
    """Append an edited copy for `fraction` of `base` (levels cycled), then shuffle everything together."""
    vocabulary = sorted({w for text in base[:2000] for w in text.split()})
    chosen = rng.choice(len(base), size=int(len(base) * fraction), replace=False)
    texts = list(base)
    planted = []
    for k, original in enumerate(chosen.tolist()):
        level = levels[k % len(levels)]
        texts.append(edit_words(base[original], edit_rate_for(level), rng, vocabulary))
        planted.append((original, len(texts) - 1, level))
    order = rng.permutation(len(texts))
    position = np.empty(len(texts), dtype=np.int64)
    position[order] = np.arange(len(texts))
    shuffled = [texts[i] for i in order.tolist()]
    return PlantedCorpus(shuffled, [(int(position[a]), int(position[b]), level) for a, b, level in planted])
