"""Dated documents → ~2,000-char passages, each with a content key and a train / calibration / test split.

The split is held out *by content*, so the classifier cannot win by recognising a text it has seen:
- bible: the key is the chapter position (book.chapter), the same for every edition, so Genesis 3 in Wycliffe and
  Genesis 3 in the KJV always land on the same side;
- a source with at least SMALL_SOURCE_DOCS documents (SOTU addresses, plays, user corpora): the key is the
  document, so one address is never on both sides;
- a smaller source (the one packaged saga): the key is a SECTION_PASSAGES-passage section of its document, so it
  still reaches both sides without sharing a passage.
The side is a hash of the key, so it does not depend on which editions or sources a run includes.
"""

from __future__ import annotations

import hashlib

import polars as pl

from sources.dating.unseen import source_group

PASSAGE_CHARS = 2000
MIN_PASSAGE_CHARS = 300  # a shorter tail is folded into the passage before it; a shorter document is skipped
SMALL_SOURCE_DOCS = 5
SECTION_PASSAGES = 10
SPLITS = ("train", "calibration", "test")

PASSAGES_SCHEMA = {
    "doc_id": pl.String,
    "source": pl.String,
    "century": pl.String,
    "passage_no": pl.Int32,
    "content_key": pl.String,
    "split": pl.String,
    "group": pl.String,  # the source group held out together when measuring on unseen sources (unseen.py)
    "text": pl.String,
}


def chunk_text(text: str, size: int = PASSAGE_CHARS, min_chars: int = MIN_PASSAGE_CHARS) -> list[str]:
    """Cut on the last whitespace before `size` chars; a tail shorter than half a passage joins the one before."""
    text = text.strip()
    if len(text) < min_chars:
        return []
    passages: list[str] = []
    start = 0
    while len(text) - start > size + size // 2:
        end = start + size
        cut = max(text.rfind("\n", start + size // 2, end), text.rfind(" ", start + size * 3 // 4, end))
        if cut <= start:
            cut = start + size
        passages.append(text[start:cut].strip())
        start = cut
    passages.append(text[start:].strip())
    return [p for p in passages if p]


def content_key(source: str, source_doc_id: str, doc_id: str, passage_no: int, small_source: bool) -> str:
    """What must never sit on both sides of the split (see the module docstring)."""
    if source == "bible" and "/" in source_doc_id:
        return "bible:" + source_doc_id.split("/", 1)[1]  # "kjv/01.003" -> "bible:01.003"
    if small_source:
        return f"{doc_id}#{passage_no // SECTION_PASSAGES}"
    return doc_id


def split_of(key: str, test_percent: int, calibration_percent: int) -> str:
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + calibration_percent:
        return "calibration"
    return "train"


def passages_of(
    documents: pl.DataFrame, size: int = PASSAGE_CHARS, test_percent: int = 20, calibration_percent: int = 10
) -> pl.DataFrame:
    """Every passage of `documents` (DOCUMENTS columns) with its content key and split."""
    docs_per_source = dict(documents.group_by("source").agg(pl.col("doc_id").n_unique()).iter_rows())
    rows: list[dict] = []
    for doc in documents.select("doc_id", "source", "source_doc_id", "century", "text").iter_rows(named=True):
        small = docs_per_source[doc["source"]] < SMALL_SOURCE_DOCS
        for number, passage in enumerate(chunk_text(doc["text"], size)):
            key = content_key(doc["source"], doc["source_doc_id"], doc["doc_id"], number, small)
            rows.append(
                {
                    "doc_id": doc["doc_id"],
                    "source": doc["source"],
                    "century": doc["century"],
                    "passage_no": number,
                    "content_key": key,
                    "split": split_of(key, test_percent, calibration_percent),
                    "group": source_group(doc["source"], doc["source_doc_id"]),
                    "text": passage,
                }
            )
    return pl.DataFrame(rows, schema=PASSAGES_SCHEMA) if rows else pl.DataFrame(schema=PASSAGES_SCHEMA)


def leaked_keys(passages: pl.DataFrame) -> list[str]:
    """Content keys found in more than one split: must be empty."""
    per_key = passages.group_by("content_key").agg(pl.col("split").n_unique().alias("n"))
    return sorted(per_key.filter(pl.col("n") > 1)["content_key"].to_list())
