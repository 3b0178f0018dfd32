"""Repetition: runs of one repeated character (or a short repeated pattern), and lines repeated within a document.

`repeated_characters`: the share of the text (UTF-8 bytes) inside runs of at least `min_run_bytes` (32) bytes that
repeat with a period of 1 to 4 bytes ("aaaa", "þþþþ", "-=-=-=", ". . . ."). A document of one repeated character
scores 1.0; ordinary prose scores 0 (the normaliser has already collapsed runs of spaces). Dropped above
`max_char_run_ratio` (0.3). Working on bytes keeps it exact for any script: a repeated 2-byte letter is a period-2
byte run.

`duplicate_lines`: the share of characters in non-empty lines that repeat an earlier line of the same document
(Gopher's "duplicate line character fraction", Rae et al. 2021, table A1: 0.20 on web text). Historical texts repeat
formulae legitimately (Numbers 7 repeats the twelve princes' offering verbatim: 38% of its characters; play speaker
names repeat constantly), so the default is 0.5: a document more than half made of repeated lines.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from quality.filters.base import BaseFilter, Drop, Verdict, batch_verdicts, lines_frame, nonempty_lines, ratio_detail
from quality.text_buffer import utf8_buffer

REPEATED_CHARACTERS = "repeated_characters"
DUPLICATE_LINES = "duplicate_lines"
MAX_PERIOD = 4
# the batch screen looks at aligned 16-byte blocks; a run of >= 31 bytes always contains one, so it misses nothing
MIN_SCREENABLE_RUN = 31
_LOW_6_BYTES = np.uint64((1 << 48) - 1)


def periodic_run_bytes(data: np.ndarray, min_run: int) -> int:
    """Bytes of `data` (one document's UTF-8) inside runs of >= `min_run` bytes with period 1..MAX_PERIOD."""
    n = len(data)
    if n < min_run:
        return 0
    delta = np.zeros(n + 1, dtype=np.int32)
    for period in range(1, MAX_PERIOD + 1):
        if n <= period or min_run <= period:
            break
        equal = data[period:] == data[:-period]  # equal[i]: byte i repeats at i + period
        window = min_run - period
        counts = np.concatenate(([0], np.cumsum(equal, dtype=np.int32)))
        starts = np.flatnonzero(counts[window:] - counts[:-window] == window)  # bytes [s, s + min_run) periodic
        delta[starts] += 1
        delta[starts + min_run] -= 1
    return int(np.count_nonzero(np.cumsum(delta[:n]) > 0))


def screen_periodic_blocks(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Indices of documents that may hold a run: a superset, checked exactly by `periodic_run_bytes` afterwards.

    An aligned 16-byte block inside a run of period 1, 2 or 4 has equal halves; with period 3 the high half's first 6
    bytes equal the low half's bytes 2..7. Ordinary prose almost never passes this two-comparison test.
    """
    usable = len(data) // 16 * 16
    halves = data[:usable].view("<u8").reshape(-1, 2)
    low, high = halves[:, 0], halves[:, 1]
    candidate = (low == high) | ((high & _LOW_6_BYTES) == (low >> np.uint64(16)))
    positions = np.flatnonzero(candidate) * 16
    return np.unique(np.searchsorted(offsets, positions, side="right") - 1)


class RepetitionFilter(BaseFilter):
    name = "repetition"

    def __init__(
        self,
        max_char_run_ratio: float | None = 0.3,
        min_run_bytes: int = 32,
        max_duplicate_line_char_ratio: float | None = 0.5,
    ):
        if min_run_bytes < MIN_SCREENABLE_RUN:
            raise ValueError(f"min_run_bytes must be >= {MIN_SCREENABLE_RUN}, got {min_run_bytes}")
        self.max_char_run_ratio = max_char_run_ratio
        self.min_run_bytes = min_run_bytes
        self.max_duplicate_line_char_ratio = max_duplicate_line_char_ratio

    @property
    def enabled(self) -> bool:
        return self.max_char_run_ratio is not None or self.max_duplicate_line_char_ratio is not None

    def _verdict(self, n_bytes: int, run_bytes: int, n_chars: int, duplicate_chars: int) -> Verdict:
        if self.max_char_run_ratio is not None and n_bytes:
            ratio = run_bytes / n_bytes
            if ratio > self.max_char_run_ratio:
                return Drop(REPEATED_CHARACTERS, ratio_detail("char_run_ratio", ratio, self.max_char_run_ratio))
        if self.max_duplicate_line_char_ratio is not None and n_chars:
            ratio = duplicate_chars / n_chars
            if ratio > self.max_duplicate_line_char_ratio:
                return Drop(
                    DUPLICATE_LINES,
                    ratio_detail("duplicate_line_char_ratio", ratio, self.max_duplicate_line_char_ratio),
                )
        return True

    def keep(self, text: str) -> Verdict:
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        run_bytes = 0
        if self.max_char_run_ratio is not None and len(screen_periodic_blocks(data, np.array([0, len(data)]))):
            run_bytes = periodic_run_bytes(data, self.min_run_bytes)
        seen: set[str] = set()
        duplicate_chars = 0
        for line in nonempty_lines(text):
            if line in seen:
                duplicate_chars += len(line)
            else:
                seen.add(line)
        return self._verdict(len(data), run_bytes, len(text), duplicate_chars)

    def keep_batch(self, texts: pl.Series) -> list[Drop | None]:
        if not self.enabled:
            return [None] * len(texts)
        texts = texts.fill_null("")
        data, offsets = utf8_buffer(texts)
        run_bytes = np.zeros(len(texts), dtype=np.int64)
        if self.max_char_run_ratio is not None:
            for doc in screen_periodic_blocks(data, offsets):
                run_bytes[doc] = periodic_run_bytes(data[offsets[doc] : offsets[doc + 1]], self.min_run_bytes)
        duplicate_chars = np.zeros(len(texts), dtype=np.int64)
        if self.max_duplicate_line_char_ratio is not None:
            lines = lines_frame(texts)
            repeated = ~pl.struct("doc", "line").is_first_distinct()
            sums = lines.filter(repeated).group_by("doc").agg(pl.col("line").str.len_chars().sum().alias("chars"))
            duplicate_chars[sums["doc"].to_numpy()] = sums["chars"].to_numpy()
        return batch_verdicts(
            self._verdict,
            np.diff(offsets).tolist(),
            run_bytes.tolist(),
            texts.str.len_chars().to_list(),
            duplicate_chars.tolist(),
        )
