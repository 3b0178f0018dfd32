"""Real bundled text for quality tests: Bible chapters (KJV 1611, Webster 1833) and an Old Norse saga chapter."""

from __future__ import annotations

import importlib

import pytest

VERSE_ID_BOOK = 1_000_000
VERSE_ID_CHAPTER = 1_000


def chapters_of(code: str) -> dict[tuple[int, int], str]:
    """{(book, chapter): text with one verse per line} from the `pythonbible-<code>` package."""
    bible = importlib.import_module(f"pythonbible_{code}.plain_text_readers_bible").bible
    content = bible.scripture_content
    chapters: dict[tuple[int, int], list[str]] = {}
    for verse_id, start in sorted(bible.verse_start_indices.items()):
        key = (verse_id // VERSE_ID_BOOK, verse_id // VERSE_ID_CHAPTER % VERSE_ID_CHAPTER)
        chapters.setdefault(key, []).append(content[start : bible.verse_end_indices[verse_id]].strip())
    return {key: "\n".join(verses) for key, verses in chapters.items()}


@pytest.fixture(scope="session")
def kjv() -> dict[tuple[int, int], str]:
    return chapters_of("kjv")


@pytest.fixture(scope="session")
def webster() -> dict[tuple[int, int], str]:
    return chapters_of("rwebster")


@pytest.fixture(scope="session")
def saga_text() -> str:
    """The first chapter of Völsunga saga (Old Norse, þ ð ǫ æ ø)."""
    from sources.sagas import corpus_dir

    path = next(iter(sorted(corpus_dir().glob("*/Völsunga_saga/txt/chapter_1.txt"))))
    return path.read_text(encoding="utf-8")
