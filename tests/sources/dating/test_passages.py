import polars as pl

from sources.dating.passages import chunk_text, leaked_keys, passages_of, split_of
from tests.sources.dating.corpus import EDITIONS, small_documents


def test_chunks_cut_on_whitespace_and_cover_the_text():
    text = " ".join(f"word{i}" for i in range(3000))  # ~26,000 chars
    chunks = chunk_text(text, size=2000)
    assert all(1000 <= len(c) <= 3000 for c in chunks)
    assert " ".join(chunks).split() == text.split()  # nothing lost, no word cut in two
    assert chunk_text("too short", size=2000) == []
    assert chunk_text("x" * 2500, size=2000) == ["x" * 2500]  # a tail under half a passage joins the one before


def test_split_is_held_out_by_content_with_no_leakage():
    passages = passages_of(small_documents())
    assert leaked_keys(passages) == []
    assert set(passages["split"]) == {"train", "calibration", "test"}

    bible = passages.filter(pl.col("source") == "bible")
    per_chapter = bible.group_by("content_key").agg(
        pl.col("split").n_unique().alias("sides"), pl.col("century").n_unique().alias("editions")
    )
    # the same chapter position in every edition (one century each) sits on exactly one side
    assert per_chapter["sides"].max() == 1
    assert per_chapter["editions"].max() == len(EDITIONS)
    assert bible.filter(pl.col("split") == "test")["content_key"].n_unique() > 0

    sotu = passages.filter(pl.col("source") == "sotu")
    assert sotu.group_by("doc_id").agg(pl.col("split").n_unique())["split"].max() == 1  # one address, one side
    train_keys = set(passages.filter(pl.col("split") == "train")["content_key"])
    assert train_keys.isdisjoint(set(passages.filter(pl.col("split") == "test")["content_key"]))


def test_split_depends_only_on_the_key():
    assert split_of("bible:01.003", 20, 10) == split_of("bible:01.003", 20, 10)
    sides = [split_of(f"key-{i}", 20, 10) for i in range(2000)]
    assert 0.15 < sides.count("test") / len(sides) < 0.25
    assert 0.06 < sides.count("calibration") / len(sides) < 0.14


def test_a_source_with_few_documents_is_split_by_sections():
    long_text = "Ok þá mælti Sigurðr við Regin. " * 2000  # one saga-sized document
    docs = pl.DataFrame(
        {"doc_id": ["d1"], "source": ["sagas"], "source_doc_id": ["s1"], "century": ["C013"], "text": [long_text]}
    )
    passages = passages_of(docs)
    assert passages["content_key"].n_unique() > 1 and leaked_keys(passages) == []
