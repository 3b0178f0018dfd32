"""The packaged all-MiniLM-L6-v2, offline; loaded once per process (functools.cache), used by semantic dedup."""

import numpy as np

from quality.dedup.semantic import semantic_dedup_texts
from quality.embeddings import DIMENSION, embed, load_model, model_dir


def test_model_is_packaged():
    assert (model_dir() / "model.safetensors").is_file()


def test_embeddings_are_unit_vectors_and_paraphrases_are_close():
    texts = [
        "Forgiving a debt owed by a poor neighbour.",
        "Forgiving the debt that a poor neighbour owes.",
        "The ship sailed west across the stormy sea.",
    ]
    vectors = embed(texts)
    assert vectors.shape == (3, DIMENSION) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > 0.9 > 0.3 > vectors[0] @ vectors[2]
    assert load_model() is load_model()
    result = semantic_dedup_texts(texts, embed, threshold=0.9)
    assert result.keep_mask.tolist() == [True, False, True] and result.kept[1] == 0


def test_empty_input_needs_no_model():
    assert embed([]).shape == (0, DIMENSION)
