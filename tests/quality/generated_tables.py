"""Builders for generated-data tests: SITUATIONS and VRD_CANDIDATES tables, healthy or collapsed like the demo's."""

from __future__ import annotations

import polars as pl

from sources.schema import SITUATIONS, VRD_CANDIDATES, frame_of, stable_id

HEALTHY_VALUES = ["Honesty", "Mercy", "Justice", "Loyalty", "Charity", "Courage", "Humility", "Thrift", "Piety"]
HEALTHY_RIGHTS = ["Right to life", "Right to property", "Right to liberty", "Right to a fair trial", "Right to work"]
HEALTHY_DUTIES = ["Duty to obey the law", "Duty to keep promises", "Duty to care for family", "Duty to help the poor",
                  "Duty to tell the truth", "Duty to repay debts"]  # fmt: skip
VALENCES = ["supports", "opposes", "either"]


def situations(
    n: int, century: str = "C019", text: str = "Lending money to a neighbour in need {i}", prefix: str = "s"
) -> pl.DataFrame:
    """SITUATIONS rows {prefix}0..{prefix}{n-1}, one passage each (p0...)."""
    rows = [{"situation_id": f"{prefix}{i}", "passage_id": f"p{i}", "century": century,
             "situation": text.format(i=i), "teacher_call_id": "c"} for i in range(n)]  # fmt: skip
    return frame_of(rows, SITUATIONS)


def candidates(items: list[tuple[str, str, str, str]], n_situations: int) -> pl.DataFrame:
    """(kind, text, valence, explanation) items spread round-robin over situations s0..s{n-1}."""
    rows = []
    for i, (kind, text, valence, explanation) in enumerate(items):
        sid = f"s{i % n_situations}"
        rows.append({"candidate_id": stable_id(sid, kind, text, str(i)), "situation_id": sid, "kind": kind,
                     "text": text, "valence": valence, "explanation": explanation, "relevance": None,
                     "teacher_call_id": "c"})  # fmt: skip
    return frame_of(rows, VRD_CANDIDATES)


def healthy_table(n_situations: int = 6) -> pl.DataFrame:
    items = []
    for kind, texts in (("value", HEALTHY_VALUES), ("right", HEALTHY_RIGHTS), ("duty", HEALTHY_DUTIES)):
        for i, text in enumerate(texts):
            items.append((kind, text, VALENCES[i % 3], f"The lender weighs {text.lower()} against the loss {i}."))
    return candidates(items, n_situations)


def collapsed_table(n_situations: int = 6) -> pl.DataFrame:
    """The demo's collapse: one value repeated, rights all `either`, duties copying a few-shot explanation."""
    items = [("value", "Justice" if i % 3 else f"Value {i}", VALENCES[i % 2], "The lender is paid back in time.")
             for i in range(9)]  # fmt: skip
    items += [("right", f"Right number {i}", "either", "A claim of the borrower is at stake here.") for i in range(6)]
    items += [("duty", f"Duty number {i}", VALENCES[i % 3], "The punishment is far harsher than the theft!")
              for i in range(6)]  # fmt: skip
    return candidates(items, n_situations)
