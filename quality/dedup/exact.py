"""Exact dedup: documents whose normalised text is byte-identical, keyed by a 128-bit BLAKE2b digest.

The text was normalised by the clean stage (NFC + whitespace), so copies that differ only in line endings, runs of
spaces or Unicode composition already compare equal; spelling and case are not folded (those copies are near
duplicates, MinHash's job).
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from quality.text_buffer import utf8_buffer

DIGEST_BYTES = 16


def exact_keys(texts: pl.Series) -> pl.Series:
    """BLAKE2b-128 digest of each text's UTF-8 bytes (nulls hash as empty text).

    [issue 14] Hashed straight from the column's byte buffer: no Python string (a copy of the text) per row."""
    data, offsets = utf8_buffer(texts)
    view = memoryview(data)
    bounds = offsets.tolist()
    digests = [
        hashlib.blake2b(view[start:end], digest_size=DIGEST_BYTES).digest()
        for start, end in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return pl.Series("key", digests, dtype=pl.Binary)


def exact_duplicates(keys: pl.Series, rank: np.ndarray) -> np.ndarray:
    """For every row, the row kept among those with the same key: the one of lowest `rank` (itself when kept)."""
    frame = pl.DataFrame({"key": keys, "rank": rank, "row": np.arange(len(keys))})
    kept = frame.select(pl.col("row").sort_by("rank").first().over("key"))["row"].to_numpy()
    return kept.astype(np.int64)
