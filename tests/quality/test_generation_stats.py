"""Distribution statistics of generated data and the collapse rules: crafted collapsed and healthy tables."""

from __future__ import annotations

import polars as pl
import pytest

from quality.generation_stats import (
    CollapseThresholds,
    agreement,
    card_markdown,
    collapse_findings,
    generation_stats,
    restates,
    stats_markdown,
)
from sources.schema import PASSAGES, frame_of
from sources.storage import Store
from tests.quality.generated_tables import collapsed_table, healthy_table, situations


def rules(stats, thresholds=None) -> set[tuple[str, str]]:
    return {(f.rule, f.kind) for f in collapse_findings(stats, thresholds)}


def test_healthy_table_fires_nothing():
    stats = generation_stats("C019", healthy_table(), situations(6))
    assert rules(stats) == set()
    value = stats.kinds["value"]
    assert value.n_items == 9 and value.items_per_situation == pytest.approx(1.5)
    assert value.distinct_text_ratio == 1.0 and value.valences == {"supports": 3, "opposes": 3, "either": 3}
    assert value.valence_entropy == pytest.approx(1.585, abs=1e-3)
    assert value.example_text_share == pytest.approx(2 / 9)  # Mercy and Justice are example texts: informative only


def test_collapsed_table_names_what_collapsed():
    stats = generation_stats("C019", collapsed_table(), situations(6))
    findings = collapse_findings(stats)
    assert {(f.rule, f.kind) for f in findings} == {
        ("max_top_text_share", "value"),
        ("min_distinct_text_ratio", "value"),
        ("min_valences", "right"),
        ("max_copied_share", "duty"),
    }
    messages = {f.rule + ":" + f.kind: f.message for f in findings}
    assert messages["max_top_text_share:value"].startswith("one text ('Justice') is 67 % of values in C019")
    assert messages["min_valences:right"] == "rights: one valence only (either) in C019"
    assert "100 % of explanations copy a prompt example" in messages["max_copied_share:duty"]
    assert stats.kinds["value"].top_text_count == 6 and stats.kinds["right"].valence_entropy == 0.0


def test_thresholds_can_be_turned_off_and_small_kinds_are_not_judged():
    stats = generation_stats("C019", collapsed_table(), situations(6))
    off = CollapseThresholds(max_top_text_share=None, min_distinct_text_ratio=None, min_valences=None,
                             max_copied_share=None)  # fmt: skip
    assert rules(stats, off) == set()
    four_each = collapsed_table().group_by("kind", maintain_order=True).head(4)  # below min_items
    small = generation_stats("C019", four_each, situations(6))
    assert rules(small) == set()


def test_items_per_situation_flags_a_kind_the_teacher_cannot_produce():
    values_only = healthy_table().filter(pl.col("kind") == "value")
    stats = generation_stats("C017", values_only, situations(6))
    assert rules(stats) == {("min_items_per_situation", "right"), ("min_items_per_situation", "duty")}
    assert stats.kinds["duty"].n_items == 0


def test_situations_copied_or_restating_their_passage():
    passage_text = "The king shall judge the poor with justice and punish the wicked for their cruelty in the land."
    passages = frame_of([{"passage_id": f"p{i}", "doc_id": "d", "century": "C017", "char_start": 0, "char_end": 1,
                          "text": passage_text} for i in range(6)], PASSAGES)  # fmt: skip
    verbatim = situations(6, "C017", "the king shall judge the poor with justice")
    stats = generation_stats("C017", situations=verbatim, passages=passages)
    assert stats.situations.verbatim_share == 1.0
    assert rules(stats) == {("max_verbatim_situation_share", "situation")}
    copied = situations(6, "C017", "Sharing food with a hungry neighbour")  # a few-shot example, word for word
    assert rules(generation_stats("C017", situations=copied, passages=passages)) == {("max_copied_share", "situation")}
    fresh = situations(6, "C017", "Punishing a cruel landlord {i}")
    assert rules(generation_stats("C017", situations=fresh, passages=passages)) == set()


def test_restates_needs_most_ngrams_in_the_passage():
    passage = "He that hath two coats, let him impart to him that hath none."
    assert restates("let him impart to him that hath none", passage, 5, 0.8)
    assert not restates("Giving a spare coat to someone who has none", passage, 5, 0.8)
    assert restates("two coats", passage, 5, 0.8)  # shorter than n: all its words in a row


def test_agreement_counts_shared_items_and_valences():
    a = healthy_table()
    b = a.with_columns(
        pl.when(pl.col("kind") == "right").then(pl.lit("either")).otherwise(pl.col("valence")).alias("valence")
    ).filter(pl.col("kind") != "duty")
    g = agreement(a, b)
    assert (g.items_a, g.items_b, g.shared) == (20, 14, 14)
    assert g.item_jaccard == pytest.approx(14 / 20)
    assert g.same_valence == 9 + 1  # every value, and the one right that was `either` already
    assert g.valence_agreement == pytest.approx(10 / 14)


def test_markdown_lists_kinds_and_warnings():
    stats = generation_stats("C019", collapsed_table(), situations(6))
    text = stats_markdown([stats], collapse_findings(stats))
    assert "| C019 | value | 9 | 1.50 | 44 % | Justice (67 %) |" in text
    assert "- rights: one valence only (either) in C019" in text


def test_card_section_reads_every_century_from_the_store(tmp_path):
    store = Store(tmp_path)
    assert card_markdown(store) == ""
    store.write("situations", situations(6), "C019")
    kept = {"dedup_group": pl.col("candidate_id"), "keep_reason": pl.lit("distinct")}
    store.write("vrd", collapsed_table().with_columns(**kept), "C019")
    store.write("situations", situations(6, "C017"), "C017")
    store.write("vrd", healthy_table().with_columns(**kept), "C017")
    text = card_markdown(store)
    assert text.index("| C017 | value | 9 |") < text.index("| C019 | value | 9 |")
    assert "| C019 | 6 | 6 | 100 % | 0 % | 0 % |" in text  # the situations table
    assert "**4 collapse warnings**" in text and "- rights: one valence only (either) in C019" in text
