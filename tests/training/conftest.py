"""Fixtures for training tests: a small corpus and the tiny model's tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

VERSES = [
    "In the beginning God created the heaven and the earth. And the earth was without form, and void.",
    "Thou shalt not steal. Honour thy father and thy mother, that thy days may be long upon the land.",
    "Blessed are the merciful: for they shall obtain mercy. Blessed are the peacemakers.",
    "The quality of mercy is not strained; it droppeth as the gentle rain from heaven upon the place beneath.",
] * 6


@pytest.fixture
def verses() -> list[str]:
    """A small repetitive corpus: easy to overfit, so a loss that does not drop means a bug."""
    return list(VERSES)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)
