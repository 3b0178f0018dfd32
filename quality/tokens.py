"""Token counts with the teacher's tokenizer (SmolLM2), loaded alone: no model weights.

Lookup order under a models dir: the de-quantised SmolLM2 HF dir (`teacher.models.smollm2_hf_dir` makes it), then a
tokenizer-only dir we extract once from the packaged GGUF (~10 s, then a 0.1 s load from `tokenizer.json`).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from teacher.models import SMOLLM2, smollm2_gguf

log = logging.getLogger(__name__)

TOKENIZER_DIR = f"{SMOLLM2}-tokenizer"


def tokenizer_path(models_dir: Path) -> Path:
    """tokenizer.json of the SmolLM2 tokenizer under `models_dir`, extracted from the GGUF on first use."""
    models_dir = Path(models_dir)
    for candidate in (models_dir / SMOLLM2 / "tokenizer.json", models_dir / TOKENIZER_DIR / "tokenizer.json"):
        if candidate.is_file():
            return candidate
    from transformers import AutoTokenizer

    gguf = smollm2_gguf()
    log.info("extracting the SmolLM2 tokenizer from %s (once)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    target = models_dir / TOKENIZER_DIR
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{TOKENIZER_DIR}.", dir=target.parent))
    try:
        tokenizer.save_pretrained(tmp)
        if not target.exists():  # a concurrent process may have finished first; theirs is identical
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "tokenizer.json"


@functools.cache
def _load(path: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def teacher_tokenizer(models_dir: Path):
    """The SmolLM2 `tokenizers.Tokenizer` (cached per path)."""
    return _load(str(tokenizer_path(models_dir)))


def count_tokens(texts: Sequence[str], tokenizer, batch_size: int = 256) -> np.ndarray:
    """Tokens per text (no special tokens), encoded in batches."""
    counts = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        encodings = tokenizer.encode_batch(batch, add_special_tokens=False)
        counts[start : start + len(batch)] = [len(e.ids) for e in encodings]
    return counts
