"""Project Gutenberg headers, footers and licence text.

Gutenberg e-texts wrap the work between `*** START OF THE PROJECT GUTENBERG EBOOK ... ***` and `*** END OF THE
PROJECT GUTENBERG EBOOK ... ***` (older files: "THIS PROJECT GUTENBERG", "End of the Project Gutenberg EBook").
`strip_gutenberg` keeps what lies between the markers (the cleaning step runs it on every text that mentions
Gutenberg); `GutenbergFilter` then drops a document in which licence or marker text is still left, e.g. a file with
a footer but no START marker, where we cannot tell where the work begins.
"""

from __future__ import annotations

import re

import polars as pl

from quality.filters.base import BaseFilter, Drop, Verdict, batch_verdicts

REASON = "gutenberg_boilerplate"
_START = re.compile(r"(?im)^.*\*\*\* ?start of (?:the|this) project gutenberg[^\n]*$")
_END = re.compile(r"(?im)^(?:.*\*\*\* ?end of (?:the|this) project gutenberg|end of (?:the )?project gutenberg).*$")
# what must not be left after stripping (Python's re and polars read it alike)
LEFTOVER = (
    r"(?i)\*\*\* ?(?:start|end) of (?:the|this) project gutenberg|end of (?:the )?project gutenberg"
    r"|project gutenberg(?:-tm| literary archive| license| ebook| e-text| etext)"
)
_LEFTOVER = re.compile(LEFTOVER)
MENTION = "(?i)gutenberg"


def strip_gutenberg(text: str) -> str:
    """The text between the START and END markers (either may be missing); unchanged without markers."""
    start = _START.search(text)
    if start:
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    return text.strip(" \n") if start or end else text


class GutenbergFilter(BaseFilter):
    name = "gutenberg"

    def __init__(self, drop_gutenberg_boilerplate: bool = True):
        self.drop_gutenberg_boilerplate = drop_gutenberg_boilerplate

    @property
    def enabled(self) -> bool:
        return self.drop_gutenberg_boilerplate

    def _verdict(self, leftover: str | None) -> Verdict:
        if not self.enabled or not leftover:
            return True
        return Drop(REASON, f"Gutenberg licence/marker text left after stripping: {leftover!r}")

    def keep(self, text: str) -> Verdict:
        match = _LEFTOVER.search(text) if "gutenberg" in text.lower() else None  # every alternative names it
        return self._verdict(match.group(0) if match else None)

    def keep_batch(self, texts: pl.Series) -> list[Drop | None]:
        if not self.enabled:
            return [None] * len(texts)
        return batch_verdicts(self._verdict, texts.str.extract(f"({LEFTOVER})", 1).to_list())
