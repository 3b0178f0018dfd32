"""Near-duplicate removal among one situation's values, rights and duties (KaleidoSys's procedure).

Within one situation and one kind, candidates are visited most relevant first (ties: candidate_id). A candidate is
kept only when, against every item already kept in its group, its ROUGE-L F1 (Google's `rouge-score`, stemmed) is
below `rouge_threshold` AND its embedding cosine (the packaged all-MiniLM-L6-v2, shared with the quality stage) is
below `cosine_threshold`. Otherwise it is rejected as `near_duplicate`, and `detail` names the kept candidate it
repeats with both similarities. KaleidoSys deduplicates its overgenerated candidates the same way before training.

As KaleidoSys does, ROUGE compares the texts after stripping a leading "Right to" / "Duty to" (`rouge_text`): the
shared prefix otherwise inflates ROUGE-L, so "Duty to obey the law" and "Duty to uphold the law" (0.80 with the
prefix, 0.67 without) would be merged although they name different duties.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from sources.schema import REJECTS, VRD, VRD_CANDIDATES, Reject, conform, frame_of
from sources.stats import StageStats

log = logging.getLogger(__name__)

STAGE = "vrd_dedup"
DUPLICATE_DETAIL = re.compile(r"^duplicates (\S+) ")
KIND_PREFIX = re.compile(r"^\s*(?:(?:the|a|an)\s+)?(?:right|duty)\s+to\s+", re.IGNORECASE)

# texts -> (n, d) embeddings; normalised or not (cosines are normalised here)
Embedder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True, slots=True)
class VrdDedupConfig:
    rouge_threshold: float = 0.7  # ROUGE-L F1 at/above this vs a kept item: duplicate
    cosine_threshold: float = 0.9  # embedding cosine at/above this vs a kept item: duplicate
    use_stemmer: bool = True  # rouge-score's Porter stemmer, as in the ROUGE reference implementation


@dataclass(slots=True)
class VrdDedupResult:
    vrd: pl.DataFrame  # VRD: kept candidates with dedup_group and keep_reason
    rejects: pl.DataFrame  # REJECTS, reason near_duplicate, detail names the kept candidate
    stats: StageStats


def dedup_vrd(candidates: pl.DataFrame, embed: Embedder, config: VrdDedupConfig | None = None) -> VrdDedupResult:
    """Greedy, most-relevant-first dedup per (situation_id, kind)."""
    from rouge_score import rouge_scorer

    config = config or VrdDedupConfig()
    candidates = conform(candidates, VRD_CANDIDATES).sort(
        ["situation_id", "kind", "relevance", "candidate_id"], descending=[False, False, True, False], nulls_last=True
    )
    stats = StageStats(STAGE)
    stats.n_in = candidates.height
    if candidates.is_empty():
        return VrdDedupResult(conform(candidates.with_columns(_no_group()), VRD), frame_of([], REJECTS), stats)
    vectors = _normalise(np.asarray(embed(candidates["text"].to_list()), dtype=np.float32))
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=config.use_stemmer)
    texts = candidates["text"].to_list()
    compared = [rouge_text(text) for text in texts]
    ids = candidates["candidate_id"].to_list()
    groups = candidates.select("situation_id", "kind").to_dicts()
    group_of = [0] * len(texts)
    reason_of = [""] * len(texts)
    keep = np.zeros(len(texts), dtype=bool)
    rejects: list[Reject] = []
    kept_in_group: list[int] = []
    for i in range(len(texts)):
        if i == 0 or groups[i] != groups[i - 1]:
            kept_in_group = []
        duplicate_of = None
        for j in kept_in_group:
            rouge = scorer.score(compared[j], compared[i])["rougeL"].fmeasure
            cosine = float(vectors[i] @ vectors[j])
            if rouge >= config.rouge_threshold or cosine >= config.cosine_threshold:
                duplicate_of = (j, rouge, cosine)
                break
        if duplicate_of is None:
            keep[i] = True
            group_of[i] = i
            reason_of[i] = "most_relevant" if not kept_in_group else "distinct"
            kept_in_group.append(i)
            continue
        j, rouge, cosine = duplicate_of
        stats.reject("near_duplicate")
        stats.measure("duplicate_rouge_l", rouge)
        stats.measure("duplicate_cosine", cosine)
        detail = (
            f"duplicates {ids[j]} (rougeL={rouge:.3f} vs {config.rouge_threshold}, "
            f"cosine={cosine:.3f} vs {config.cosine_threshold})"
        )
        rejects.append(
            Reject.of(
                row_ref=ids[i],
                source="vrd_relevant",
                stage=STAGE,
                reason="near_duplicate",
                detail=detail,
                text=texts[i],
            )
        )
    kept = candidates.with_columns(
        pl.Series("dedup_group", [ids[g] for g in group_of], dtype=pl.String),
        pl.Series("keep_reason", reason_of, dtype=pl.String),
    ).filter(pl.Series(keep))
    stats.n_out = kept.height
    log.info("vrd dedup: %d in, %d kept, %d near-duplicates", stats.n_in, stats.n_out, stats.n_rejected)
    return VrdDedupResult(conform(kept, VRD), frame_of(rejects, REJECTS), stats.check())


def rouge_text(text: str) -> str:
    """The text ROUGE compares: without a leading "Right to" / "Duty to" (KaleidoSys strips them the same way);
    a text that is nothing but the prefix stays as it is."""
    stripped = KIND_PREFIX.sub("", text, count=1)
    return stripped if stripped.strip() else text


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _no_group() -> list[pl.Expr]:
    return [pl.lit(None, dtype=pl.String).alias("dedup_group"), pl.lit(None, dtype=pl.String).alias("keep_reason")]


def duplicate_of(detail: str | None) -> str | None:
    """The kept candidate_id a `near_duplicate` reject names in its detail."""
    match = DUPLICATE_DETAIL.match(detail or "")
    return match.group(1) if match else None
