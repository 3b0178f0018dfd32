"""Document length: empty, too short to be a text, too large to process in bounded memory.

ProgressGym's cleaning drops documents of 200 characters or fewer, so `min_chars` defaults to 201 (keep iff
len >= 201). `max_chars` (5M characters, the ingest limit for one user-corpus line) bounds the memory of every later
stage: the clean stage checks it on the raw text before normalising, so a 50 MB document is rejected `too_large`
without a single copy of it being made.
"""

from __future__ import annotations

import polars as pl

from quality.filters.base import BaseFilter, Drop, Verdict, batch_verdicts

EMPTY = "empty_text"
TOO_SHORT = "too_short"
TOO_LARGE = "too_large"


class LengthFilter(BaseFilter):
    name = "length"

    def __init__(self, min_chars: int | None = 201, max_chars: int | None = 5_000_000):
        self.min_chars = min_chars
        self.max_chars = max_chars

    def verdict_for_length(self, n_chars: int) -> Verdict:
        if n_chars == 0:
            return Drop(EMPTY, "no text left after normalisation")
        if self.max_chars is not None and n_chars > self.max_chars:
            return Drop(TOO_LARGE, f"n_chars {n_chars} > {self.max_chars}")
        if self.min_chars is not None and n_chars < self.min_chars:
            return Drop(TOO_SHORT, f"n_chars {n_chars} < {self.min_chars}")
        return True

    def keep(self, text: str) -> Verdict:
        return self.verdict_for_length(len(text))

    def keep_batch(self, texts: pl.Series) -> list[Drop | None]:
        return batch_verdicts(self.verdict_for_length, texts.str.len_chars().fill_null(0).to_list())
