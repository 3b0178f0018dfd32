"""dataset/lineage.py: published rows carry the facts of the document they came from."""

import polars as pl

from dataset.formats import field_configs
from dataset.lineage import add_lineage
from quality.pretrain import build_pretrain
from sources.storage import Store
from tests.vrd_helpers import seed_world

CONFIDENCE = 0.93


def test_every_row_per_text_config_carries_its_documents_date_method_and_confidence(home):
    """[issue 13] A row cut from a document the classifier placed says so (method and probability); a row from a
    document dated by its metadata has a null confidence. The confidence comes from `documents` itself."""
    store = Store(home)
    world = seed_world(store, centuries=("C017",), situations_per_century=3)
    estimated_id = world["documents"]["doc_id"][0]
    is_estimated = pl.col("doc_id") == estimated_id
    documents = world["documents"].with_columns(
        pl.when(is_estimated).then(pl.lit("estimated")).otherwise("date_method").alias("date_method"),
        pl.when(is_estimated).then(CONFIDENCE).alias("date_confidence"),
    )
    store.write("documents", documents, "C017")
    candidates = world["vrd_candidates"]
    items = candidates.join(world["situations"].select("situation_id", "situation", "century"), on="situation_id")
    tables = {
        "vrd": {"train": items.drop("teacher_call_id", "relevance")},
        "benchmark": {"test": candidates.select("candidate_id", "situation_id", "text")},
        "preference_pairs": {"train": candidates.select(pl.col("candidate_id").alias("chosen_id"), "situation_id")},
        "sft_mixture": {"train": candidates.select("situation_id").unique(maintain_order=True)},
        "pretrain": {"C017": build_pretrain(documents).corpus},
    }
    published = add_lineage(tables, store)
    published |= field_configs(published)  # valueprism and kaleidosys are derived from the lineaged vrd rows

    expected = documents.select("doc_id", "date_method", "date_confidence")
    for config, splits in published.items():
        for frame in splits.values():
            got = frame.select("doc_id", "date_method", "date_confidence").unique().sort("doc_id")
            assert estimated_id in got["doc_id"].to_list(), config
            want = expected.filter(pl.col("doc_id").is_in(got["doc_id"].implode())).sort("doc_id")
            assert got.equals(want), config
            estimated = got.filter(pl.col("doc_id") == estimated_id).row(0, named=True)
            assert (estimated["date_method"], estimated["date_confidence"]) == ("estimated", CONFIDENCE), config
    assert set(published) == {"vrd", "benchmark", "preference_pairs", "sft_mixture", "pretrain", "valueprism",
                              "kaleidosys"}  # fmt: skip
