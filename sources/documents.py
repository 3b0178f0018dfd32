"""Assemble one century partition of `documents` from every source's raw table."""

from __future__ import annotations

import polars as pl

from sources.schema import DOCUMENTS, REJECTS, Reject, conform, empty, frame_of
from sources.stats import StageStats

STAGE = "documents"


def assemble_documents(raw_tables: list[pl.DataFrame], century: str) -> tuple[pl.DataFrame, pl.DataFrame, StageStats]:
    """Rows of `century` from all raw tables; a doc_id seen again (same source + id from two places) is rejected."""
    stats = StageStats(STAGE)
    frames = [conform(t, DOCUMENTS).filter(pl.col("century") == century) for t in raw_tables]
    rows = pl.concat(frames) if frames else empty(DOCUMENTS)
    stats.n_in = rows.height
    repeated = rows.with_row_index("_order").filter(pl.col("doc_id").is_duplicated())
    first_order = repeated.group_by("doc_id").agg(pl.col("_order").min().alias("_first"))
    dropped = repeated.join(first_order, on="doc_id").filter(pl.col("_order") != pl.col("_first"))
    rejects = [
        Reject.of_document(
            row,
            stage=STAGE,
            reason="duplicate_id",
            detail=f"{row['source']} id {row['source_doc_id']!r} was ingested twice",
        )
        for row in dropped.iter_rows(named=True)
    ]
    documents = rows.unique(subset="doc_id", keep="first", maintain_order=True).sort("doc_id")
    stats.n_out = documents.height
    if rejects:
        stats.reject("duplicate_id", len(rejects))
    for n_chars in documents["n_chars"]:
        stats.measure("chars", n_chars, "chars")
    return documents, frame_of(rejects, REJECTS), stats.check()
