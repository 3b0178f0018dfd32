"""A column of strings as one UTF-8 byte buffer plus offsets, zero-copy from Arrow, for numpy kernels."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa


def utf8_buffer(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(bytes as uint8, int64 offsets of length n+1): text i is `data[offsets[i]:offsets[i + 1]]`; nulls are ""."""
    array = texts.fill_null("").cast(pl.String).to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type != pa.large_string():
        array = array.cast(pa.large_string())
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    if data_buffer is None or len(array) == 0:
        return np.zeros(0, dtype=np.uint8), np.zeros(len(array) + 1, dtype=np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def byte_chunks(sizes: np.ndarray, chunk_bytes: int) -> list[slice]:
    """Consecutive row ranges holding about `chunk_bytes` of text each (at least one row per range)."""
    ends = np.cumsum(sizes)
    chunks, start = [], 0
    while start < len(sizes):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + chunk_bytes, side="left")) + 1
        stop = min(max(stop, start + 1), len(sizes))
        chunks.append(slice(start, stop))
        start = stop
    return chunks
