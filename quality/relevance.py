"""Relevance filter for teacher candidates (KaleidoSys keeps only the values a judge calls relevant).

Every candidate needs a relevance in [0, 1]. The teacher's VRD generation may already have written one; rows
without one are scored by a `RelevanceScorer` (the teacher's yes/no relevance question: P(yes) from first-token
logprobs where the backend returns them, the teacher's documented fallback otherwise). A candidate scored below
the threshold becomes a reject with reason `irrelevant` and the score in `detail`; a candidate nobody could score
becomes `unscored`. Scores are never guessed.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from sources.schema import REJECTS, VRD_CANDIDATES, Reject, conform, frame_of
from sources.stats import StageStats

log = logging.getLogger(__name__)

STAGE = "relevance"

# (situation text, kind, item text) -> P(relevant) in [0, 1], or None where the scorer could not answer
RelevanceScorer = Callable[[Sequence[tuple[str, str, str]]], Sequence[float | None]]


@dataclass(slots=True)
class RelevanceResult:
    kept: pl.DataFrame  # VRD_CANDIDATES, every relevance filled and >= threshold
    rejects: pl.DataFrame  # REJECTS
    stats: StageStats


CONTENT_FREE = "N/A"  # the content-free input of contextual calibration (Zhao et al. 2021, "Calibrate Before Use")
BIAS_CLIP = (0.01, 0.99)


class TeacherRelevanceScorer:
    """Kaleido's relevance question asked of the teacher (`teacher.scoring.score_relevance`): P(yes) from the
    first answer token's logprobs where the backend returns them; otherwise the answer read as yes = 1.0 / no = 0.0,
    and None (-> `unscored`) when it names neither. The teacher is opened on the first call only, so a partition
    whose candidates all carry a score never loads a model. `methods` counts how each score was made.

    `calibrate=True` applies contextual calibration (Zhao et al. 2021): the teacher is also asked the question
    with a content-free situation and item ("N/A") once per kind, giving its prior b = P(yes | nothing); a logprob
    score p becomes (p / b) / (p / b + (1 - p) / (1 - b)). A small teacher says "no" to almost everything (the
    packaged SmolLM2-135M: b ~ 0.15-0.2, every raw P(yes) below 0.5), so without this the threshold would drop
    every candidate; with it, 0.5 means "no more likely yes than for an empty question", and a well calibrated
    teacher (b ~ 0.5) is left nearly unchanged. Answers read from text (no logprobs) are 0/1 and not calibrated."""

    def __init__(self, open_teacher: Callable[[], object], calibrate: bool = True):
        """`open_teacher()` returns a `teacher.client.Teacher`; whoever opens it closes it."""
        self._open = open_teacher
        self.calibrate = calibrate
        self.teacher = None
        self.methods: Counter = Counter()
        self.prior: dict[str, float | None] = {}  # kind -> P(yes) for the content-free question

    def __call__(self, queries: Sequence[tuple[str, str, str]]) -> list[float | None]:
        from teacher.scoring import LOGPROBS, score_relevance

        if self.teacher is None:
            self.teacher = self._open()
        queries = list(queries)
        kinds = sorted({kind for _, kind, _ in queries} - set(self.prior)) if self.calibrate else []
        scored = score_relevance(self.teacher, queries + [(CONTENT_FREE, k, CONTENT_FREE) for k in kinds])
        for kind, (probability, score) in zip(kinds, scored[len(queries) :], strict=True):
            self.prior[kind] = probability if score.method == LOGPROBS else None
        scored = scored[: len(queries)]
        self.methods.update(score.method for _, score in scored)
        out = []
        for (_, kind, _), (probability, score) in zip(queries, scored, strict=True):
            prior = self.prior.get(kind)
            if probability is not None and prior is not None and score.method == LOGPROBS:
                probability = calibrated(probability, prior)
            out.append(probability)
        return out

    def teacher_stats(self) -> dict:
        """The teacher's counters (calls, cache hits, parse rate) for metadata; empty when it was never opened."""
        return self.teacher.stats.to_dict() if self.teacher is not None else {}

    def backend_calls(self) -> int:
        """Calls that reached the backend (not cache hits): what `chronoprism build` adds up as teacher calls."""
        return self.teacher.stats.counters.backend_calls if self.teacher is not None else 0


def calibrated(p: float, prior: float) -> float:
    """P(yes) with the content-free prior divided out and renormalised against P(no)."""
    b = min(max(prior, BIAS_CLIP[0]), BIAS_CLIP[1])
    yes, no = p / b, (1.0 - p) / (1.0 - b)
    return yes / (yes + no)


def score_missing(
    candidates: pl.DataFrame, situations: pl.DataFrame | None, scorer: RelevanceScorer | None
) -> tuple[pl.DataFrame, int]:
    """Fill `relevance` where it is null (or NaN) by asking `scorer`; returns the frame and how many were asked."""
    missing = pl.col("relevance").is_null() | pl.col("relevance").is_nan()
    todo = candidates.with_row_index("_row").filter(missing)
    if scorer is None or todo.is_empty() or situations is None:
        return candidates, 0
    todo = todo.join(situations.select("situation_id", "situation"), on="situation_id", how="inner")
    if todo.is_empty():
        return candidates, 0
    queries = list(zip(todo["situation"], todo["kind"], todo["text"], strict=True))
    scores = list(scorer(queries))
    if len(scores) != len(queries):
        raise ValueError(f"relevance scorer returned {len(scores)} scores for {len(queries)} queries")
    filled = pl.DataFrame({"_row": todo["_row"], "_score": pl.Series(scores, dtype=pl.Float64)})
    out = (
        candidates.with_row_index("_row")
        .join(filled, on="_row", how="left")
        .with_columns(pl.when(missing).then(pl.col("_score")).otherwise(pl.col("relevance")).alias("relevance"))
        .drop("_row", "_score")
    )
    return out, len(queries)


def filter_relevance(
    candidates: pl.DataFrame,
    threshold: float,
    situations: pl.DataFrame | None = None,
    scorer: RelevanceScorer | None = None,
) -> RelevanceResult:
    """Keep candidates with relevance >= `threshold`; score the unscored ones first when a scorer is given."""
    candidates = conform(candidates, VRD_CANDIDATES)
    stats = StageStats(STAGE)
    stats.n_in = candidates.height
    scored, asked = score_missing(candidates, situations, scorer)
    stats.measure("scorer_calls", asked)
    keep_mask: list[bool] = []
    rejects: list[Reject] = []
    for cid, text, relevance in zip(scored["candidate_id"], scored["text"], scored["relevance"], strict=True):
        if relevance is None or math.isnan(relevance):
            stats.reject("unscored")
            rejects.append(_reject(cid, text, "unscored", "no relevance score and no scorer answer"))
            keep_mask.append(False)
            continue
        stats.measure("relevance", relevance)
        if relevance < threshold:
            stats.reject("irrelevant")
            rejects.append(_reject(cid, text, "irrelevant", f"relevance={relevance:.4f} < threshold={threshold}"))
            keep_mask.append(False)
        else:
            keep_mask.append(True)
    kept = scored.filter(pl.Series(keep_mask, dtype=pl.Boolean)) if keep_mask else scored
    stats.n_out = kept.height
    log.info("relevance filter: %d in, %d kept, %s", stats.n_in, stats.n_out, dict(stats.rejected))
    return RelevanceResult(conform(kept, VRD_CANDIDATES), frame_of(rejects, REJECTS), stats.check())


def _reject(candidate_id: str, text: str, reason: str, detail: str) -> Reject:
    return Reject.of(
        row_ref=candidate_id, source="vrd_candidates", stage=STAGE, reason=reason, detail=detail, text=text
    )
