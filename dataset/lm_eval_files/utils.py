"""lm-evaluation-harness helpers for chronoprism's benchmark, shipped in the published dataset under `lm_eval/`.

The benchmark rows are read from `../data/benchmark/test.parquet` beside this file (or `data_file` given with
`--metadata '{"data_file": "..."}'`), so the task works on a local build and on a downloaded copy alike, offline.
Valence uses the same prompt as chronoprism's own value_eval (training/valence.py): a model's lm-eval `acc` is the
accuracy chronoprism reports. Relevance pairs every gold item (yes) with an item of another situation (no).
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

BENCHMARK = Path(__file__).resolve().parent.parent / "data" / "benchmark" / "test.parquet"
VALENCES = ["supports", "opposes", "either"]
VALENCE_TEMPLATE = (
    "Situation: {situation}\n"
    "{kind_title}: {text}\n"
    "Question: Does the {kind} support or oppose the situation, or either?\n"
    "Answer:"
)
RELEVANCE_TEMPLATE = (
    "Situation: {situation}\n{kind_title}: {text}\nQuestion: Is the {kind} relevant to the situation?\nAnswer:"
)


def _rows(data_file: str | None) -> list[dict]:
    import pyarrow.parquet as pq

    rows = pq.read_table(data_file or BENCHMARK).to_pylist()
    return sorted(rows, key=lambda row: (row["situation_id"], row["kind"], row["candidate_id"]))


def _item(row: dict, **extra) -> dict:
    return {
        "candidate_id": row["candidate_id"],
        "century": row["century"],
        "situation": row["situation"].strip(),
        "kind": row["kind"],
        "text": row["text"].strip(),
        **extra,
    }


def load_valence(data_file: str | None = None, **_metadata) -> datasets.DatasetDict:
    """One multiple-choice item per benchmark row; `label` indexes supports / opposes / either."""
    rows = [row for row in _rows(data_file) if row["valence"] in VALENCES]
    items = [_item(row, label=VALENCES.index(row["valence"])) for row in rows]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(items)})


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def load_relevance(data_file: str | None = None, **_metadata) -> datasets.DatasetDict:
    """Each gold item is relevant (label 0 = yes); the next item of another situation, in a fixed order, whose text
    the situation does not have, is the negative (label 1 = no)."""
    rows = _rows(data_file)
    texts: dict[str, set[str]] = {}
    for row in rows:
        texts.setdefault(row["situation_id"], set()).add(_key(row["text"]))
    items = []
    for i, row in enumerate(rows):
        items.append(_item(row, label=0))
        for other in rows[i + 1 :] + rows[:i]:
            if other["situation_id"] != row["situation_id"] and _key(other["text"]) not in texts[row["situation_id"]]:
                items.append(_item({**other, "situation": row["situation"], "century": row["century"]}, label=1))
                break
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(items)})


def _fill(template: str, doc: dict) -> str:
    kind = doc["kind"]
    return template.format(situation=doc["situation"], kind=kind, kind_title=kind.title(), text=doc["text"])


def valence_prompt(doc: dict) -> str:
    return _fill(VALENCE_TEMPLATE, doc)


def relevance_prompt(doc: dict) -> str:
    return _fill(RELEVANCE_TEMPLATE, doc)
