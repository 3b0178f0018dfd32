"""Base models for finetuning, all offline: a tiny random Llama for tests, the packaged SmolLM2, any local HF dir.

The tiny model is a randomly initialised Llama-architecture config (2 layers, hidden 64) that uses the real SmolLM2
tokenizer, so every code path (tokenizing, packing, loss, checkpoints, log-likelihood scoring) is the one a real
model takes, at CPU speed. The tokenizer is read from the packaged GGUF's metadata once (~12 s, no weights are
de-quantised) and saved as a plain tokenizer dir; an existing de-quantised SmolLM2 dir is used instead when present.

The CPU guard counts parameters from a model's config alone (instantiated on the meta device, no weights read), so
an 8B model is refused on a GPU-less host before a byte of it is loaded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from teacher.models import SMOLLM2, ModelNotAvailable, smollm2_gguf, smollm2_hf_dir

logger = logging.getLogger(__name__)

TINY = "tiny"
TINY_DIR = "tiny-llama-smollm2"
TOKENIZER_DIR = "smollm2-tokenizer"
SMOLLM2_ALIASES = ("smollm2", SMOLLM2)
# SmolLM2-135M: 30 layers, hidden 576, tied embeddings (49152 x 576); counted once from its config
SMOLLM2_PARAMS = 134_515_008

# 2 layers x hidden 64 keeps a CPU step at a few milliseconds; the 49152 x 64 embedding is most of the ~3.3M params
TINY_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 256,  # 4x hidden, the usual MLP ratio
    "num_hidden_layers": 2,
    "num_attention_heads": 4,  # head dim 16
    "num_key_value_heads": 2,  # grouped-query attention like SmolLM2 (9 heads, 3 kv heads)
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,  # SmolLM2 ties input and output embeddings
}
DEFAULT_MAX_CPU_PARAMS = 200_000_000  # SmolLM2-135M still trains (slowly) on CPU; 360M and up need a GPU


class ModelTooLargeForCPU(RuntimeError):
    """A model was configured to train on a host without a GPU and is above the CPU size limit."""


def _save_dir_atomically(target: Path, save) -> Path:
    """Run `save(tmp_dir)` and rename the result to `target`; a concurrent process finishing first wins."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save(tmp)
        if not target.exists():
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_tokenizer_dir(models_dir: Path) -> Path:
    """A tokenizer dir for SmolLM2: the de-quantised model's if it exists, else read once from the GGUF header."""
    models_dir = Path(models_dir)
    full = models_dir / SMOLLM2
    if (full / "tokenizer.json").is_file():
        return full
    target = models_dir / TOKENIZER_DIR
    if (target / "tokenizer.json").is_file():
        return target
    from transformers import AutoTokenizer

    gguf = smollm2_gguf()
    logger.info("reading the SmolLM2 tokenizer from %s into %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return _save_dir_atomically(target, tokenizer.save_pretrained)


def tiny_model_dir(models_dir: Path, seed: int = 0) -> Path:
    """The tiny random Llama with the SmolLM2 tokenizer as a local HF model dir, made once (deterministic)."""
    models_dir = Path(models_dir)
    target = models_dir / TINY_DIR
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir(models_dir))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_CONFIG,
    )
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    logger.info("writing the tiny random Llama (%d params) to %s", sum(p.numel() for p in model.parameters()), target)
    return _save_dir_atomically(target, save)


def resolve_base_model(name: str, models_dir: Path) -> Path:
    """A local HF model dir for a settings value: 'tiny', 'smollm2' (or its full alias), or an existing path."""
    if name == TINY:
        return tiny_model_dir(models_dir)
    if name in SMOLLM2_ALIASES:
        return smollm2_hf_dir(models_dir)
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return path.resolve()
    raise ModelNotAvailable(
        f"base model {name!r} is neither 'tiny', 'smollm2' nor a local HF model dir with config.json; "
        "nothing is downloaded at run time"
    )


def count_params(name: str) -> int:
    """Parameter count of a base model from its config alone (meta device: no weights are read or allocated)."""
    if name == TINY:
        return _count_from_config(_tiny_llama_config())
    if name in SMOLLM2_ALIASES:
        return SMOLLM2_PARAMS
    from transformers import AutoConfig

    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelNotAvailable(f"cannot count parameters of {name!r}: no config.json there")
    return _count_from_config(AutoConfig.from_pretrained(path))


def _tiny_llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=49152, **TINY_CONFIG)


def _count_from_config(config) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def check_device_allows(name: str, cuda_available: bool, max_cpu_params: int = DEFAULT_MAX_CPU_PARAMS) -> int:
    """Raise ModelTooLargeForCPU when `name` would train on CPU and is above `max_cpu_params`; return its size."""
    n_params = count_params(name)
    if not cuda_available and n_params > max_cpu_params:
        raise ModelTooLargeForCPU(
            f"refusing to train {name!r} ({n_params / 1e6:.0f}M parameters) on CPU: this host has no CUDA GPU and "
            f"the CPU limit is {max_cpu_params / 1e6:.0f}M (training.max_cpu_params). Run on a GPU host, or pick "
            "base_model 'tiny' / 'smollm2' for a CPU run."
        )
    return n_params


def model_summary(model_dir: Path) -> dict:
    """The few config fields the MFU estimate and the metadata need, read from config.json."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    return {
        "model_type": config.get("model_type"),
        "n_layers": config.get("num_hidden_layers"),
        "hidden_size": config.get("hidden_size"),
        "vocab_size": config.get("vocab_size"),
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", False)),
    }
