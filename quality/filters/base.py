"""The filter contract: `keep(text)` answers True or `Drop(reason, detail)` (datatrove's filter shape).

A filter holds only its rule. Thresholds are `min_*`/`max_*` keywords whose `None` turns the rule off; `reason` codes
are stable snake_case; `detail` states the measured value against the threshold. `keep_batch` answers for a whole
column at once and must give exactly the reasons and details of `keep` (a test compares the two on real text); the
default loops over `keep`, vectorised filters override it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True, slots=True)
class Drop:
    """Why a document was dropped: a stable reason code and the measured value vs the threshold."""

    reason: str
    detail: str = ""


Verdict = bool | Drop  # True keeps; a Drop names the rule that failed


class BaseFilter(ABC):
    """One cleaning rule over normalised text."""

    name: str = "filter"

    @abstractmethod
    def keep(self, text: str) -> Verdict:
        """True to keep `text`, or the Drop naming the first of this filter's rules it fails."""

    def keep_batch(self, texts: pl.Series) -> list[Drop | None]:
        """One verdict per text: None keeps, a Drop drops. Override with a vectorised version when it pays."""
        return batch_verdicts(self.keep, texts.to_list())

    @property
    def enabled(self) -> bool:
        """False when every threshold of this filter is None (the filter is then skipped)."""
        return True

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()) if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def ratio_detail(name: str, value: float, threshold: float, op: str = ">") -> str:
    """'duplicate_line_char_ratio 0.612 > 0.5': the measured value against its threshold."""
    return f"{name} {value:.3f} {op} {threshold:g}"


def batch_verdicts(verdict: Callable[..., Verdict], *columns: Sequence) -> list[Drop | None]:
    """Apply `verdict` row-wise over aligned columns; None where it keeps."""
    out: list[Drop | None] = []
    for args in zip(*columns, strict=True):
        answer = verdict(*args)
        out.append(None if answer is True else answer)
    return out


def first_drop(filters: Sequence[BaseFilter], text: str) -> Drop | None:
    """Run `filters` in order on one text; the first failing rule names the reason."""
    for rule in filters:
        verdict = rule.keep(text)
        if verdict is not True:
            return verdict
    return None


def nonempty_lines(text: str) -> list[str]:
    """The lines a line-level rule looks at (normalised text has no whitespace-only lines)."""
    return [line for line in text.split("\n") if line]


def lines_frame(texts: pl.Series) -> pl.DataFrame:
    """One row per non-empty line: `doc` (row index in `texts`) and `line`; the batch twin of `nonempty_lines`."""
    frame = pl.DataFrame({"line": texts.fill_null("").str.split("\n")}).with_row_index("doc")
    return frame.explode("line").filter(pl.col("line").str.len_bytes() > 0)


def per_doc_sums(lines: pl.DataFrame, n_docs: int, **columns: pl.Expr) -> dict[str, np.ndarray]:
    """Sum each expression over the lines of every document, plus `n_lines`; documents without lines get 0."""
    sums = lines.group_by("doc").agg(pl.len().alias("n_lines"), **{name: expr.sum() for name, expr in columns.items()})
    index = sums["doc"].to_numpy()
    out = {}
    for name in ["n_lines", *columns]:
        values = np.zeros(n_docs, dtype=np.int64)
        values[index] = sums[name].to_numpy()
        out[name] = values
    return out


class LineRatioFilter(BaseFilter):
    """Drop a document when more than `max_ratio` of its non-empty lines are flagged by the subclass's line rule."""

    reason: str = "flagged_lines"
    metric: str = "flagged_line_ratio"

    def __init__(self, max_ratio: float | None):
        self.max_ratio = max_ratio

    @abstractmethod
    def line_flagged(self, line: str) -> bool:
        """The line rule on one line."""

    @abstractmethod
    def flag_lines(self, lines: pl.Series) -> np.ndarray:
        """The same rule over a column of lines at once (bool array)."""

    @property
    def enabled(self) -> bool:
        return self.max_ratio is not None

    def verdict_for_counts(self, n_lines: int, n_flagged: int) -> Verdict:
        if not self.enabled or n_lines == 0:
            return True
        ratio = n_flagged / n_lines
        if ratio > self.max_ratio:
            return Drop(self.reason, ratio_detail(self.metric, ratio, self.max_ratio))
        return True

    def keep(self, text: str) -> Verdict:
        lines = nonempty_lines(text)
        return self.verdict_for_counts(len(lines), sum(1 for line in lines if self.line_flagged(line)))

    def keep_batch(self, texts: pl.Series) -> list[Drop | None]:
        if not self.enabled:
            return [None] * len(texts)
        lines = lines_frame(texts)
        flagged = pl.Series("flagged", self.flag_lines(lines["line"]), dtype=pl.Int64)
        sums = per_doc_sums(lines.with_columns(flagged), len(texts), n_flagged=pl.col("flagged"))
        return batch_verdicts(self.verdict_for_counts, sums["n_lines"].tolist(), sums["n_flagged"].tolist())
