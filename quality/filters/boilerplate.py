"""Lines that are web or print furniture rather than text: URLs, index/contents lines, licence and navigation text.

A line is boilerplate when it holds a URL or e-mail address, is an index or table-of-contents entry (dot leaders to a
page number, a bare "Page 12"), or carries a web/licence phrase (C4's policy and javascript lines, "all rights
reserved", "click here", a (c)/© year notice). A document is dropped when more than `max_boilerplate_line_ratio`
(30%) of its lines are boilerplate: a scraped page or a contents listing, not a text. Phrases that old texts use
innocently ("subscribe to", "log in", "read more") are deliberately not on the list.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from quality.filters.base import LineRatioFilter

# one pattern over the lowercased line, read identically by Python's re and polars' Rust regex (searched anywhere)
PHRASES = (
    "all rights reserved",
    "terms of use",
    "terms of service",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "click here",
    "javascript",
    "back to top",
    "powered by",
)
BOILERPLATE = (
    r"https?://|www\.[\w-]+\.|[\w.+-]@[\w-]+\.[a-z]{2,}"  # URLs, e-mail (one character before the @ suffices)
    r"|(?:\. ?){4,}\d+$|^(?:page|p\.|pp\.) ?\d+$"  # index / contents lines, page headers
    r"|(?:©|\(c\)) ?\d{4}|" + "|".join(PHRASES)  # licence notices, web furniture
)
_BOILERPLATE = re.compile(BOILERPLATE)


def _may_match(low: str) -> bool:
    """Cheap necessary conditions for BOILERPLATE (Python's re is slow on long alternations)."""
    return (
        "://" in low
        or "www." in low
        or "@" in low
        or (low[-1:].isdigit() and ("." in low or low.startswith("page")))
        or "©" in low
        or "(c)" in low
        or any(phrase in low for phrase in PHRASES)
    )


class BoilerplateLineFilter(LineRatioFilter):
    name = "boilerplate"
    reason = "boilerplate_lines"
    metric = "boilerplate_line_ratio"

    def __init__(self, max_boilerplate_line_ratio: float | None = 0.3):
        super().__init__(max_boilerplate_line_ratio)

    def line_flagged(self, line: str) -> bool:
        low = line.lower()
        return _may_match(low) and _BOILERPLATE.search(low) is not None

    def flag_lines(self, lines: pl.Series) -> np.ndarray:
        return lines.str.to_lowercase().str.contains(BOILERPLATE).to_numpy()
