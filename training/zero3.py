"""GPU presets for 1B, 8B and 70B bases under DeepSpeed ZeRO-3 (as ProgressGym trained), and a dry-run that validates
a plan on a machine without a GPU.

ProgressGym (src/model_training/train_hislm.py) trained Llama-3-8B per century with full finetuning on 8 GPUs under
ZeRO-3: 1024-token rows, 8 rows per GPU, 65,536 tokens per step. Our presets keep those 65,536 tokens per step at
every size, so per-century token budgets compare across sizes, and change only what memory forces.

Memory per GPU under ZeRO-3 (Rajbhandari et al. 2020, "ZeRO", table 1, mixed precision with AdamW):
2 bytes (bf16 parameters) + 2 (bf16 gradients) + 12 (fp32 master weights, Adam m and v) = 16 bytes per parameter,
divided by the number of GPUs; plus activations. With full activation checkpointing a layer keeps only its bf16 input
(2·b·s·h bytes per layer) and recomputes one layer at a time (~34·b·s·h bytes, Korthikanti et al. 2022, eq. 1,
without flash attention's savings), plus the fp32 logits of one micro-batch (4·b·s·V, twice for their gradient).
The dry-run adds a 15 % margin for the allocator, communication buckets and the CUDA context.

What is NOT built: the trainer (training/finetune.py) runs plain DDP; it does not yet take the `accelerate` DeepSpeed
path these configs describe (`accelerator.prepare` of model and optimizer, `save_state` checkpoints, a gathered
export). The dry-run validates the plan, the config files and the memory arithmetic; running a ZeRO-3 preset is
refused until that path exists. The LoRA preset (`gpu-lora`) is what trains an 8B base today, on one GPU per rank.

    python -m training.zero3 --preset gpu-8b-zero3              # prints the plan; exit 1 if it does not fit
    python -m training.zero3 --preset gpu-70b-zero3 --gpu-memory-gib 141
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.finetune import FinetuneConfig
from training.presets import GPU_SCHEDULE, make_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKENS_PER_STEP = 65_536  # ProgressGym: 8 GPUs x 8 rows x 1024 tokens
BYTES_PER_PARAM = 16  # bf16 params + bf16 grads + fp32 master, m, v (ZeRO table 1)
ALLOCATOR_MARGIN = 1.15


@dataclass(frozen=True)
class Architecture:
    """The few numbers the memory estimate needs (Llama 3.2 1B, Llama 3 8B and 70B configs)."""

    n_params: int
    n_layers: int
    hidden: int
    vocab: int


LLAMA_1B = Architecture(1_235_814_400, 16, 2048, 128_256)
LLAMA_8B = Architecture(8_030_261_248, 32, 4096, 128_256)
LLAMA_70B = Architecture(70_553_706_496, 80, 8192, 128_256)


@dataclass(frozen=True)
class Zero3Preset:
    """A ZeRO-3 preset: the model size it is for, the GPUs and accelerate config it needs, FinetuneConfig overrides."""

    architecture: Architecture
    gpus: int
    accelerate_config: str  # relative to the repo root
    overrides: dict[str, Any] = field(default_factory=dict)


ZERO3_PRESETS: dict[str, Zero3Preset] = {
    # 1B: 8 GPUs x 8 rows x 1024 = 65,536 tokens per step. 16 B x 1.24B / 8 = 2.5 GB of state per GPU: ZeRO-3 is
    # not needed for memory here (ZeRO-2 or DDP would fit), but one config for every size keeps one code path.
    # lr 2e-5: between ProgressGym's 1.5e-5 for 8B and the 1e-4 we give 135M.
    "gpu-1b-zero3": Zero3Preset(LLAMA_1B, 8, "deploy/accelerate/zero3.yaml", dict(
        batch_size=8, grad_accum=1, learning_rate=2e-5, min_lr=2e-6, max_train_tokens=1_000_000_000,
        gradient_checkpointing=True, checkpoint_interval=200)),
    # 8B, ProgressGym's setup: 8 GPUs x 8 rows x 1024, lr 1.5e-5 (its tuning run), 4 epochs capped at 500M tokens
    # per century. 16 B x 8.03B / 8 = 16 GB of state per GPU, plus activations under checkpointing.
    "gpu-8b-zero3": Zero3Preset(LLAMA_8B, 8, "deploy/accelerate/zero3.yaml", dict(
        batch_size=8, grad_accum=1, learning_rate=1.5e-5, min_lr=1.5e-6, max_train_tokens=500_000_000,
        gradient_checkpointing=True, checkpoint_interval=100)),
    # 70B: 16 B x 70.6B = 1.13 TB of state; over 32 GPUs (four 8-GPU hosts) 35 GB each. 2 rows x 1024 per GPU x 32
    # = 65,536 tokens per step; lr 1e-5 (larger models take smaller steps); 200M tokens per century: 6 x 70.6e9 x
    # 2e8 = 8.5e19 FLOP, at 40% MFU on 32 H100s (32 x 0.4 x 989e12 FLOP/s) ~1.9 h wall, ~60 GPU-hours per century.
    "gpu-70b-zero3": Zero3Preset(LLAMA_70B, 32, "deploy/accelerate/zero3_4nodes.yaml", dict(
        batch_size=2, grad_accum=1, learning_rate=1e-5, min_lr=1e-6, max_train_tokens=200_000_000,
        gradient_checkpointing=True, checkpoint_interval=50)),
}  # fmt: skip


class PlanError(ValueError):
    """A ZeRO-3 plan that cannot run as configured (config mismatch or not enough GPU memory)."""


@dataclass
class Zero3Plan:
    """What the dry-run found: the config, the memory estimate and whether it fits."""

    preset: str
    config: FinetuneConfig
    gpus: int
    tokens_per_step: int
    state_gib_per_gpu: float
    activation_gib_per_gpu: float
    total_gib_per_gpu: float
    gpu_memory_gib: float
    accelerate_config: Path
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.total_gib_per_gpu <= self.gpu_memory_gib

    def describe(self) -> str:
        return "\n".join([
            f"preset {self.preset}: {self.gpus} GPUs, {self.tokens_per_step:,} tokens per step "
            f"(batch {self.config.batch_size} x accum {self.config.grad_accum} x {self.gpus} x {self.config.seq_len})",
            f"per GPU: {self.state_gib_per_gpu:.1f} GiB ZeRO-3 state + {self.activation_gib_per_gpu:.1f} GiB "
            f"activations, x{ALLOCATOR_MARGIN} margin = {self.total_gib_per_gpu:.1f} GiB of {self.gpu_memory_gib:.0f}"
            f" GiB: {'fits' if self.fits else 'DOES NOT FIT'}",
            f"accelerate config: {self.accelerate_config}",
            *self.notes,
        ])  # fmt: skip


def activation_bytes(arch: Architecture, batch: int, seq_len: int, checkpointing: bool) -> float:
    """Activation memory of one micro-batch on one GPU (bf16; see the module docstring for the terms)."""
    per_layer_full = 34 * batch * seq_len * arch.hidden  # Korthikanti et al. 2022, without the attention-score term
    if checkpointing:
        layers = 2 * batch * seq_len * arch.hidden * arch.n_layers + per_layer_full
    else:
        layers = per_layer_full * arch.n_layers
    logits = 2 * 4 * batch * seq_len * arch.vocab  # fp32 logits and their gradient
    return layers + logits


def read_accelerate_config(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise PlanError(f"accelerate config {path} does not exist")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def check_accelerate_config(config: dict, gpus: int) -> list[str]:
    """The config must be ZeRO-3 under DeepSpeed, bf16, with one process per GPU; returns the problems found."""
    problems = []
    deepspeed = config.get("deepspeed_config") or {}
    if config.get("distributed_type") != "DEEPSPEED":
        problems.append(f"distributed_type is {config.get('distributed_type')!r}, not 'DEEPSPEED'")
    if deepspeed.get("zero_stage") != 3:
        problems.append(f"deepspeed_config.zero_stage is {deepspeed.get('zero_stage')!r}, not 3")
    if config.get("mixed_precision") != "bf16":
        problems.append(f"mixed_precision is {config.get('mixed_precision')!r}, not 'bf16'")
    if config.get("num_processes") != gpus:
        problems.append(f"num_processes is {config.get('num_processes')!r}, the preset needs {gpus}")
    machines = config.get("num_machines", 1)
    if gpus % machines:
        problems.append(f"{gpus} processes do not split evenly over {machines} machines")
    if not deepspeed.get("zero3_init_flag"):
        problems.append("zero3_init_flag is off: every rank would first load the whole model")
    return problems


def dry_run(preset: str, gpu_memory_gib: float = 80.0, gpus: int | None = None, **overrides: Any) -> Zero3Plan:
    """Validate a ZeRO-3 preset without a GPU: the FinetuneConfig it makes, its accelerate config, tokens per step
    against ProgressGym's, and the memory per GPU. Raises PlanError on a config mismatch; `fits` tells memory."""
    if preset not in ZERO3_PRESETS:
        raise PlanError(f"unknown ZeRO-3 preset {preset!r}; choose one of {sorted(ZERO3_PRESETS)}")
    spec = ZERO3_PRESETS[preset]
    gpus = gpus or spec.gpus
    config = dataclasses.replace(
        make_config("gpu-small", **{**GPU_SCHEDULE, **spec.overrides, **overrides}), lora_rank=0
    )
    path = REPO_ROOT / spec.accelerate_config
    problems = check_accelerate_config(read_accelerate_config(path), spec.gpus)
    if problems:
        raise PlanError(f"{path.name}: " + "; ".join(problems))
    tokens = config.batch_size * config.grad_accum * gpus * config.seq_len
    arch = spec.architecture
    state = BYTES_PER_PARAM * arch.n_params / gpus
    activations = activation_bytes(arch, config.batch_size, config.seq_len, bool(config.gradient_checkpointing))
    notes = []
    if tokens != TOKENS_PER_STEP:
        notes.append(f"note: {tokens:,} tokens per step, ProgressGym used {TOKENS_PER_STEP:,}")
    if gpus != spec.gpus:
        notes.append(f"note: {gpus} GPUs instead of the config's {spec.gpus}: pass --num_processes {gpus}")
    notes.append("not runnable yet: the trainer has no DeepSpeed path (see training/zero3.py); use gpu-lora for 8B")
    gib = 2**30
    return Zero3Plan(
        preset=preset, config=config, gpus=gpus, tokens_per_step=tokens, state_gib_per_gpu=state / gib,
        activation_gib_per_gpu=activations / gib, total_gib_per_gpu=(state + activations) * ALLOCATOR_MARGIN / gib,
        gpu_memory_gib=gpu_memory_gib, accelerate_config=path, notes=notes,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.zero3", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(ZERO3_PRESETS), action="append", help="default: all")
    parser.add_argument("--gpu-memory-gib", type=float, default=80.0, help="80 for A100/H100, 141 for H200")
    parser.add_argument("--gpus", type=int, default=None, help="default: the preset's")
    args = parser.parse_args(argv)
    fits = True
    for preset in args.preset or sorted(ZERO3_PRESETS):
        plan = dry_run(preset, args.gpu_memory_gib, args.gpus)
        print(plan.describe(), end="\n\n")
        fits &= plan.fits
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
