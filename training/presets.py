"""Finetuning presets: each overrides only what differs from FinetuneConfig's defaults, arithmetic in comments.

ProgressGym (PKU-Alignment/ProgressGym, src/model_training/train_hislm.py) trained Llama-3-8B per century with full
finetuning on 8 GPUs (DeepSpeed ZeRO-3): cutoff_len 1024, 8 rows per GPU (8 x 8 x 1024 = 65,536 tokens per step),
20 warmup steps, 10% validation, 4 epochs (7 in tuning), and a learning rate of 1.5e-5 in its tuning command (the
final per-century call in that file passes 3e-6). Those numbers belong to an 8B model whose pretraining peak LR was
3e-4: 1.5e-5 is ~1/20 of it, gentle enough not to wash out what the base model knows.

What we choose, and why:
- seq_len 1024 on GPU, like ProgressGym, so per-century token budgets compare with theirs; the tiny CPU preset uses
  64-128 tokens because a CPU step must take milliseconds.
- SmolLM2-135M full finetuning: lr 1e-4. Small models take (and need) larger LRs than 8B ones; 1e-4 sits an order
  of magnitude under typical small-model pretraining peaks (~1e-3), the same "well under the pretraining peak"
  margin ProgressGym kept. Not tuned yet: a sweep per century is future work and this note must change with it.
- 7-8B LoRA (rank 16, all linear layers): lr 2e-4, the QLoRA paper's setting for 7B/13B models; adapters start at
  zero, so they need a larger step than full finetuning's 1.5e-5. Full 8B finetuning needs ZeRO-3/FSDP sharding,
  which this DDP trainer does not do; LoRA fits one 80 GB GPU per rank.
- The tiny random model starts from scratch, so it gets a pretraining-sized lr (2e-3) to show learning in 30 steps.
- SmolLM2-135M on CPU (the demo's default base) trains LoRA adapters (rank 8, all linear layers: 2.4M of 135M
  parameters train), lr 3e-4: adapters start at zero and a handful of CPU steps must move them.

Three stages per century (ProgressGym: continued pretraining, then SFT; its alignment algorithms add DPO/RLHF), each
starting from the previous stage's exported model. `STAGE_PRESETS[preset][stage]` overrides the preset per stage:
- sft: the century's `sft_mixture` rows (Kaleido's four tasks) as prompt + completion, loss on the completion only,
  packed; a lower lr than continued pretraining (the model already knows the text, SFT teaches a format).
- dpo: the century's `preference_pairs` (kept item vs a filtered one), objective 'dpo' with beta 0.1 (the DPO
  paper's and TRL's default); lrs an order of magnitude under SFT's (Zephyr's full-finetune DPO used 5e-7), since
  DPO pushes log-ratios without a target and overshoots quickly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from training.base_models import TINY
from training.finetune import FinetuneConfig

CPU_PRESETS = ("cpu-tiny", "cpu-small")

# what both GPU presets share: 1024-token rows, 4 epochs (ProgressGym) under a token cap, a short warmup, and
# evaluation / logging every so many steps
GPU_SCHEDULE: dict[str, Any] = dict(
    seq_len=1024,
    max_steps=None,
    epochs=4.0,
    warmup_steps=20,
    eval_interval=100,
    eval_batches=16,
    log_interval=10,
    val_fraction=0.1,
)

PRESETS: dict[str, dict[str, Any]] = {
    # The tiny random Llama on CPU, for tests and the demo: 8 rows x 128 tokens = 1,024 tokens per step; 30 steps
    # = 30,720 tokens: two epochs of a 15k-token century, ~3% of an epoch of one Bible translation (~1M tokens).
    # max_chars: 160k chars are 40-52k tokens (the SmolLM2 tokenizer reads 3.0 chars/token of Wycliffe, 3.9 of the
    # KJV, 4.0 of modern English), so 30 steps see ~0.6-0.8 epoch of the sample and never tokenize a whole century.
    "cpu-tiny": dict(
        base_model=TINY,
        seq_len=128,
        max_chars=160_000,
        batch_size=8,
        max_steps=30,
        learning_rate=2e-3,
        min_lr=2e-4,
        warmup_steps=3,
        eval_interval=10,
        eval_batches=4,
        checkpoint_interval=10,
        weight_decay=0.0,
    ),
    # SmolLM2-135M (or any model under training.max_cpu_params) on CPU with LoRA: a demo-sized run, not a real
    # finetune. 2 rows x 128 tokens = 256 tokens per step; LoRA needs ~4 x 135M x 256 = 0.14 TFLOP per step (no
    # weight gradients for the frozen base) plus the 49k-word output layer: 3-6 s per step on two idle cores (we
    # measured 30 CPU-seconds per step on a box loaded 7x over). Per stage: the trainer process imports torch (~10 s),
    # loads the model (~3 s), trains 4 steps, evaluates one batch at steps 0 and 4 and writes the merged model
    # (~5 s, 540 MB float32): ~35-45 s; three stages x two demo centuries ~4 min. 4 x 256 = 1,024 tokens ~ 4k chars:
    # an 8k-char sample of the century leaves room for validation rows.
    "cpu-small": dict(
        seq_len=128,
        max_chars=8_000,
        batch_size=2,
        max_steps=4,
        lora_rank=8,
        lora_alpha=16,  # scale alpha/rank = 2, as at rank 16 / alpha 32
        learning_rate=3e-4,
        min_lr=3e-5,
        warmup_steps=1,
        eval_interval=4,
        eval_batches=1,
        checkpoint_interval=2,
        weight_decay=0.0,  # adapters start at zero: decaying them only pulls back toward the base
    ),
    # SmolLM2-135M full finetuning on one GPU, per century: 32 rows x 2 accum x 1024 = 65,536 tokens per step, the
    # same tokens per step as ProgressGym's 8 GPUs x 8 rows x 1024. 4 epochs (ProgressGym), capped at 500M tokens
    # (~3.7 tokens per parameter: continued pretraining, not pretraining): a 5M-token century → 20M tokens = 306
    # steps; a 2B-token century hits the cap at 7,630 steps. No gradient checkpointing: 135M fits easily and
    # recomputation would cost a third of the throughput.
    "gpu-small": dict(
        **GPU_SCHEDULE,
        batch_size=32,
        grad_accum=2,
        max_train_tokens=500_000_000,
        learning_rate=1e-4,
        min_lr=1e-5,
        checkpoint_interval=200,
        gradient_checkpointing=False,
    ),
    # A 7-8B base (local HF dir) with LoRA rank 16 on each GPU: 8 rows x 8 accum x 1024 = 65,536 tokens per step per
    # GPU. bf16 base (16 GB) + adapters + activations under gradient checkpointing fit 80 GB. 4 epochs capped at
    # 200M tokens per century. Estimate: 6 x 8e9 = 48 GFLOP per token; at 25% MFU on an H100 (989 TFLOP/s bf16)
    # that is ~5k tokens/s, so 200M tokens take ~11 GPU-hours per century.
    "gpu-lora": dict(
        **GPU_SCHEDULE,
        batch_size=8,
        grad_accum=8,
        max_train_tokens=200_000_000,
        lora_rank=16,
        lora_alpha=32,
        learning_rate=2e-4,
        min_lr=2e-5,
        checkpoint_interval=100,
        gradient_checkpointing=True,
        weight_decay=0.0,
    ),
}

STAGES = ("pretrain", "sft", "dpo")

STAGE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # tiny: plumbing only (a random model has nothing to align); the same lr, fewer steps
    "cpu-tiny": {
        "sft": dict(max_steps=10, eval_interval=5, checkpoint_interval=5),
        "dpo": dict(
            objective="dpo", max_steps=6, learning_rate=5e-4, min_lr=5e-5, eval_interval=3, checkpoint_interval=3
        ),
    },  # fmt: skip
    # SmolLM2 LoRA on CPU. SFT: 2 x 128 tokens per step; a Kaleido task row is 40-120 tokens, so a row holds 1-3
    # examples and 4 steps see ~10-20 of a century's 30-100 mixture rows. DPO: 2 pairs per step = 4 sequences of
    # <= 128 tokens (prompt + one item), 3 steps; a demo century has only a handful of pairs.
    "cpu-small": {
        "sft": dict(learning_rate=2e-4, min_lr=2e-5),
        "dpo": dict(objective="dpo", max_steps=3, eval_interval=3, learning_rate=1e-4, min_lr=1e-5, val_fraction=0.2),
    },
    # one GPU, full finetune of SmolLM2: SFT for 3 epochs at 1/5 of the pretraining lr; DPO for 1 epoch at 5e-7
    # (Zephyr's full-finetune DPO) with batch 32 pairs; both under the 1024-token cutoff
    "gpu-small": {
        "sft": dict(epochs=3.0, learning_rate=2e-5, min_lr=2e-6, max_train_tokens=None),
        "dpo": dict(
            objective="dpo",
            epochs=1.0,
            batch_size=16,
            grad_accum=2,
            learning_rate=5e-7,
            min_lr=5e-8,
            warmup_steps=10,
            max_train_tokens=None,
        ),
    },  # fmt: skip
    # 7-8B LoRA: SFT at half the continued-pretraining lr; DPO at 5e-6, ten times the full-finetune rate since
    # only the adapters move (and the reference is the same weights with adapters off: no second 16 GB copy)
    "gpu-lora": {
        "sft": dict(epochs=3.0, learning_rate=1e-4, min_lr=1e-5, max_train_tokens=None),
        "dpo": dict(
            objective="dpo",
            epochs=1.0,
            batch_size=4,
            grad_accum=8,
            learning_rate=5e-6,
            min_lr=5e-7,
            warmup_steps=10,
            max_train_tokens=None,
        ),
    },  # fmt: skip
}

# a full-finetuning model above this many parameters gets the LoRA preset on GPU (DDP replicates AdamW state:
# ~16 bytes per parameter, so 1.5B params is ~24 GB before activations)
LORA_ABOVE_PARAMS = 1_500_000_000


def preset_name_for(base_model: str, n_params: int, gpu: bool) -> str:
    """The preset 'auto' means: the tiny model's own; otherwise CPU smoke run, GPU full finetune or GPU LoRA."""
    if base_model == TINY:
        return "cpu-tiny"
    if not gpu:
        return "cpu-small"
    return "gpu-lora" if n_params > LORA_ABOVE_PARAMS else "gpu-small"


def make_config(preset: str, stage: str = "pretrain", **overrides: Any) -> FinetuneConfig:
    """FinetuneConfig from a preset, its stage overrides, then `overrides` (None values are ignored; unknown names
    raise)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    staged = STAGE_PRESETS.get(preset, {}).get(stage, {})
    values = {**PRESETS[preset], **staged, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"unknown finetuning settings {unknown}; FinetuneConfig has {sorted(fields)}")
    if "lora_targets" in values:
        values["lora_targets"] = tuple(values["lora_targets"])
    return FinetuneConfig(**values)
