"""documents_clean -> near_duplicate_clusters -> documents_dedup -> pretrain_corpus on a tiny three-century store."""

import os

import dagster as dg
import polars as pl
import pytest

from assets.clean import documents_clean
from assets.dedup import documents_dedup, near_duplicate_clusters, pretrain_corpus
from pipelines.resources import SettingsResource
from quality.tokens import tokenizer_path
from sources.schema import DOCUMENTS, PRETRAIN, frame_of
from sources.storage import Store
from tests.helpers import make_doc

KJV = (
    "And God made the firmament, and divided the waters which were under the firmament from the waters which were "
    "above the firmament: and it was so.\nAnd God called the firmament Heaven. And the evening and the morning were "
    "the second day.\nAnd God said, Let the waters under the heaven be gathered together unto one place, and let the "
    "dry land appear: and it was so."
)
WEBSTER = KJV.replace("And God called", "And God named")
SOTU = (
    "Fellow-Citizens of the Senate and House of Representatives: It is with peculiar satisfaction that I meet you "
    "again. The state of the public finances, the progress of our commerce and the peace we enjoy with every nation "
    "call for our gratitude and for prudence in the measures you will consider this session."
)


@pytest.fixture
def store(home, models_dir) -> Store:
    """Three centuries of documents, and the session's SmolLM2 tokenizer linked under <home>/models."""
    tokenizer_dir = tokenizer_path(models_dir).parent
    os.makedirs(home / "models")
    os.symlink(tokenizer_dir, home / "models" / tokenizer_dir.name)
    store = Store(home)
    partitions = {
        "C013": [make_doc("Hér hefr upp ok segir frá þeim manni, er Sigi er nefndr. " * 6, source="sagas", year=1250)],
        "C017": [make_doc(KJV, source="bible", source_doc_id="kjv", year=1611), make_doc("Jesus wept.", year=1611)],
        "C019": [
            make_doc(WEBSTER, source="bible", source_doc_id="webster", year=1833),
            make_doc(SOTU, source="sotu", source_doc_id="1830", year=1830),
            make_doc(SOTU, source="sotu", source_doc_id="1830-reprint", year=1831),
            make_doc("a" * 4000, source_doc_id="junk", year=1850),
        ],
    }
    for century, docs in partitions.items():
        store.write("documents", frame_of(docs, DOCUMENTS), century)
    return store


def materialize(assets, partition=None, instance=None):
    result = dg.materialize(
        assets, resources={"settings": SettingsResource()}, partition_key=partition, instance=instance
    )
    assert result.success
    return result


def test_quality_assets_end_to_end(store):
    instance = dg.DagsterInstance.ephemeral()
    for century in ("C013", "C017", "C019"):
        materialize([documents_clean], century, instance)
    clean_rejects = store.read_rejects().filter(pl.col("stage") == "clean")
    assert sorted(clean_rejects["reason"]) == ["repeated_characters", "too_short"]

    result = materialize([near_duplicate_clusters], instance=instance)
    (event,) = result.asset_materializations_for_node("near_duplicate_clusters")
    assert event.metadata["rejected_by_reason"].value == {"exact_duplicate": 1, "near_duplicate": 1}
    assert event.metadata["centuries_read"].value == ["C013", "C017", "C019"]

    for century in ("C013", "C017", "C019"):
        result = materialize([documents_dedup, pretrain_corpus], century, instance)
    dedup = store.read_rejects().filter(pl.col("stage") == "dedup").sort("reason")
    kjv_id = make_doc(KJV, source="bible", source_doc_id="kjv").doc_id
    assert dedup["reason"].to_list() == ["exact_duplicate", "near_duplicate"]
    assert f"kept_doc_id={kjv_id}" in dedup["detail"][1] and "kept_century=C017" in dedup["detail"][1]

    pretrain = store.read("pretrain_corpus", "C019")
    assert list(pretrain.schema) == list(PRETRAIN) and pretrain["source"].to_list() == ["sotu"]
    assert pretrain["year"].to_list() == [1830]  # the earlier of the two identical speeches
    assert store.read("pretrain_corpus", "C013")["text"].str.contains("þ").all()  # Old Norse survives
    (event,) = [e for e in result.asset_materializations_for_node("pretrain_corpus")]
    meta = event.metadata
    assert meta["docs"].value == 1 and meta["tokens"].value > 30 and meta["n_in"].value == meta["n_out"].value
    assert set(meta["per_century"].value) == {"C013", "C017", "C019"}  # the chart's bars: every century so far
    assert meta["chart"].value.startswith("![plot](data:image/png;base64,")

    for stage, table in (("clean", "documents_clean"), ("dedup", "documents_dedup")):
        kept = sum(store.read(table, c).height for c in ("C013", "C017", "C019"))
        upstream = "documents" if stage == "clean" else "documents_clean"
        seen = sum(store.read(upstream, c).height for c in ("C013", "C017", "C019"))
        assert seen == kept + store.read_rejects().filter(pl.col("stage") == stage).height


def test_dedup_fails_clearly_before_the_global_step(store):
    result = dg.materialize(
        [documents_dedup], resources={"settings": SettingsResource()}, partition_key="C017", raise_on_error=False
    )
    assert not result.success
