"""Continued pretraining of a causal LM on one century's text: nanoGPT's train.py, kept in functions.

Run it through the launcher, which reads the text, tokenizes, packs and calls `train`:

    python -m training.launch --job job.json                         # one process: CPU or one GPU
    accelerate launch --config_file deploy/accelerate/multi_gpu.yaml -m training.launch --job job.json   # DDP

`train` reads top to bottom: one place decides device, dtype and autocast; derived quantities are logged before
any work (tokens per step, steps per epoch); the model is loaded, optionally wrapped with LoRA, and restored from
the last checkpoint when one matches; then the loop keeps nanoGPT's order: set LR → periodic eval + checkpoint →
forward/backward with gradient accumulation → clip → step → zero grads → time and log → stop. Batches and dropout
randomness are pure functions of (seed, step, rank), so a resumed run retraces the uninterrupted one exactly.
Side effects (checkpoints, the exported model) happen on rank 0 only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from sources.storage import atomic_path
from training.base_models import DEFAULT_MAX_CPU_PARAMS, check_device_allows, model_summary
from training.data import PairRows, TokenRows, TrainData, batch_index, eval_batches, grouped_batch_index, trim

logger = logging.getLogger(__name__)

CHECKPOINT = "ckpt.pt"
MODEL_DIR = "model"
ADAPTER_DIR = "adapter"  # the LoRA adapter alone (peft format), beside the merged model
OBJECTIVES = ("lm", "dpo")
CHECKPOINT_FORMAT = 1


@dataclass
class FinetuneConfig:
    """Every knob of one finetuning run; presets in training/presets.py override only what they must."""

    # model
    base_model: str = "tiny"  # 'tiny', 'smollm2' or a local HF model dir; the launcher resolves aliases to a dir
    out_dir: str = "out/finetune"  # checkpoint, exported model and result.json; one dir per (century, run)
    lora_rank: int = 0  # 0 = full finetuning; > 0 trains LoRA adapters only (7-8B models on one GPU)
    lora_alpha: int = 32  # adapter scale alpha/rank = 2 at rank 16, the common setting
    lora_dropout: float = 0.05  # light regularisation on the adapter input, as in the QLoRA recipes
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    # ^ every linear layer of a Llama block: adapters on attention alone underperform (QLoRA, Dettmers et al. 2023)
    # data
    seq_len: int = 256  # packed row length; GPU presets use ProgressGym's 1024-token cutoff
    packing: bool = True  # False = one document chunk per row, padded (the benchmark baseline)
    max_chars: int | None = None  # read at most this many characters of the century (a seeded sample); None = all
    val_fraction: float = 0.05  # held-out rows for the validation loss (ProgressGym held out 10% with more data)
    # optimisation
    batch_size: int = 8  # rows per forward pass per process
    grad_accum: int = 1  # micro-batches per optimizer step; tokens/step = batch * accum * world * seq_len
    max_steps: int | None = 30  # optimizer steps; None = derived from `epochs` once the data size is known
    epochs: float | None = None  # passes over the century's rows, used when max_steps is None
    max_train_tokens: int | None = None  # caps epochs x data for large centuries (a per-century token budget)
    learning_rate: float = 1e-4  # peak LR; see training/presets.py for the per-model choice vs ProgressGym
    min_lr: float = 1e-5  # cosine floor, ~peak/10 as in Chinchilla-style schedules
    warmup_steps: int = 10  # linear warmup protects pretrained weights from the first large updates
    weight_decay: float = 0.1  # on 2-D weights only (nanoGPT grouping); norms and biases are not decayed
    beta1: float = 0.9
    beta2: float = 0.95  # the LLM-pretraining setting (GPT-3, Llama): steadier than 0.999 on noisy LM batches
    grad_clip: float = 1.0  # clip the global grad norm; 0 disables
    # evaluation and checkpoints
    eval_interval: int = 10  # steps between validation losses (also evaluated at the first and last step)
    eval_batches: int = 8  # validation batches per evaluation; fixed rows, so curves are comparable
    checkpoint_interval: int = 10  # steps between atomic checkpoints (and always at the last step)
    log_interval: int = 1  # steps between progress lines
    resume: bool = True  # continue from out_dir/ckpt.pt when its data fingerprint and settings match
    # system
    device: str = "auto"  # 'auto' = cuda when available, else cpu
    dtype: str = "auto"  # 'auto' = bfloat16 autocast on a bf16-capable GPU, float32 elsewhere
    gradient_checkpointing: bool | None = None  # None = on for GPU (memory), off for CPU (speed)
    compile: bool = False  # torch.compile the model; worth it for long GPU runs, not for short CPU ones
    peak_flops: float | None = None  # per-device peak for MFU; None = looked up from the GPU name
    max_cpu_params: int = DEFAULT_MAX_CPU_PARAMS  # refuse to train anything bigger without a GPU
    seed: int = 1337
    # objective
    objective: str = "lm"  # 'lm' = next-token loss on the rows' targets (pretraining, SFT); 'dpo' = preference pairs
    dpo_beta: float = 0.1  # DPO's KL strength (Rafailov et al. 2023 and TRL's default): higher stays nearer the ref
    length_grouped: bool = False  # batches of similar-length rows (the padded baseline in benchmarks/train.py)


# fields that may change between a checkpoint and its resumption without breaking it
RESUMABLE_CHANGES = {
    "out_dir", "max_steps", "epochs", "max_train_tokens", "eval_interval", "eval_batches", "checkpoint_interval",
    "log_interval", "resume", "compile", "peak_flops", "max_cpu_params",
}  # fmt: skip


@dataclass
class TrainResult:
    """What a run did; written to out_dir/result.json and reported to Dagster as metadata."""

    out_dir: str
    model_dir: str | None
    step: int
    start_step: int
    max_steps: int
    tokens_per_step: int
    steps_per_epoch: float
    train_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    tokens_seen: int  # real (unpadded) tokens trained on in this process's run, all ranks
    tokens_per_s: float | None
    mfu: float | None  # model FLOPs utilisation (GPU, bf16 only)
    n_params: int
    n_trainable: int
    device: str
    dtype: str
    world_size: int
    data_fingerprint: str
    elapsed_s: float
    history: list[dict] = field(default_factory=list)  # {"step", "loss", "lr"} per logged step
    val_history: list[dict] = field(default_factory=list)  # {"step", "val_loss"}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class Runtime:
    """Where this process trains: rank and world, device, dtype and the autocast context."""

    rank: int
    local_rank: int
    world: int
    device: str
    device_type: str
    dtype: str
    autocast: object

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def lr_at(step: int, cfg: FinetuneConfig) -> float:
    """Learning rate at `step`: linear warmup, then cosine decay to min_lr at max_steps (nanoGPT's get_lr)."""
    if cfg.max_steps is None:
        raise ValueError("lr_at needs a resolved max_steps (see resolve_max_steps)")
    # 1) linear warmup over the first warmup_steps steps
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / (cfg.warmup_steps + 1)
    # 2) past the end of the schedule, hold the floor
    if step >= cfg.max_steps:
        return cfg.min_lr
    # 3) in between, a cosine from the peak down to the floor
    ratio = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


def resolve_max_steps(cfg: FinetuneConfig, n_train_rows: int, world: int = 1) -> FinetuneConfig:
    """Fill in max_steps from epochs (and the token cap) once the data size is known."""
    if cfg.max_steps is not None:
        return cfg
    if cfg.epochs is None:
        raise ValueError("set max_steps or epochs")
    rows_per_step = cfg.batch_size * cfg.grad_accum * world
    steps = math.ceil(cfg.epochs * n_train_rows / rows_per_step)
    if cfg.max_train_tokens is not None:
        steps = min(steps, math.ceil(cfg.max_train_tokens / (rows_per_step * cfg.seq_len)))
    return dataclasses.replace(cfg, max_steps=max(1, steps))


def causal_lm_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"):
    """Next-token cross-entropy over real target tokens: position t predicts token t+1; padding is ignored."""
    # shift the targets, not the logits: slicing (B, T, V) logits would copy them, and again in the backward pass
    targets = F.pad(ids[:, 1:].masked_fill(~mask[:, 1:], -100), (0, 1), value=-100)  # (B, T); last has no target
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction=reduction)


class LanguageModelLoss:
    """Next-token cross-entropy on each row's target tokens: every real token (pretraining) or the completion (SFT)."""

    def __call__(self, model: torch.nn.Module, batch: TokenRows) -> torch.Tensor:
        return causal_lm_loss(model(input_ids=batch.ids).logits, batch.ids, batch.targets)

    def sums(self, model: torch.nn.Module, batch: TokenRows) -> tuple[float, int]:
        """(summed loss, target count) for a per-token mean across batches."""
        loss = causal_lm_loss(model(input_ids=batch.ids).logits, batch.ids, batch.targets, reduction="sum")
        return float(loss), int(batch.targets[:, 1:].sum())


def sequence_logps(logits: torch.Tensor, rows: TokenRows) -> torch.Tensor:
    """(B,) summed log-probability of each row's target tokens (the completion) under `logits` (B, T, V)."""
    nll = causal_lm_loss(logits, rows.ids, rows.targets, reduction="none").view(rows.ids.shape)  # (B, T)
    return -nll.sum(dim=1)


def stack_pairs(pairs: PairRows) -> TokenRows:
    """Chosen rows then rejected rows in one right-padded batch, so the policy needs one forward pass (DDP-safe)."""
    width = max(pairs.chosen.ids.shape[1], pairs.rejected.ids.shape[1])

    def widen(tensor: torch.Tensor) -> torch.Tensor:
        return F.pad(tensor, (0, width - tensor.shape[1]), value=0)

    parts = (pairs.chosen, pairs.rejected)
    return TokenRows(
        torch.cat([widen(p.ids) for p in parts]),
        torch.cat([widen(p.mask) for p in parts]),
        torch.cat([widen(p.targets) for p in parts]),
    )


class DPOLoss:
    """Direct Preference Optimization (Rafailov et al. 2023): -log σ(β·[(π_c − ref_c) − (π_r − ref_r)]) per pair,
    with π and ref the summed completion log-probs of the policy and the frozen reference. With LoRA the reference is
    the same model with its adapters switched off (as TRL does for PEFT models); otherwise a frozen copy."""

    def __init__(self, beta: float, reference: Callable[[], AbstractContextManager] | torch.nn.Module):
        self.beta = beta
        self.reference = reference

    def _reference_logps(self, policy: torch.nn.Module, batch: TokenRows) -> torch.Tensor:
        with torch.no_grad():
            if isinstance(self.reference, torch.nn.Module):
                return sequence_logps(self.reference(input_ids=batch.ids).logits, batch)
            with self.reference():
                return sequence_logps(policy(input_ids=batch.ids).logits, batch)

    def pair_losses(self, model: torch.nn.Module, pairs: PairRows, reference_model=None) -> torch.Tensor:
        """(n_pairs,) DPO losses; `reference_model` is the unwrapped model (the reference pass needs no DDP)."""
        batch = stack_pairs(pairs)
        n = len(pairs)
        policy = sequence_logps(model(input_ids=batch.ids).logits, batch)
        reference = self._reference_logps(reference_model or model, batch)
        margin = (policy[:n] - reference[:n]) - (policy[n:] - reference[n:])
        return -F.logsigmoid(self.beta * margin)

    def __call__(self, model: torch.nn.Module, batch: PairRows, reference_model=None) -> torch.Tensor:
        return self.pair_losses(model, batch, reference_model).mean()

    def sums(self, model: torch.nn.Module, batch: PairRows) -> tuple[float, int]:
        return float(self.pair_losses(model, batch).sum()), len(batch)


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable[TokenRows | PairRows], autocast=None, objective=None) -> float:
    """Mean loss over `batches` (per target token for LM, per pair for DPO), in eval mode; train mode is restored."""
    objective = objective or LanguageModelLoss()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches:
        with autocast or nullcontext():
            batch_total, batch_count = objective.sums(model, batch.to(device))
        total, count = total + batch_total, count + batch_count
    model.train(was_training)
    return total / max(count, 1)


def make_objective(cfg: FinetuneConfig, model: torch.nn.Module, rt: Runtime) -> LanguageModelLoss | DPOLoss:
    """The loss for `cfg.objective`; DPO gets its reference here (adapters off with LoRA, else a frozen copy)."""
    if cfg.objective == "lm":
        return LanguageModelLoss()
    if cfg.objective != "dpo":
        raise ValueError(f"unknown objective {cfg.objective!r}; choose one of {OBJECTIVES}")
    if cfg.lora_rank > 0:
        return DPOLoss(cfg.dpo_beta, model.disable_adapter)
    reference = load_model(dataclasses.replace(cfg, gradient_checkpointing=False), rt).eval()
    reference.requires_grad_(False)
    return DPOLoss(cfg.dpo_beta, reference)


def train(cfg: FinetuneConfig, data: TrainData, on_log: Callable[[dict], None] | None = None) -> TrainResult:
    """Train `cfg.base_model` (a local HF dir) on `data`; resume from out_dir/ckpt.pt when it matches."""
    started = time.perf_counter()
    rt = setup_runtime(cfg)
    out_dir = Path(cfg.out_dir)
    n_params = check_device_allows(cfg.base_model, rt.device_type == "cuda", cfg.max_cpu_params)

    # -- derived quantities, stated before any work
    cfg = resolve_max_steps(cfg, len(data.train), rt.world)
    rows_per_step = cfg.batch_size * cfg.grad_accum * rt.world
    tokens_per_step = rows_per_step * cfg.seq_len
    steps_per_epoch = len(data.train) / rows_per_step
    if rt.is_main:
        logger.info(
            "tokens per step: %s (batch %d x accum %d x world %d x seq_len %d)",
            f"{tokens_per_step:,}", cfg.batch_size, cfg.grad_accum, rt.world, cfg.seq_len,
        )  # fmt: skip
        logger.info(
            "steps per epoch: %.2f (%d train rows, %d val rows, %s train tokens); max_steps %d = %.2f epochs",
            steps_per_epoch, len(data.train), len(data.val), f"{data.train.n_tokens:,}", cfg.max_steps,
            cfg.max_steps / max(steps_per_epoch, 1e-9),
        )  # fmt: skip
        logger.info("device %s, dtype %s, world %d, base model %s", rt.device, rt.dtype, rt.world, cfg.base_model)
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temp_files(out_dir)

    # -- a matching checkpoint decides where we start
    checkpoint = read_checkpoint(out_dir, cfg, data.fingerprint) if cfg.resume else None
    start_step = checkpoint["step"] if checkpoint else 0
    history = list(checkpoint["history"]) if checkpoint else []
    val_history = list(checkpoint["val_history"]) if checkpoint else []
    best_val_loss = checkpoint["best_val_loss"] if checkpoint else math.inf
    summary = model_summary(Path(cfg.base_model))
    base = {
        "out_dir": str(out_dir), "start_step": start_step, "max_steps": cfg.max_steps,
        "tokens_per_step": tokens_per_step, "steps_per_epoch": steps_per_epoch, "n_params": n_params,
        "device": rt.device, "dtype": rt.dtype, "world_size": rt.world, "data_fingerprint": data.fingerprint,
    }  # fmt: skip
    if checkpoint and start_step >= cfg.max_steps and (out_dir / MODEL_DIR / "config.json").is_file():
        logger.info(
            "already trained: %s holds step %d of %d; nothing to do", out_dir / CHECKPOINT, start_step, cfg.max_steps
        )
        _teardown(rt)
        return TrainResult(
            **base, model_dir=str(out_dir / MODEL_DIR), step=start_step,
            train_loss=history[-1]["loss"] if history else None,
            val_loss=val_history[-1]["val_loss"] if val_history else None,
            best_val_loss=_finite(best_val_loss), tokens_seen=0, tokens_per_s=None, mfu=None,
            n_trainable=checkpoint.get("n_trainable", 0), elapsed_s=time.perf_counter() - started,
            history=history, val_history=val_history,
        )  # fmt: skip

    # -- model: pretrained weights → optional LoRA → checkpoint state → compile → DDP
    torch.manual_seed(cfg.seed)
    raw_model = load_model(cfg, rt)
    trainable = [p for p in raw_model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    optimizer = configure_optimizer(raw_model, cfg, rt.device_type)
    if checkpoint:
        restore(raw_model, optimizer, checkpoint)
        logger.info("resumed from %s at step %d (best val loss %.4f)", out_dir / CHECKPOINT, start_step, best_val_loss)
    del checkpoint
    model = torch.compile(raw_model) if cfg.compile else raw_model
    if rt.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[rt.local_rank] if rt.device_type == "cuda" else None)
    objective = make_objective(cfg, raw_model, rt)
    peak = cfg.peak_flops or peak_flops_for(rt.device)
    flops_per_token = flops_per_token_of(n_params, summary, cfg.seq_len, lora=cfg.lora_rank > 0)

    # -- the loop
    step = start_step
    timed_tokens, timed_seconds, tokens_seen = 0, 0.0, 0
    train_loss = val_loss = None
    model.train()
    while True:
        # 1. learning rate for this step
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # 2. periodic evaluation and checkpoint (rank 0 writes)
        evaluated = bool(val_history) and val_history[-1]["step"] == step  # a resumed run has this one already
        if (step % cfg.eval_interval == 0 or step == cfg.max_steps) and not evaluated:
            batches = eval_batches(data.val, cfg.batch_size, cfg.eval_batches)
            val_loss = evaluate(raw_model, batches, rt.autocast, objective)
            best_val_loss = min(best_val_loss, val_loss)
            val_history.append({"step": step, "val_loss": val_loss})
            if rt.is_main:
                logger.info("step %d: val loss %.4f (best %.4f)", step, val_loss, best_val_loss)
                _emit(on_log, {"kind": "eval", "step": step, "max_steps": cfg.max_steps, "val_loss": val_loss})
        if rt.is_main and step > start_step and (step % cfg.checkpoint_interval == 0 or step == cfg.max_steps):
            save_checkpoint(out_dir, raw_model, optimizer, cfg, step, best_val_loss, data.fingerprint, history,
                            val_history, n_trainable)  # fmt: skip
        if step >= cfg.max_steps:
            break
        # 3. forward/backward over grad_accum micro-batches
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed + 1_000_003 * (step + 1) + rt.rank)  # dropout: a function of (seed, step, rank)
        loss_sum = torch.zeros((), device=rt.device)
        step_tokens = 0
        for micro in range(cfg.grad_accum):
            position = ((step * cfg.grad_accum + micro) * rt.world + rt.rank) * cfg.batch_size
            if cfg.length_grouped:
                index = grouped_batch_index(position, cfg.batch_size, data.train.mask.sum(dim=1), cfg.seed)
            else:
                index = batch_index(position, cfg.batch_size, len(data.train), cfg.seed)
            batch = trim(data.train.take(index))
            batch = batch.to(rt.device)
            if rt.world > 1:  # all-reduce gradients only on the last micro-batch
                model.require_backward_grad_sync = micro == cfg.grad_accum - 1
            with rt.autocast:
                # right padding only: real tokens never attend to a pad, so no attention mask is needed
                if isinstance(objective, DPOLoss):
                    loss = objective(model, batch, reference_model=raw_model) / cfg.grad_accum
                else:
                    loss = objective(model, batch) / cfg.grad_accum
            loss.backward()
            loss_sum += loss.detach()
            step_tokens += batch.n_tokens * rt.world
        # 4. clip
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        # 5. step, then drop the gradients
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        # 6. time and log
        if rt.device_type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        tokens_seen += step_tokens
        if step > start_step + 1 or cfg.max_steps - start_step == 1:  # the first step pays warm-up/compile
            timed_tokens, timed_seconds = timed_tokens + step_tokens, timed_seconds + seconds
        if step % cfg.log_interval == 0 or step == cfg.max_steps:
            train_loss = float(loss_sum)
            history.append({"step": step, "loss": train_loss, "lr": lr})
            if rt.is_main:
                rate = step_tokens / seconds if seconds > 0 else 0.0
                mfu = _mfu(flops_per_token, rate / rt.world, peak, rt.dtype)
                logger.info(
                    "step %d/%d: loss %.4f, lr %.2e, %.0f ms, %s tok/s%s", step, cfg.max_steps, train_loss, lr,
                    seconds * 1000, f"{rate:,.0f}", f", mfu {mfu:.1%}" if mfu is not None else "",
                )  # fmt: skip
                _emit(on_log, {"kind": "train", "step": step, "max_steps": cfg.max_steps, "loss": train_loss,
                               "lr": lr, "tokens_per_s": rate, "mfu": mfu})  # fmt: skip

    # -- finish: export a plain HF model dir (LoRA merged) for evaluation
    model_dir = export_model(raw_model, cfg, out_dir) if rt.is_main else None
    _teardown(rt)
    tokens_per_s = timed_tokens / timed_seconds if timed_seconds > 0 else None
    return TrainResult(
        **base, model_dir=str(model_dir) if model_dir else None, step=step, train_loss=train_loss,
        val_loss=val_loss, best_val_loss=_finite(best_val_loss), tokens_seen=tokens_seen, tokens_per_s=tokens_per_s,
        mfu=_mfu(flops_per_token, (tokens_per_s or 0) / rt.world, peak, rt.dtype) if tokens_per_s else None,
        n_trainable=n_trainable, elapsed_s=time.perf_counter() - started, history=history, val_history=val_history,
    )  # fmt: skip


def setup_runtime(cfg: FinetuneConfig) -> Runtime:
    """The one place that decides rank, device, dtype and autocast (DDP when launched with WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    if world > 1:
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        if device_type == "cuda":
            device = f"cuda:{local_rank}"
    if device_type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast use TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = True
    dtype = cfg.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    autocast = (
        torch.autocast(device_type=device_type, dtype=getattr(torch, dtype)) if dtype != "float32" else nullcontext()
    )
    return Runtime(rank, local_rank, world, device, device_type, dtype, autocast)


def load_model(cfg: FinetuneConfig, rt: Runtime) -> torch.nn.Module:
    """The pretrained model on this process's device; LoRA-wrapped when lora_rank > 0."""
    from transformers import AutoModelForCausalLM

    # full finetuning keeps fp32 master weights under bf16 autocast; a frozen LoRA base can live in bf16
    load_dtype = getattr(torch, rt.dtype) if cfg.lora_rank > 0 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=load_dtype)
    model.config.use_cache = False  # no KV cache during training
    use_checkpointing = cfg.gradient_checkpointing
    if use_checkpointing is None:
        use_checkpointing = rt.device_type == "cuda"
    if use_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM",
        )  # fmt: skip
        model = get_peft_model(model, lora)
    return model.to(rt.device)


def configure_optimizer(model: torch.nn.Module, cfg: FinetuneConfig, device_type: str) -> torch.optim.Optimizer:
    """AdamW with weight decay on 2-D weights only (matmuls, embeddings), not on norms and biases (nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device_type == "cuda"  # the fused CUDA kernel is faster; CPU uses the default implementation
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), fused=fused or None)


def save_checkpoint(
    out_dir: Path, model, optimizer, cfg, step, best_val_loss, fingerprint, history, val_history, n_trainable
) -> Path:
    """One dict {model, optimizer, config, step, best_val_loss, data fingerprint, ...}, written atomically."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": {name: p.detach() for name, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "config": asdict(cfg),
        "step": step,
        "best_val_loss": best_val_loss,
        "data_fingerprint": fingerprint,
        "history": history,
        "val_history": val_history,
        "n_trainable": n_trainable,
    }
    path = out_dir / CHECKPOINT
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    logger.info("checkpoint: step %d -> %s", step, path)
    return path


def read_checkpoint(out_dir: Path, cfg: FinetuneConfig, fingerprint: str) -> dict | None:
    """The checkpoint in out_dir when it belongs to this data and these settings; else None (with the reason)."""
    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        logger.warning("ignoring %s: checkpoint format %s, expected %s", path, state.get("format"), CHECKPOINT_FORMAT)
        return None
    if state["data_fingerprint"] != fingerprint:
        logger.warning("ignoring %s: it was trained on different data (fingerprint changed); starting over", path)
        return None
    saved, current = state["config"], asdict(cfg)
    changed = sorted(k for k in current if k not in RESUMABLE_CHANGES and _norm(saved.get(k)) != _norm(current[k]))
    if changed:
        logger.warning("ignoring %s: settings changed since it was written (%s); starting over", path, changed)
        return None
    if saved.get("max_steps") != cfg.max_steps:
        logger.warning("max_steps changed from %s to %s: the LR schedule after step %d follows the new length",
                       saved.get("max_steps"), cfg.max_steps, state["step"])  # fmt: skip
    return state


def restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, checkpoint: dict) -> None:
    """Load trainable weights and optimizer state; every trainable parameter must be in the checkpoint."""
    missing = {name for name, p in model.named_parameters() if p.requires_grad} - set(checkpoint["model"])
    if missing:
        raise ValueError(f"checkpoint lacks {len(missing)} trainable parameters, e.g. {sorted(missing)[:3]}")
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in checkpoint["model"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(checkpoint["optimizer"])


def export_model(model: torch.nn.Module, cfg: FinetuneConfig, out_dir: Path) -> Path:
    """Save the trained model (LoRA merged into the base) with its tokenizer as a plain HF dir, atomically."""
    from transformers import AutoTokenizer

    target = out_dir / MODEL_DIR
    if cfg.lora_rank > 0:
        _save_dir(out_dir, ADAPTER_DIR, model.save_pretrained)  # the adapter alone, loadable onto the base
    to_save = model.merge_and_unload() if cfg.lora_rank > 0 else model
    to_save.config.use_cache = True

    def save(tmp: Path) -> None:
        to_save.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(cfg.base_model).save_pretrained(tmp)

    _save_dir(out_dir, MODEL_DIR, save)
    logger.info("model -> %s", target)
    return target


def _save_dir(out_dir: Path, name: str, save: Callable[[Path], None]) -> Path:
    """Write a directory through `save(tmp)` and rename it over out_dir/name."""
    target = out_dir / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        save(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# Peak dense bf16 tensor FLOP/s per device, from the vendors' datasheets (no sparsity).
PEAK_BF16_FLOPS = {"H100 PCIe": 756e12, "H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12}


def peak_flops_for(device: str) -> float | None:
    """Datasheet bf16 peak for the current GPU, or None (CPU, unknown GPU: no MFU is reported)."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS.items():  # the more specific "H100 PCIe" is listed before "H100"
        if all(part in name for part in key.split()):
            return flops
    return None


def flops_per_token_of(n_params: int, summary: dict, seq_len: int, lora: bool = False) -> float:
    """Model FLOPs per trained token: 6N for the matmuls (2 forward + 4 backward) plus 12·L·d·T for attention
    (PaLM appendix B, nanoGPT's estimate_mfu). N excludes an untied input embedding, which is a lookup. With LoRA the
    frozen weights need no weight gradients, so 4N. Recomputation under gradient checkpointing is not counted."""
    n_matmul = n_params
    if not summary.get("tie_word_embeddings") and summary.get("vocab_size") and summary.get("hidden_size"):
        n_matmul -= summary["vocab_size"] * summary["hidden_size"]
    layers, width = summary.get("n_layers") or 0, summary.get("hidden_size") or 0
    return (4 if lora else 6) * n_matmul + 12 * layers * width * seq_len


def _mfu(flops_per_token: float, tokens_per_s_per_device: float, peak: float | None, dtype: str) -> float | None:
    if peak is None or dtype != "bfloat16" or tokens_per_s_per_device <= 0:
        return None
    return flops_per_token * tokens_per_s_per_device / peak


def _teardown(rt: Runtime) -> None:
    """Wait for every rank (rank 0 may still be writing), then leave the process group."""
    if rt.world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _emit(on_log: Callable[[dict], None] | None, event: dict) -> None:
    if on_log is not None:
        on_log(event)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _norm(value):
    return list(value) if isinstance(value, tuple) else value


def _remove_stale_temp_files(out_dir: Path) -> None:
    """A run killed mid-write leaves `.ckpt.pt.*.tmp` / `.model.*` behind; the renamed files are intact."""
    stale_dirs = [*out_dir.glob(f".{MODEL_DIR}.*"), *out_dir.glob(f".{ADAPTER_DIR}.*")]
    for stale in [*out_dir.glob(f".{CHECKPOINT}.*.tmp"), *stale_dirs]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
