"""Bible translations from the `pythonbible-*` packages: one document per chapter, dated by edition.

The same verses in fourteen English editions across six centuries: a natural testbed for language change and
for near-duplicate detection (KJV 1611 vs its 1833 Webster revision).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

from sources.base import BaseReader, RawRow, package_version
from sources.dates import DateEstimate, exact, from_range


@dataclass(frozen=True, slots=True)
class Edition:
    code: str
    name: str
    date: DateEstimate


# Edition years: the year the translation (or the revision we actually read) was published.
EDITIONS: tuple[Edition, ...] = (
    # Wycliffite Bible: early version c.1382, later version completed by c.1395
    Edition("wyc", "Wycliffe Bible", from_range(1382, 1395, "edition_table")),
    # Tyndale's New Testament 1526 and Pentateuch 1530, revised until his death in 1536
    Edition("tyn", "Tyndale Bible", from_range(1526, 1536, "edition_table")),
    # Geneva Bible, first complete edition 1560
    Edition("gb", "Geneva Bible", exact(1560, "edition_table")),
    # Authorized (King James) Version 1611
    Edition("kjv", "King James Version", exact(1611, "edition_table")),
    # Douay-Rheims as revised by Bishop Challoner, 1749-1752 (the text these packages carry)
    Edition("dr", "Douay-Rheims (Challoner)", exact(1752, "edition_table")),
    # John Wesley's New Testament with notes, 1755
    Edition("wesley", "Wesley's New Testament", exact(1755, "edition_table")),
    # Noah Webster's revision of the KJV, 1833 (the packaged "Revised Webster" text)
    Edition("rwebster", "Webster Bible (revised)", exact(1833, "edition_table")),
    # Young's Literal Translation, 1862
    Edition("ylt", "Young's Literal Translation", exact(1862, "edition_table")),
    # Darby Bible, complete English edition 1890
    Edition("dar", "Darby Bible", exact(1890, "edition_table")),
    # American Standard Version 1901
    Edition("asv", "American Standard Version", exact(1901, "edition_table")),
    # Weymouth New Testament in Modern Speech, 1903
    Edition("wmth", "Weymouth New Testament", exact(1903, "edition_table")),
    # Montgomery's Centenary Translation of the New Testament, 1924
    Edition("mont", "Montgomery New Testament", exact(1924, "edition_table")),
    # Bible in Basic English, complete 1949
    Edition("bbe", "Bible in Basic English", exact(1949, "edition_table")),
    # World English Bible, first drafts released 2000
    Edition("web", "World English Bible", exact(2000, "edition_table")),
)
EDITION_BY_CODE = {edition.code: edition for edition in EDITIONS}

VERSE_ID_BOOK = 1_000_000
VERSE_ID_CHAPTER = 1_000


class BibleReader(BaseReader):
    """One edition's chapters as documents; text is the chapter's verses, one per line."""

    source = "bible"
    license = "public domain (World English Bible: public domain dedication)"

    def __init__(self, code: str, max_docs: int | None = None):
        super().__init__(max_docs)
        if code not in EDITION_BY_CODE:
            raise ValueError(f"unknown Bible edition {code!r}; known: {sorted(EDITION_BY_CODE)}")
        self.edition = EDITION_BY_CODE[code]

    @property
    def provenance(self) -> str:
        return package_version(f"pythonbible-{self.edition.code}")

    def iter_raw(self) -> Iterator[RawRow]:
        module = importlib.import_module(f"pythonbible_{self.edition.code}.plain_text_readers_bible")
        bible = module.bible
        content = bible.scripture_content
        chapters: dict[tuple[int, int], list[str]] = {}
        for verse_id, start in sorted(bible.verse_start_indices.items()):
            end = bible.verse_end_indices[verse_id]
            book, chapter = verse_id // VERSE_ID_BOOK, verse_id // VERSE_ID_CHAPTER % VERSE_ID_CHAPTER
            chapters.setdefault((book, chapter), []).append(content[start:end].strip())
        titles = {book.value: title for book, title in bible.short_titles.items()}
        for (book, chapter), verses in chapters.items():
            book_title = titles.get(book, f"Book {book}")
            yield RawRow(
                row_ref=f"pythonbible-{self.edition.code}:{book:02d}.{chapter:03d}",
                source_doc_id=f"{self.edition.code}/{book:02d}.{chapter:03d}",
                text="\n".join(verse for verse in verses if verse),
                title=f"{book_title} {chapter} ({self.edition.name})",
                author=self.edition.name,
                date=self.edition.date,
            )
