"""Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") and calibration error.

One scalar T divides the logits before the softmax; it is fitted by minimising the negative log-likelihood on
held-out passages the classifier did not train on. The argmax (and so accuracy) never changes, only confidence.
ECE: top-1 confidence in equal-width bins, |accuracy - mean confidence| weighted by the bin's share of passages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

ECE_BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    np.exp(scaled, out=scaled)
    scaled /= scaled.sum(axis=1, keepdims=True)
    return scaled


def nll(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 50.0)) -> float:
    """The T minimising NLL of softmax(logits / T); searched over log T, so both directions are cheap."""
    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: nll(softmax(logits, float(np.exp(log_t))), labels),
        bounds=(np.log(bounds[0]), np.log(bounds[1])),
        method="bounded",
    )
    return float(np.exp(result.x))


@dataclass(frozen=True, slots=True)
class Reliability:
    """Per-bin counts, accuracy and mean confidence of the top-1 prediction; `ece` sums the weighted gaps."""

    edges: np.ndarray
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        if total == 0:
            return 0.0
        return float(np.sum(self.counts / total * np.abs(self.accuracy - self.confidence)))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> Reliability:
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
    return Reliability(edges, counts, np.nan_to_num(accuracy), np.nan_to_num(mean_confidence))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    return reliability(probabilities, labels, bins).ece
