"""Confidence earned on sources the model never saw: leave-one-source-out scores, the calibration fitted on them,
conformal century sets, and the per-held-out-source report.

Why: a classifier tested on held-out chapters of the *same* editions it trained on learns each edition's
fingerprint; on a new edition it can be confidently wrong. So for every source group (one Bible edition, SOTU, the
plays, the sagas, a user corpus) a fold model is trained on the other groups only and scores the held-out group's
calibration- and test-split passages (content never trained on either). On those out-of-source scores:

- an isotonic map from the in-domain top-1 probability to the accuracy measured on unseen sources, fitted on the
  calibration split: the `confidence` the estimator reports and placement compares with the threshold;
- split-conformal century sets (Vovk et al.; Angelopoulos & Bates 2021, "A Gentle Introduction to Conformal
  Prediction"): nonconformity 1 - p(true century) on unseen-source units, q = its (1 - alpha) quantile, the set
  of a text = every century with p >= 1 - q. A text whose set is not exactly one century is out of distribution
  for the model and is quarantined, whatever its confidence;
- the report: accuracy per held-out group, and precision / coverage at the threshold on the *test* split (the
  calibration never saw it).

Units are both single passages and whole documents scored as `estimate` scores them (up to 8 spread passages),
so a short snippet and a long file are both covered by the calibration. The fold models reuse the final model's
features and idf (idf is label-free; refitting it per fold would cost a second featurisation for little change),
and each trains on at most `fold_max_passages` passages drawn from the other groups: seventeen full fits took
longer than everything else in a demo build, and a fold model on fewer passages is, if anything, less sure of
itself, so the calibration errs on the cautious side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from sources.dating.calibration import softmax

logger = logging.getLogger(__name__)

EVAL_SPLITS = ("calibration", "test")  # content never trained on, by any model
THRESHOLDS = (0.5, 0.8, 0.9, 0.95)


def source_group(source: str, source_doc_id: str) -> str:
    """What a new source would be: one Bible edition ("bible:kjv"), otherwise the source itself."""
    if source == "bible" and "/" in source_doc_id:
        return "bible:" + source_doc_id.split("/", 1)[0]
    return source


@dataclass(slots=True)
class UnseenCalibration:
    """Maps in-domain scores to what they are worth on an unseen source (fitted on out-of-source units)."""

    knots_x: list[float] = field(default_factory=lambda: [0.0, 1.0])  # in-domain top-1 probability
    knots_y: list[float] = field(default_factory=lambda: [0.0, 0.0])  # accuracy on unseen sources there
    set_cutoff: float = 1.0  # a century is in the conformal set when its probability is >= this
    alpha: float = 0.1

    def confidence(self, top1: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(top1, dtype=np.float64), self.knots_x, self.knots_y)

    def sets(self, probabilities: np.ndarray) -> np.ndarray:
        """Boolean (n, n_classes): the conformal century set of each row."""
        return probabilities >= self.set_cutoff

    def placeable(self, probabilities: np.ndarray, threshold: float) -> np.ndarray:
        """Rows whose unseen-source confidence clears `threshold` and whose century set is exactly one century."""
        confidence = self.confidence(probabilities.max(axis=1))
        return (confidence >= threshold) & (self.sets(probabilities).sum(axis=1) == 1)


def fit_calibration(probabilities: np.ndarray, labels: np.ndarray, alpha: float) -> UnseenCalibration:
    """Isotonic accuracy-vs-confidence map and the conformal cutoff, from out-of-source units (label -1: a century
    the fold model never saw, always wrong)."""
    from sklearn.isotonic import IsotonicRegression

    if len(labels) == 0:
        return UnseenCalibration(alpha=alpha)
    top1 = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(top1, correct)
    p_true = np.where(labels >= 0, probabilities[np.arange(len(labels)), np.clip(labels, 0, None)], 0.0)
    scores = 1.0 - p_true
    level = min(1.0, np.ceil((len(scores) + 1) * (1 - alpha)) / len(scores))
    q = float(np.quantile(scores, level, method="higher"))
    return UnseenCalibration(
        knots_x=[float(x) for x in iso.X_thresholds_],
        knots_y=[float(y) for y in iso.y_thresholds_],
        set_cutoff=max(1.0 - q, 1e-9),  # q = 1 (sets of every century) still needs p > 0
        alpha=alpha,
    )


@dataclass(slots=True)
class OutOfSource:
    """Out-of-source probabilities of every unit (passages, then documents), with the unit's labels and tags."""

    probabilities: np.ndarray
    labels: np.ndarray
    group: np.ndarray
    split: np.ndarray
    kind: np.ndarray  # "passage" or "document"


def fit_fold(features: sp.csr_matrix, labels: np.ndarray, n_classes: int, config) -> tuple[np.ndarray, np.ndarray]:
    """A linear model on `features` whose rows carry only some of the classes, as (coef, intercept) over all
    `n_classes` (a class it never saw gets a logit of -inf: probability 0)."""
    model = config.classifier()
    model.fit(features, labels)
    present = model.classes_.astype(int)
    coef = np.zeros((n_classes, features.shape[1]), dtype=np.float32)
    intercept = np.full(n_classes, -np.inf)
    if len(present) == 2:  # binary SGD keeps one row: split it into two symmetric logits
        coef[present[0]], coef[present[1]] = -model.coef_[0] / 2, model.coef_[0] / 2
        intercept[present[0]], intercept[present[1]] = -model.intercept_[0] / 2, model.intercept_[0] / 2
    else:
        coef[present] = model.coef_
        intercept[present] = model.intercept_
    return coef, intercept


def out_of_source(
    passages: pl.DataFrame,
    features: sp.csr_matrix,
    labels: np.ndarray,
    n_classes: int,
    temperature: float,
    config,
    combine_documents,
) -> OutOfSource | None:
    """Leave-one-source-out: per group, a fold model trained on the other groups' train split scores this group's
    calibration and test passages; documents combine their passages as `estimate` does. None: fewer than two
    groups (nothing can be held out)."""
    groups = passages["group"].to_numpy()
    split = passages["split"].to_numpy()
    names = sorted(set(groups.tolist()))
    if len(names) < 2:
        return None
    train = split == "train"
    held = np.isin(split, EVAL_SPLITS)
    parts: list[OutOfSource] = []
    rng = np.random.default_rng(config.seed)
    for name in names:
        fold_train = np.flatnonzero(train & (groups != name))
        if config.fold_max_passages and fold_train.size > config.fold_max_passages:
            fold_train = np.sort(rng.choice(fold_train, config.fold_max_passages, replace=False))
        rows = np.flatnonzero(held & (groups == name))
        if rows.size == 0 or len(set(labels[fold_train].tolist())) < 2:
            logger.info("dating: group %s not held out (no evaluation passages or < 2 centuries left)", name)
            continue
        coef, intercept = fit_fold(features[fold_train], labels[fold_train], n_classes, config)
        with np.errstate(invalid="ignore"):
            logits = np.asarray(features[rows] @ coef.T) + intercept
        probabilities = softmax(np.nan_to_num(logits, neginf=-1e30), temperature)
        documents, doc_rows = [], []
        for name_of_split in EVAL_SPLITS:  # a document's passages of one split only (sections of a small source)
            local = np.flatnonzero(split[rows] == name_of_split)
            if local.size:
                combined, first = combine_documents(passages[rows[local].tolist()], probabilities[local])
                documents.append(combined)
                doc_rows.append(local[first])
        doc_rows = np.concatenate(doc_rows)
        parts.append(
            OutOfSource(
                probabilities=np.vstack([probabilities, *documents]),
                labels=np.concatenate([labels[rows], labels[rows][doc_rows]]),
                group=np.array([name] * (len(rows) + len(doc_rows)), dtype=object),
                split=np.concatenate([split[rows], split[rows][doc_rows]]),
                kind=np.array(["passage"] * len(rows) + ["document"] * len(doc_rows), dtype=object),
            )
        )
        logger.info("dating: held out %s (%d passages, %d documents)", name, rows.size, len(doc_rows))
    if not parts:
        return None
    return OutOfSource(
        probabilities=np.vstack([p.probabilities for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        group=np.concatenate([p.group for p in parts]),
        split=np.concatenate([p.split for p in parts]),
        kind=np.concatenate([p.kind for p in parts]),
    )


def _rate(mask: np.ndarray) -> float | None:
    return round(float(np.mean(mask)), 4) if mask.size else None


def selective(
    probabilities: np.ndarray, labels: np.ndarray, calibration: UnseenCalibration, threshold: float
) -> dict[str, Any]:
    """Coverage (share placed) and precision (share of placed that are right) at `threshold`."""
    placed = calibration.placeable(probabilities, threshold)
    correct = probabilities.argmax(axis=1) == labels
    return {
        "n": int(len(labels)),
        "coverage": _rate(placed),
        "precision": _rate(correct[placed]),
        "n_placed": int(placed.sum()),
        "coverage_confidence_only": _rate(calibration.confidence(probabilities.max(axis=1)) >= threshold),
    }


def unseen_report(scores: OutOfSource, calibration: UnseenCalibration, threshold: float) -> dict[str, Any]:
    """Unseen-source accuracy overall and per held-out group; precision/coverage on the test split at several
    thresholds (the one placement uses is `threshold`)."""
    correct = scores.probabilities.argmax(axis=1) == scores.labels
    test = scores.split == "test"
    report: dict[str, Any] = {"threshold": threshold, "alpha": calibration.alpha, "set_cutoff": calibration.set_cutoff}
    for kind in ("passage", "document"):
        mine = scores.kind == kind
        report[f"{kind}_accuracy"] = _rate(correct[mine & test])
        report[f"{kind}_at_threshold"] = {
            f"{t:.2f}": selective(scores.probabilities[mine & test], scores.labels[mine & test], calibration, t)
            for t in sorted(set(THRESHOLDS) | {threshold})
        }
        sizes = calibration.sets(scores.probabilities[mine & test]).sum(axis=1)
        report[f"{kind}_singleton_sets"] = _rate(sizes == 1)
    per_group = {}
    for name in sorted(set(scores.group.tolist())):
        mine = (scores.group == name) & test
        passages, documents = mine & (scores.kind == "passage"), mine & (scores.kind == "document")
        at = selective(scores.probabilities[documents], scores.labels[documents], calibration, threshold)
        per_group[name] = {
            "n_passages": int(passages.sum()),
            "passage_accuracy": _rate(correct[passages]),
            "n_documents": int(documents.sum()),
            "document_accuracy": _rate(correct[documents]),
            "document_coverage": at["coverage"],
            "document_precision": at["precision"],
        }
    report["per_group"] = per_group
    return report
