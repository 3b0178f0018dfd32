"""Document dedup across centuries: one global step finds the copies, a per-partition step drops them.

`find_duplicates` reads the cleaned partitions one at a time (only one partition's text is in memory), keeps per
document its exact key and word 5-gram shingle hashes, then over all documents at once: (1) exact duplicates by key,
(2) MinHash LSH near-duplicates among the survivors, verified by exact shingle Jaccard, (3) union-find clusters,
(4) the keep rule: the earliest year survives (then the longest text, then the smallest doc_id), so a passage copied
from 1611 into 1833 is kept in C017 and dropped from C019. The result is one table (DUPLICATES schema) naming, for
every dropped document, the copy that was kept. `drop_duplicates` applies it to one partition.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from quality.dedup.clusters import UnionFind, keep_rank, kept_members
from quality.dedup.exact import exact_duplicates, exact_keys
from quality.dedup.minhash import MinHashConfig, Shingles, ShingleSets, find_near_duplicates, shingle_hashes
from sources.schema import DOCUMENTS, DUPLICATES, REJECTS, SNIPPET_CHARS, Reject, conform, empty, frame_of
from sources.settings import DedupSettings, config_from
from sources.stats import StageStats

log = logging.getLogger(__name__)

STAGE = "dedup"
EXACT = "exact_duplicate"
NEAR = "near_duplicate"
_META = ["doc_id", "century", "year", "n_chars"]


def minhash_config(settings: DedupSettings) -> MinHashConfig:
    return config_from(MinHashConfig, settings)


@dataclass(slots=True)
class DuplicateResult:
    duplicates: pl.DataFrame  # DUPLICATES: one row per dropped document
    stats: StageStats  # n_in documents, n_out kept, rejected by reason
    summary: dict[str, Any] = field(default_factory=dict)  # candidates, pairs, clusters, cross-century counts


def find_duplicates(partitions: Iterable[pl.DataFrame], config: MinHashConfig | None = None) -> DuplicateResult:
    """Exact + near-duplicate clusters over all `partitions` (DOCUMENTS frames), with the keep-earliest rule."""
    config = config or MinHashConfig()
    metas, keys, shingles = [], [], []
    for frame in partitions:
        frame = conform(frame, DOCUMENTS)
        metas.append(frame.select(_META))
        keys.append(exact_keys(frame["text"]))
        shingles.append(shingle_hashes(frame["text"], config.ngram))
    meta = pl.concat(metas) if metas else empty(DOCUMENTS).select(_META)
    stats = StageStats(STAGE, n_in=meta.height)
    if meta.height == 0:
        return DuplicateResult(empty(DUPLICATES), stats.check(), {"config": str(config)})
    rows = np.arange(meta.height)
    rank = keep_rank(meta)
    exact_kept = exact_duplicates(pl.concat(keys), rank)
    all_shingles = Shingles.concat(shingles)
    sets = ShingleSets(all_shingles)
    near = find_near_duplicates(all_shingles, config, usable=exact_kept == rows, sets=sets)
    labels = UnionFind(meta.height).union_pairs(near.pairs).labels()
    final = kept_members(labels, rank)[exact_kept]  # an exact copy follows its twin's cluster

    dropped = np.flatnonzero(final != rows)
    reasons = np.where(exact_kept[dropped] != dropped, EXACT, NEAR)
    similarity = [
        1.0 if exact_kept[d] == final[d] else sets.jaccard(int(exact_kept[d]), int(final[d])) for d in dropped.tolist()
    ]
    kept_meta = meta[final[dropped]]
    duplicates = pl.DataFrame(
        {
            "doc_id": meta["doc_id"].gather(dropped),
            "century": meta["century"].gather(dropped),
            "kept_doc_id": kept_meta["doc_id"],
            "kept_century": kept_meta["century"],
            "kept_year": kept_meta["year"],
            "reason": reasons,
            "similarity": similarity,
        }
    )
    duplicates = conform(duplicates, DUPLICATES).sort("century", "doc_id")
    for reason, count in Counter(reasons.tolist()).items():
        stats.reject(reason, count)
    stats.n_out = meta.height - len(dropped)
    summary = {
        "config": str(config),
        "docs_with_shingles": near.n_with_shingles,
        "lsh_candidate_pairs": near.n_candidates,
        "verified_pairs": len(near.pairs),
        "clusters": int(len(np.unique(final[dropped]))),
        "cross_century_drops": int((duplicates["century"] != duplicates["kept_century"]).sum()),
        "drops_by_century": dict(Counter(duplicates["century"].to_list())),
    }
    log.info("dedup over %d documents: %s", meta.height, summary)
    return DuplicateResult(duplicates, stats.check(), summary)


@dataclass(slots=True)
class DedupResult:
    documents: pl.DataFrame  # DOCUMENTS: the partition without its duplicates
    rejects: pl.DataFrame  # REJECTS, stage "dedup"
    stats: StageStats


def drop_duplicates(docs: pl.DataFrame, duplicates: pl.DataFrame) -> DedupResult:
    """Remove from one partition every document the global step marked; each becomes a `dedup` reject."""
    docs = conform(docs, DOCUMENTS)
    marked = docs.join(conform(duplicates, DUPLICATES).drop("century"), on="doc_id", how="inner")
    kept = docs.join(marked.select("doc_id"), on="doc_id", how="anti")
    stats = StageStats(STAGE, n_in=docs.height, n_out=kept.height)
    rejects = []
    view = marked.select(
        "doc_id",
        "source",
        "reason",
        "kept_doc_id",
        "kept_century",
        "kept_year",
        "similarity",
        pl.col("text").str.slice(0, SNIPPET_CHARS),
    )
    for row in view.iter_rows(named=True):
        stats.reject(row["reason"])
        rejects.append(
            Reject.of_document(
                row,
                stage=STAGE,
                reason=row["reason"],
                detail=(
                    f"kept_doc_id={row['kept_doc_id']} kept_century={row['kept_century']} "
                    f"kept_year={row['kept_year']} jaccard={row['similarity']:.3f}"
                ),
            )
        )
    return DedupResult(kept.select(list(DOCUMENTS)), frame_of(rejects, REJECTS), stats.check())
