"""Date estimation for undated text: a century classifier trained on the pipeline's own dated documents.

    from sources.dating import train_estimator, load_latest
    estimator = train_estimator(documents)          # or load_latest(home / "models")
    estimator.estimate(texts)                        # [(century, year, confidence), ...]

passages.py    ~2,000-char passages and the split held out by content (bible chapter position, SOTU address)
features.py    char n-gram hashing (numpy), model.py  tf-idf + SGD logistic + temperature, evaluation
calibration.py temperature scaling and ECE,        plots.py  confusion matrix and reliability diagram PNGs
store.py       save / load under <home>/models/dating/,  placement.py  opt-in placement and the disagreement check
"""

from sources.base import UNDATED_REASONS
from sources.dating.model import DATE_METHOD, DateEstimator, DatingConfig, Estimate, train_estimator
from sources.dating.placement import STAGE, disagreements, keep_rejected, place_undated
from sources.dating.store import (
    bundled_documents,
    ensure_estimator,
    load_latest,
    models_dir_of,
    save_estimator,
    train_or_reuse,
)


def estimate(texts: list[str], estimator: DateEstimator) -> list[Estimate]:
    """[(century, year, confidence)] per text."""
    return estimator.estimate(texts)


__all__ = [
    "DATE_METHOD",
    "STAGE",
    "UNDATED_REASONS",
    "DateEstimator",
    "DatingConfig",
    "Estimate",
    "bundled_documents",
    "disagreements",
    "ensure_estimator",
    "estimate",
    "keep_rejected",
    "load_latest",
    "models_dir_of",
    "place_undated",
    "save_estimator",
    "train_estimator",
    "train_or_reuse",
]
