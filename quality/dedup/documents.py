"""Document dedup across centuries: one global step finds the copies, a per-partition step drops them.

`find_duplicates` reads the cleaned partitions a batch at a time (only one batch's text is in memory), keeps per
document its exact key and LSH band keys, then over all documents at once: (1) exact duplicates by key,
(2) MinHash LSH near-duplicates among the survivors, verified by exact shingle Jaccard on a second read of just the
candidates' text (their shingle sets spilled to disk), (3) union-find clusters over the verified pairs,
(4) the keep rule: the earliest year survives (then the longest text, then the smallest doc_id), so a passage copied
from 1611 into 1833 is kept in C017 and dropped from C019. The result is one table (DUPLICATES schema) naming, for
every dropped document, the copy that was kept. `drop_duplicates` applies it to one partition.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quality.dedup.clusters import UnionFind, keep_rank, kept_members
from quality.dedup.exact import exact_duplicates, exact_keys
from quality.dedup.minhash import (
    MinHashConfig,
    Shingles,
    SpilledSets,
    band_keys,
    candidate_pairs_of_keys,
    shingle_hashes,
    signatures,
    verify_pairs,
)
from sources.parallel import BatchMap, LocalMap
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


Frames = Iterable[pl.DataFrame] | Callable[[], Iterable[pl.DataFrame]]


def find_duplicates(
    partitions: Frames,
    config: MinHashConfig | None = None,
    spill_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    mapper: BatchMap | None = None,
) -> DuplicateResult:
    """Exact + near-duplicate clusters over all `partitions` (DOCUMENTS frames), with the keep-earliest rule.

    [issue 14] Memory stays flat in the corpus size: `partitions` (frames, or a function that yields them afresh,
    e.g. batches read from the store) is read twice. The first pass keeps per document only its metadata, exact key,
    shingle count and LSH band keys; the second computes the shingle sets of the documents in candidate pairs alone,
    spilled to a file under `spill_dir` (a temporary directory when None) and read back per pair. Union-find runs
    over the documents in verified pairs only. `progress(documents, bytes)` is called after each frame; `mapper`
    runs the per-batch work of both passes (here, or as Ray tasks: sources.parallel).
    """
    config = config or MinHashConfig()
    mapper = mapper or LocalMap()
    frames = partitions if callable(partitions) else _replayable(partitions)
    metas, keys, counts, bands = [], [], [], []
    done_docs = done_bytes = 0
    for piece in mapper.imap(partial(_signature_piece, config=config), frames()):
        metas.append(piece.meta)
        keys.append(piece.keys)
        counts.append(piece.counts)
        bands.append(piece.bands)
        done_docs, done_bytes = done_docs + piece.meta.height, done_bytes + piece.n_bytes
        if progress is not None:
            progress(done_docs, done_bytes)
    meta = pl.concat(metas) if metas else empty(DOCUMENTS).select(_META)
    stats = StageStats(STAGE, n_in=meta.height)
    if meta.height == 0:
        return DuplicateResult(empty(DUPLICATES), stats.check(), {"config": str(config)})
    rows = np.arange(meta.height)
    rank = keep_rank(meta)
    exact_kept = exact_duplicates(pl.concat(keys), rank)
    usable = (np.concatenate(counts) > 0) & (exact_kept == rows)
    candidates = candidate_pairs_of_keys(np.concatenate(bands), config, usable)
    del bands
    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="near-dup-", dir=spill_dir) as spill:
        sets = SpilledSets(Path(spill) / "shingle_sets.bin")
        try:
            _spill_sets(frames, np.unique(candidates), sets, config.ngram, mapper)
            pairs, _ = verify_pairs(candidates, sets, config.jaccard_threshold)
            final = kept_members(_pair_labels(meta.height, pairs), rank)[exact_kept]  # exact copies follow their twin
            dropped = np.flatnonzero(final != rows)
            similarity = [
                1.0 if exact_kept[d] == final[d] else sets.jaccard(int(exact_kept[d]), int(final[d]))
                for d in dropped.tolist()
            ]
        finally:
            sets.close()
    log.info(
        "%s: %d docs with shingles, %d candidates, %d pairs kept", config, usable.sum(), len(candidates), len(pairs)
    )
    reasons = np.where(exact_kept[dropped] != dropped, EXACT, NEAR)
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
        "docs_with_shingles": int(usable.sum()),
        "lsh_candidate_pairs": len(candidates),
        "verified_pairs": len(pairs),
        "clusters": int(len(np.unique(final[dropped]))),
        "cross_century_drops": int((duplicates["century"] != duplicates["kept_century"]).sum()),
        "drops_by_century": dict(Counter(duplicates["century"].to_list())),
    }
    log.info("dedup over %d documents: %s", meta.height, summary)
    return DuplicateResult(duplicates, stats.check(), summary)


def _replayable(partitions: Iterable[pl.DataFrame]) -> Callable[[], Iterable[pl.DataFrame]]:
    """Frames given once (a list, or a generator read into one) as a function that yields them again."""
    held = list(partitions)
    return lambda: held


@dataclass(slots=True)
class _Signatures:
    """What the first pass keeps of one batch: ~200 bytes a document whatever its length."""

    meta: pl.DataFrame  # _META columns
    keys: pl.Series  # exact-text digests
    counts: np.ndarray  # shingles per document (0: too short for MinHash)
    bands: np.ndarray  # (n, bands) LSH band keys
    n_bytes: int


def _signature_piece(frame: pl.DataFrame, config: MinHashConfig) -> _Signatures:
    frame = conform(frame, DOCUMENTS)
    shingles = shingle_hashes(frame["text"], config.ngram)
    return _Signatures(
        frame.select(_META),
        exact_keys(frame["text"]),
        shingles.counts,
        band_keys(signatures(shingles, config), config),
        int(frame["text"].str.len_bytes().sum() or 0),
    )


def _spill_sets(
    frames: Callable[[], Iterable[pl.DataFrame]], needed: np.ndarray, sets: SpilledSets, ngram: int, mapper: BatchMap
) -> None:
    """Second pass: shingle sets of the `needed` documents (global row numbers, sorted), written to `sets`."""

    def wanted():
        base = 0
        for frame in frames():
            local = needed[(needed >= base) & (needed < base + frame.height)] - base
            if len(local):
                yield local + base, conform(frame, DOCUMENTS)["text"].gather(local)
            base += frame.height

    for docs, shingles in mapper.imap(partial(_shingles_of, ngram=ngram), wanted()):
        sets.add_all(docs, shingles)


def _shingles_of(item: tuple[np.ndarray, pl.Series], ngram: int) -> tuple[np.ndarray, Shingles]:
    docs, texts = item
    return docs, shingle_hashes(texts, ngram)


def _pair_labels(n: int, pairs: np.ndarray) -> np.ndarray:
    """Cluster label of every document (itself when in no pair), union-find over the documents in `pairs` only."""
    labels = np.arange(n, dtype=np.int64)
    if len(pairs) == 0:
        return labels
    nodes = np.unique(pairs)
    roots = UnionFind(len(nodes)).union_pairs(np.searchsorted(nodes, pairs)).labels()
    labels[nodes] = nodes[roots]
    return labels


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
