"""Builders for teacher tests: PRETRAIN and PASSAGES frames from plain texts."""

from __future__ import annotations

import polars as pl
import pytest

from sources.schema import PRETRAIN, SITUATIONS, frame_of, stable_id

SERMON = (
    "He that hath two coats, let him impart to him that hath none. Forgive us our debts, as we forgive our debtors. "
    "Thou shalt not steal, neither shalt thou bear false witness against thy neighbour. "
    "The king shall judge the poor with justice, and punish the wicked for their cruelty. "
)
GENEALOGY = "And Arphaxad lived five and thirty years, and begat Salah. And Salah lived thirty years, and begat Eber. "
ADDRESS = (
    "It is the duty of the Government to protect the rights of every citizen, to pay its debts, and to keep faith "
    "with the nations. The liberty of the people must never be sacrificed to the greed of a few. "
)


def pretrain_frame(texts: dict[str, tuple[str, str]], year: int = 1650) -> pl.DataFrame:
    """{doc name: (source, text)} -> PRETRAIN rows."""
    rows = [
        {"text": text, "doc_id": stable_id(source, name), "year": year, "source": source}
        for name, (source, text) in texts.items()
    ]
    return frame_of(rows, PRETRAIN)


def situations_frame(texts: list[str], passage_id: str = "p") -> pl.DataFrame:
    """SITUATIONS rows for the given situation texts (one passage, century C017)."""
    rows = [{"situation_id": stable_id(passage_id, text), "passage_id": passage_id, "century": "C017",
             "situation": text, "teacher_call_id": "c"} for text in texts]  # fmt: skip
    return frame_of(rows, SITUATIONS)


@pytest.fixture
def pretrain() -> pl.DataFrame:
    return pretrain_frame(
        {
            "sermon": ("bible", SERMON * 3),
            "genealogy": ("bible", GENEALOGY * 8),
            "address": ("sotu", ADDRESS * 3),
            "stub": ("sotu", "Amen."),
        }
    )
