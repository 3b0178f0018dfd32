"""Lines that are mostly not letters: tables of figures, page furniture, ornaments, encoding debris.

A non-empty line is a *non-letter line* when more than `non_letter_line_threshold` (60%, the issue's figure; C4 and
RefinedWeb line filters use the same idea) of its non-space characters are not Unicode letters (general category L*,
any script: Old Norse þ/ð/ǫ, Greek, Cyrillic all count as letters). A document is dropped when more than
`max_non_letter_line_ratio` of its lines are non-letter lines. Calibrated on the bundled corpus: the worst real
document (a State of the Union with budget tables) has 24% such lines, Bible chapters at most 4%, so 0.5 keeps all
of them and drops documents that are mostly tables or debris.

The batch path counts ASCII classes with numpy on the UTF-8 bytes; only lines whose verdict depends on their
non-ASCII characters are counted exactly with a Unicode regex.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import regex

from quality.filters.base import LineRatioFilter
from quality.text_buffer import utf8_buffer

NON_LETTER = r"[^\p{L} ]"  # read alike by polars (Rust regex) and the `regex` module (per-text path)
_NON_LETTER = regex.compile(NON_LETTER)


def _byte_classes() -> tuple[np.ndarray, np.ndarray]:
    """Two lookup tables packing two 32-bit counters each: (spaces, ASCII letters) and (ASCII chars, non-ASCII
    lead bytes = one per non-ASCII character), so one gather + one segmented sum counts two classes at once."""
    codes = np.arange(256)
    is_letter = ((codes | 0x20) >= ord("a")) & ((codes | 0x20) <= ord("z"))
    first = (codes == ord(" ")).astype(np.int64) + (is_letter.astype(np.int64) << 32)
    second = (codes < 0x80).astype(np.int64) + ((codes >= 0xC0).astype(np.int64) << 32)
    return first, second


_FIRST, _SECOND = _byte_classes()
_LOW = np.int64(0xFFFFFFFF)


def _segment_sums(table: np.ndarray, data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per segment (line) the two packed counts; segments are never empty here, which `reduceat` requires."""
    if len(offsets) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    packed = np.add.reduceat(table[data], offsets[:-1])
    return packed & _LOW, packed >> 32


class NonLetterLineFilter(LineRatioFilter):
    name = "non_letter"
    reason = "non_letter_lines"
    metric = "non_letter_line_ratio"

    def __init__(self, non_letter_line_threshold: float = 0.6, max_non_letter_line_ratio: float | None = 0.5):
        super().__init__(max_non_letter_line_ratio)
        self.non_letter_line_threshold = non_letter_line_threshold

    def line_flagged(self, line: str) -> bool:
        visible = len(line) - line.count(" ")
        non_letters = len(line) - len(_NON_LETTER.sub("", line))
        return visible > 0 and non_letters > self.non_letter_line_threshold * visible

    def flag_lines(self, lines: pl.Series) -> np.ndarray:
        data, offsets = utf8_buffer(lines)
        spaces, ascii_letters = _segment_sums(_FIRST, data, offsets)
        ascii_chars, other_chars = _segment_sums(_SECOND, data, offsets)
        visible = ascii_chars + other_chars - spaces
        limit = self.non_letter_line_threshold * visible
        ascii_non_letters = ascii_chars - spaces - ascii_letters
        flagged = (visible > 0) & (ascii_non_letters > limit)  # already flagged whatever the non-ASCII ones are
        undecided = np.flatnonzero(~flagged & (visible > 0) & (ascii_non_letters + other_chars > limit))
        if len(undecided):
            exact = lines.gather(undecided).str.count_matches(NON_LETTER).to_numpy()
            flagged[undecided] = exact > limit[undecided]
        return flagged
