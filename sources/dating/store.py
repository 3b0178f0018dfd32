"""Saved estimators under `<home>/models/dating/`: one folder per version, plus a LATEST pointer.

    <home>/models/dating/dating-v1-0123456789/model.joblib     the DateEstimator (joblib, compressed)
                                              report.json      held-out metrics, config, fingerprint
                                              confusion.png, reliability.png
    <home>/models/dating/LATEST                the version `chronoprism date` and the placement step use

A version folder is written whole to a temp folder and renamed, so a killed save leaves no half model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sources.dating.model import MODEL_FORMAT, DateEstimator, DatingConfig, fingerprint, train_estimator, version_of
from sources.dating.plots import confusion_png, reliability_png
from sources.settings import Settings
from sources.storage import write_text_atomic

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
LATEST = "LATEST"


def dating_dir(models_dir: str | Path) -> Path:
    return Path(models_dir) / "dating"


def models_dir_of(settings: Settings) -> Path:
    """The models dir convention: `<home>/models`."""
    return settings.home_path / "models"


def save_estimator(estimator: DateEstimator, models_dir: str | Path, make_latest: bool = True) -> Path:
    import joblib

    root = dating_dir(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / estimator.version
    staging = Path(tempfile.mkdtemp(prefix=f".{estimator.version}.", dir=root))
    try:
        joblib.dump(estimator, staging / MODEL_FILE, compress=3)
        (staging / "report.json").write_text(json.dumps(estimator.report, indent=2, sort_keys=True), encoding="utf-8")
        (staging / "confusion.png").write_bytes(confusion_png(estimator.report))
        (staging / "reliability.png").write_bytes(reliability_png(estimator.report))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if make_latest:
        write_text_atomic(root / LATEST, estimator.version + "\n")
    logger.info("dating: saved %s", final)
    return final


def load_estimator(models_dir: str | Path, version: str) -> DateEstimator | None:
    """The saved estimator `version`, or None when it is missing, unreadable or of another format."""
    import joblib

    path = dating_dir(models_dir) / version / MODEL_FILE
    if not path.is_file():
        return None
    try:
        estimator = joblib.load(path)
    except Exception as error:  # a model pickled by other code: retrain rather than crash
        logger.warning("dating: cannot load %s (%s); it will be retrained", path, error)
        return None
    if not isinstance(estimator, DateEstimator) or getattr(estimator, "format", None) != MODEL_FORMAT:
        logger.warning("dating: %s is not a format-%d estimator; it will be retrained", path, MODEL_FORMAT)
        return None
    return estimator


def latest_version(models_dir: str | Path) -> str | None:
    pointer = dating_dir(models_dir) / LATEST
    if not pointer.is_file():
        return None
    return pointer.read_text(encoding="utf-8").strip() or None


def load_latest(models_dir: str | Path) -> DateEstimator | None:
    version = latest_version(models_dir)
    return load_estimator(models_dir, version) if version else None


@dataclass(slots=True)
class Trained:
    estimator: DateEstimator
    cached: bool  # True: an identical model (same data fingerprint and config) was already saved and is reused
    path: Path


def train_or_reuse(documents: pl.DataFrame, models_dir: str | Path, config: DatingConfig | None = None) -> Trained:
    """Train on `documents` unless the model for exactly these documents and this config is saved already."""
    config = config or DatingConfig()
    version = version_of(fingerprint(documents, config))
    saved = load_estimator(models_dir, version)
    if saved is not None:
        write_text_atomic(dating_dir(models_dir) / LATEST, version + "\n")
        return Trained(saved, True, dating_dir(models_dir) / version)
    estimator = train_estimator(documents, config)
    return Trained(estimator, False, save_estimator(estimator, models_dir))


def bundled_documents(settings: Settings) -> pl.DataFrame:
    """The bundled corpus read straight from its packages (what `raw_<source>` assets hold after a build),
    honouring the settings' caps (`max_docs_per_source`, `bible_translations`)."""
    from sources.registry import SOURCES, read_source
    from sources.schema import DOCUMENTS, empty

    bundled = settings.model_copy(update={"corpus": settings.corpus.model_copy(update={"include_bundled": True})})
    frames = [read_source(spec, bundled).documents for spec in SOURCES if spec.bundled]
    return pl.concat(frames) if frames else empty(DOCUMENTS)


def dated_corpus(tables: list[pl.DataFrame], settings: Settings) -> pl.DataFrame:
    """Training documents for an estimator trained on the fly: the raw tables already ingested (the same rows
    `documents` will hold, so the `date_estimator` asset later finds this model by fingerprint), or, when they
    span fewer than two centuries (`--no-bundled`, nothing built yet), the bundled corpus packages."""
    from sources.schema import DOCUMENTS, conform

    frames = [conform(table, DOCUMENTS) for table in tables if table.height]
    ingested = pl.concat(frames) if frames else None
    if ingested is not None and ingested["century"].n_unique() >= 2:
        return ingested
    logger.info("dating: the ingested tables span fewer than two centuries; training on the bundled corpus")
    return bundled_documents(settings)


def ensure_estimator(
    models_dir: str | Path,
    documents: Callable[[], pl.DataFrame],
    config: DatingConfig | None = None,
    announce: Callable[[str], None] = logger.info,
) -> Trained:
    """The latest saved estimator, or one trained now on `documents()` (announced, then saved as latest)."""
    latest = load_latest(models_dir)
    if latest is not None:
        return Trained(latest, True, dating_dir(models_dir) / latest.version)
    announce(
        f"no saved date estimator under {dating_dir(models_dir)}: training one from the bundled corpus now "
        "(a few minutes on 2 cores; it is saved and reused afterwards)"
    )
    return train_or_reuse(documents(), models_dir, config)
