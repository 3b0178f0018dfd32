"""Human review: stratified sample, Label Studio export parsing, Wilson agreement, human_rejected exclusion."""

import polars as pl
import pytest

from dataset.human_review import (
    QUESTIONS,
    agreement_markdown,
    agreement_table,
    apply_human_review,
    read_label_studio_export,
    review_tasks,
    sample_for_review,
    wilson_interval,
)
from sources.schema import HUMAN_REVIEW, VRD_SPLIT


def published(n_per: int = 5) -> pl.DataFrame:
    rows = []
    for century in ("C017", "C019"):
        for kind in ("value", "right", "duty"):
            for i in range(n_per):
                rows.append(
                    {
                        "candidate_id": f"{century}-{kind}-{i}",
                        "situation_id": f"s{i}",
                        "century": century,
                        "doc_id": "d",
                        "passage_id": "p",
                        "situation": f"Situation {i}",
                        "kind": kind,
                        "text": f"{kind} {i}",
                        "valence": "supports",
                        "explanation": "because",
                        "relevance": 0.9,
                        "split": "train",
                    }
                )
    return pl.DataFrame(rows, schema=VRD_SPLIT)


def ls_task(task_id: int, candidate_id: str, answers: dict | None, **annotation) -> dict:
    """One task as Label Studio exports it (only the fields the importer reads, plus a few it must ignore)."""
    results = [
        {
            "id": f"r{i}",
            "from_name": q,
            "to_name": "item",
            "type": "choices",
            "origin": "manual",
            "value": {"choices": [a]},
        }
        for i, (q, a) in enumerate((answers or {}).items())
    ]
    annotations = (
        []
        if answers is None
        else [
            {
                "id": task_id * 10,
                "completed_by": 1,
                "result": results,
                "was_cancelled": False,
                "created_at": "2026-12-01T10:00:00Z",
                "updated_at": "2026-12-01T10:00:00Z",
                **annotation,
            }
        ]
    )
    data = {"candidate_id": candidate_id, "century": "C017", "kind": "value", "item": "Mercy"}
    return {"id": task_id, "annotations": annotations, "drafts": [], "predictions": [], "data": data}


YES = dict.fromkeys(QUESTIONS, "yes")


def test_sample_is_even_over_strata_and_reproducible():
    rows = published()
    sample = sample_for_review(rows, 12, ["century", "kind"])
    assert sample.height == 12
    assert set(sample.group_by("century", "kind").len()["len"]) == {2}
    assert sample.equals(sample_for_review(rows, 12, ["century", "kind"]))
    assert not sample.equals(sample_for_review(rows, 12, ["century", "kind"], seed=1))
    assert sorted(sample_for_review(rows, 7, ["century"]).group_by("century").len()["len"]) == [3, 4]
    tasks = review_tasks(sample.with_columns(pl.lit("verse").alias("passage")))
    assert tasks[0]["data"]["passage"] == "verse" and tasks[0]["data"]["kind_label"] in {"Value", "Right", "Duty"}


def test_export_parsing_keeps_latest_and_rejects_what_it_cannot_read():
    tasks = [
        ls_task(1, "a", YES),
        ls_task(2, "b", {**YES, "relevant": "no"}),
        ls_task(3, "c", None),  # never annotated
        ls_task(4, "d", {"relevant": "yes"}),  # two answers missing
        ls_task(5, "e", YES, was_cancelled=True),  # skipped by the annotator
    ]
    later = ls_task(6, "b", YES, updated_at="2026-12-02T09:00:00Z")  # b re-reviewed in a later round
    review, rejects = read_label_studio_export([*tasks, later], "round1.json")
    assert review.columns == list(HUMAN_REVIEW)
    assert dict(review.select("candidate_id", "accepted").iter_rows()) == {"a": True, "b": True}
    assert dict(rejects.select("row_ref", "reason").iter_rows()) == {
        "c": "unannotated",
        "d": "incomplete_annotation",
        "e": "unannotated",
    }
    review, _ = read_label_studio_export(tasks, "round1.json")
    assert review.filter(pl.col("candidate_id") == "b")["relevant"].to_list() == [False]


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(91, 100)
    assert low == pytest.approx(0.8377, abs=1e-3) and high == pytest.approx(0.9519, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(5, 5)
    assert high == 1.0 and low == pytest.approx(0.5655, abs=1e-3)


def test_agreement_per_kind_and_century_with_intervals():
    review = pl.DataFrame(
        [
            {
                "candidate_id": f"x{i}",
                "century": "C017" if i < 6 else "C019",
                "kind": "value",
                "relevant": i % 3 != 0,
                "valence_right": True,
                "explanation_right": True,
                "accepted": i % 3 != 0,
                "annotator": "1",
                "annotated_at": "t",
                "label_studio_task": i,
                "origin": "f",
            }
            for i in range(9)
        ],
        schema=HUMAN_REVIEW,
    )
    table = agreement_table(review)
    rows = {(r["kind"], r["century"]): r for r in table.iter_rows(named=True)}
    assert (rows[("value", "C017")]["n"], rows[("value", "C017")]["k"]) == (6, 4)
    assert rows[("all", "all")]["agreement"] == pytest.approx(6 / 9)
    assert rows[("value", "C019")]["ci_low"] < 2 / 3 < rows[("value", "C019")]["ci_high"]
    card = agreement_markdown(review)
    assert "91%" in card and "| value | C017 | 6 | 4 | 67% |" in card


def test_items_judged_wrong_are_dropped_with_a_reason():
    items = published(1)
    wrong = items["candidate_id"][0]
    review = pl.DataFrame(
        [
            {
                "candidate_id": wrong,
                "century": "C017",
                "kind": "value",
                "relevant": False,
                "valence_right": True,
                "explanation_right": False,
                "accepted": False,
                "annotator": "1",
                "annotated_at": "t",
                "label_studio_task": 1,
                "origin": "f",
            },
            {
                "candidate_id": items["candidate_id"][1],
                "century": "C017",
                "kind": "right",
                "relevant": True,
                "valence_right": True,
                "explanation_right": True,
                "accepted": True,
                "annotator": "1",
                "annotated_at": "t",
                "label_studio_task": 2,
                "origin": "f",
            },
        ],
        schema=HUMAN_REVIEW,
    )
    kept, rejects = apply_human_review(items, review)
    assert kept.height == items.height - 1 and wrong not in kept["candidate_id"].to_list()
    assert rejects.row(0, named=True) | {"snippet": ""} == {
        "row_ref": wrong,
        "source": "vrd",
        "stage": "human_review",
        "reason": "human_rejected",
        "detail": "judged no: relevant, explanation_right",
        "snippet": "",
    }
    same, none = apply_human_review(items, None)
    assert same.equals(items) and none.is_empty()
