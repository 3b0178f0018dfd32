"""Exact dedup: documents whose normalised text is byte-identical, keyed by a 128-bit BLAKE2b digest.

The text was normalised by the clean stage (NFC + whitespace), so copies that differ only in line endings, runs of
spaces or Unicode composition already compare equal; spelling and case are not folded (those copies are near
duplicates, MinHash's job).
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

DIGEST_BYTES = 16


def exact_keys(texts: pl.Series) -> pl.Series:
    """BLAKE2b-128 digest of each text's UTF-8 bytes (nulls hash as empty text)."""
    digests = [hashlib.blake2b(t.encode("utf-8"), digest_size=DIGEST_BYTES).digest() for t in texts.fill_null("")]
    return pl.Series("key", digests, dtype=pl.Binary)


def exact_duplicates(keys: pl.Series, rank: np.ndarray) -> np.ndarray:
    """For every row, the row kept among those with the same key: the one of lowest `rank` (itself when kept)."""
    frame = pl.DataFrame({"key": keys, "rank": rank, "row": np.arange(len(keys))})
    kept = frame.select(pl.col("row").sort_by("rank").first().over("key"))["row"].to_numpy()
    return kept.astype(np.int64)
