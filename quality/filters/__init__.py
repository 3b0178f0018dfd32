"""Cleaning filters, one rule family per module; `build_filters` lists them cheapest first.

Each filter answers `keep(text) -> True | Drop(reason, detail)` and `keep_batch(texts)`; the first failing rule names
the document's drop reason. Thresholds come from `Settings.clean`; `None` turns a rule off.
"""

from __future__ import annotations

from quality.filters.base import BaseFilter, Drop, Verdict, first_drop
from quality.filters.boilerplate import BoilerplateLineFilter
from quality.filters.gutenberg import GutenbergFilter, strip_gutenberg
from quality.filters.length import LengthFilter
from quality.filters.non_letter import NonLetterLineFilter
from quality.filters.repetition import RepetitionFilter
from sources.settings import CleanSettings

__all__ = [
    "BaseFilter",
    "BoilerplateLineFilter",
    "Drop",
    "GutenbergFilter",
    "LengthFilter",
    "NonLetterLineFilter",
    "RepetitionFilter",
    "Verdict",
    "build_filters",
    "first_drop",
    "strip_gutenberg",
]


def build_filters(settings: CleanSettings | None = None) -> list[BaseFilter]:
    """The enabled filters in the order they run: cheapest first."""
    s = settings or CleanSettings()
    filters: list[BaseFilter] = [
        LengthFilter(min_chars=s.min_chars, max_chars=s.max_chars),
        GutenbergFilter(drop_gutenberg_boilerplate=s.drop_gutenberg_boilerplate),
        BoilerplateLineFilter(max_boilerplate_line_ratio=s.max_boilerplate_line_ratio),
        NonLetterLineFilter(
            non_letter_line_threshold=s.non_letter_line_threshold,
            max_non_letter_line_ratio=s.max_non_letter_line_ratio,
        ),
        RepetitionFilter(
            max_char_run_ratio=s.max_char_run_ratio,
            min_run_bytes=s.min_run_bytes,
            max_duplicate_line_char_ratio=s.max_duplicate_line_char_ratio,
        ),
    ]
    return [f for f in filters if f.enabled]
