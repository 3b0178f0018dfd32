"""Launching a finetuning job: the plan (orchestrator side) and the trainer process (`python -m training.launch`).

The `finetuned_model` asset calls `plan_finetune`, which picks the preset, refuses a large model on a GPU-less host,
writes `<out_dir>/job.json` and returns the command; Dagster Pipes runs that command as a subprocess. The process
side speaks Pipes on rank 0 (progress lines as Dagster logs, the final metrics as materialization metadata) and runs
the same with no orchestrator at all:

    python -m training.launch --job <home>/models/finetuned/C017/job.json
    accelerate launch --config_file deploy/accelerate/multi_gpu.yaml --num_processes 8 \\
        -m training.launch --job .../job.json

Nothing here imports Dagster itself; `dagster_pipes` is the orchestrator-free client library.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sources.settings import TrainingSettings
from sources.storage import write_text_atomic
from training.base_models import check_device_allows, count_params
from training.finetune import FinetuneConfig, TrainResult
from training.presets import CPU_PRESETS, STAGES, make_config, preset_name_for

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
JOB_FILE = "job.json"
RESULT_FILE = "result.json"
LOCK_FILE = ".trainer.lock"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# set by the asset: stop when the launching process dies (a killed `chronoprism build`), so the rebuild resumes from
# the last checkpoint instead of racing an orphaned trainer; a trainer started by hand keeps running without it
STOP_WITH_PARENT_ENV = "CHRONOPRISM_TRAINER_STOP_WITH_PARENT"
LOCK_WAIT_S = 60.0


class TrainerBusy(RuntimeError):
    """Another trainer holds the lock on this out_dir."""


@dataclass
class FinetuneJob:
    """Everything the trainer process needs, as one JSON file beside the checkpoint."""

    config: FinetuneConfig
    data: str  # parquet: a `pretrain_corpus` partition (pretrain), `sft_mixture` (sft) or `preference_pairs` (dpo)
    models_dir: str  # where 'tiny' / 'smollm2' resolve to local HF dirs
    text_column: str = "text"
    label: str = ""  # e.g. the century, for log lines
    stage: str = "pretrain"  # pretrain | sft | dpo (training/presets.py: STAGES)
    century: str | None = None  # sft / dpo: the rows of this century only (their tables hold every century)

    def write(self, path: Path) -> Path:
        payload = {**dataclasses.asdict(self), "config": dataclasses.asdict(self.config)}
        return write_text_atomic(path, json.dumps(payload, indent=2, default=list))

    @classmethod
    def read(cls, path: Path) -> FinetuneJob:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        config = payload.pop("config")
        config["lora_targets"] = tuple(config.get("lora_targets", FinetuneConfig.lora_targets))
        return cls(config=FinetuneConfig(**config), **payload)


@dataclass
class LaunchPlan:
    """The command the asset runs, and what it decided on the way."""

    command: list[str]
    job: FinetuneJob
    job_path: Path
    out_dir: Path
    preset: str
    n_params: int
    gpu_count: int
    notes: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """Offline HF, and the repo importable even without an editable install."""
        path = os.pathsep.join(p for p in [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")] if p)
        return {**OFFLINE_ENV, "PYTHONPATH": path, STOP_WITH_PARENT_ENV: "1"}


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def finetuned_dir(home: Path, century: str) -> Path:
    """One century's run dir: checkpoint, job.json, result.json and the exported model in `model/`."""
    return Path(home) / "models" / "finetuned" / century


def stage_dir(home: Path, century: str, stage: str) -> Path:
    """A stage's run dir: continued pretraining in the century's dir, SFT and DPO in sub-dirs of it."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
    root = finetuned_dir(home, century)
    return root if stage == "pretrain" else root / stage


def latest_model_dir(home: Path, century: str, stage: str = "dpo", inclusive: bool = True) -> Path | None:
    """The century's most advanced exported model up to `stage` (before it when not `inclusive`), or None."""
    from training.finetune import MODEL_DIR

    last = STAGES.index(stage) + (1 if inclusive else 0)
    for earlier in reversed(STAGES[:last]):
        model_dir = stage_dir(home, century, earlier) / MODEL_DIR
        if (model_dir / "config.json").is_file():
            return model_dir
    return None


def drop_stage_model(home: Path, century: str, stage: str) -> bool:
    """Remove a stage's exported model (a stage skipped on this build must not leave last build's behind)."""
    import shutil

    from training.finetune import MODEL_DIR

    model_dir = stage_dir(home, century, stage) / MODEL_DIR
    if not model_dir.exists():
        return False
    shutil.rmtree(model_dir)
    return True


def plan_finetune(
    settings: TrainingSettings, century: str, data_path: Path, home: Path, n_gpus: int | None = None,
    stage: str = "pretrain", base_model: str | None = None,
) -> LaunchPlan:  # fmt: skip
    """Choose preset and launcher for one century's stage, refuse a too-large CPU run, and write the job file.

    SFT and DPO start from the previous stage's model (`base_model`, a local dir); the preset is still chosen by
    `settings.base_model`, so a tiny-model run keeps the tiny preset through all three stages."""
    n_gpus = gpu_count() if n_gpus is None else n_gpus
    models_dir = Path(home) / "models"
    out_dir = stage_dir(home, century, stage)
    base_model = base_model or settings.base_model
    notes: list[str] = []
    if n_gpus == 0:
        # the refusal happens here, before any process starts; the trainer checks again on its own
        n_params = check_device_allows(base_model, cuda_available=False, max_cpu_params=settings.max_cpu_params)
        notes.append(
            f"no CUDA GPU on this host: training {base_model!r} ({n_params / 1e6:.1f}M parameters) on CPU, allowed "
            f"up to {settings.max_cpu_params / 1e6:.0f}M (training.max_cpu_params)"
        )
    else:
        n_params = count_params(base_model)
    preset = settings.preset
    if preset == "auto":
        preset = preset_name_for(settings.base_model, n_params, n_gpus > 0)
    if n_gpus > 0 and preset in CPU_PRESETS:
        notes.append(f"preset {preset!r} is a CPU preset; it runs on the GPU unchanged")
    config = make_config(
        preset,
        stage=stage,
        **{
            **settings.finetune,
            "max_steps": settings.max_steps,
            **settings.stage_finetune.get(stage, {}),
            "base_model": base_model,
            "out_dir": str(out_dir),
            "seed": settings.seed,
            "resume": settings.resume,
            "max_cpu_params": settings.max_cpu_params,
        },
    )
    job = FinetuneJob(
        config=config, data=str(data_path), models_dir=str(models_dir), label=f"{century} {stage}", stage=stage,
        century=century if stage != "pretrain" else None,
    )  # fmt: skip
    job_path = job.write(out_dir / JOB_FILE)
    command = launch_command(job_path, settings, n_gpus)
    launcher = "accelerate launch" if "accelerate" in " ".join(command) else "python"
    notes.append(f"{stage}: preset {preset!r}, {config.max_steps} steps, {launcher}")
    return LaunchPlan(command, job, job_path, out_dir, preset, n_params, n_gpus, notes)


def launch_command(job_path: Path, settings: TrainingSettings, n_gpus: int) -> list[str]:
    """Plain python for CPU / one GPU; `accelerate launch` (one process per GPU, DDP) on a multi-GPU host."""
    use_accelerate = settings.launcher == "accelerate" or (settings.launcher == "auto" and n_gpus > 1)
    trainer = ["-m", "training.launch", "--job", str(job_path)]
    if not use_accelerate:
        return [sys.executable, *trainer]
    config = Path(settings.accelerate_config)
    config = config if config.is_absolute() else REPO_ROOT / config
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    if n_gpus > 0:
        accelerate += ["--num_processes", str(n_gpus)]
    else:
        accelerate += ["--cpu", "--num_processes", "1"]
    return [*accelerate, *trainer]


# -- the trainer process


def read_texts(path: str | Path, column: str = "text") -> list[str]:
    """The non-empty texts of one parquet file, in file order."""
    import polars as pl

    frame = pl.read_parquet(path, columns=[column])
    return [text for text in frame[column].to_list() if text]


def read_stage_rows(job: FinetuneJob) -> tuple[list[tuple], list[tuple]]:
    """SFT: (input, output) of the century's train and validation rows; DPO: (prompt, chosen, rejected) triples."""
    import polars as pl

    frame = pl.read_parquet(job.data)
    if job.century is not None:
        frame = frame.filter(pl.col("century") == job.century)
    if job.stage == "sft":
        columns = ["input", "output"]
        return (
            frame.filter(pl.col("split") == "train").select(columns).rows(),
            frame.filter(pl.col("split") == "validation").select(columns).rows(),
        )
    return frame.select("prompt", "chosen", "rejected").rows(), []


def prepare_job_data(job: FinetuneJob, cfg: FinetuneConfig, tokenizer):
    """The stage's TrainData: packed century text (pretrain), packed prompt + completion (sft), pairs (dpo)."""
    from training.data import prepare_data, prepare_dpo_data, prepare_sft_data, sample_texts

    if job.stage in ("sft", "dpo"):
        train_rows, val_rows = read_stage_rows(job)
        if not train_rows:
            raise ValueError(f"{job.data} has no {job.stage} rows for {job.century}")
        if job.stage == "sft":
            return prepare_sft_data(train_rows, val_rows, tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed)
        return prepare_dpo_data(train_rows, tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed)
    texts = read_texts(job.data, job.text_column)
    if not texts:
        raise ValueError(f"{job.data} has no text to train on")
    n_chars = sum(len(text) for text in texts)
    texts = sample_texts(texts, cfg.max_chars, cfg.seed)
    if cfg.max_chars is not None and n_chars > cfg.max_chars:
        logger.info("training on a %s-char sample of %s chars (max_chars)", f"{cfg.max_chars:,}", f"{n_chars:,}")
    return prepare_data(texts, tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed, packing=cfg.packing)


def run_job(job: FinetuneJob, on_log: Callable[[dict], None] | None = None) -> TrainResult:
    """Refuse early if needed, resolve the base model, tokenize and pack the stage's data, train."""
    import torch
    from transformers import AutoTokenizer

    from training.base_models import resolve_base_model
    from training.finetune import train

    cfg = job.config
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    check_device_allows(cfg.base_model, cuda, cfg.max_cpu_params)  # before a byte of weights is read
    base_dir = resolve_base_model(cfg.base_model, Path(job.models_dir))
    cfg = dataclasses.replace(cfg, base_model=str(base_dir))
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    data = prepare_job_data(job, cfg, tokenizer)
    logger.info("%s: %d documents -> %d train rows, %d val rows of %d tokens", job.label or job.data, data.n_docs,
                len(data.train), len(data.val), cfg.seq_len)  # fmt: skip
    return train(cfg, data, on_log=on_log)


@contextmanager
def exclusive(out_dir: Path, wait_s: float = LOCK_WAIT_S):
    """Hold an exclusive lock on out_dir for the run: two trainers must never write one checkpoint.

    The OS drops the lock when its holder dies, so a killed trainer leaves nothing stale; a second trainer waits up to
    `wait_s` (an orphan stops at its next step) and then gives up with TrainerBusy.
    """
    import fcntl

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOCK_FILE, "w") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TrainerBusy(f"another trainer is running in {out_dir}; waited {wait_s:.0f} s") from None
                time.sleep(0.5)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_when_orphaned(on_log: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """Wrap a progress callback so training stops once the launching process has gone (we were re-parented)."""
    parent = os.getppid()

    def check(event: dict) -> None:
        if os.getppid() != parent:
            raise SystemExit(
                f"the launching process (pid {parent}) is gone; stopping at step {event['step']}. "
                "A rebuild resumes from the last checkpoint."
            )
        if on_log is not None:
            on_log(event)

    return check


def result_metadata(result: TrainResult) -> dict[str, dict[str, Any]]:
    """Pipes metadata (typed raw values) for the materialization: losses, throughput, MFU, curves, paths."""
    typed = {
        "steps": (result.step, "int"),
        "start_step": (result.start_step, "int"),
        "max_steps": (result.max_steps, "int"),
        "final_train_loss": (result.train_loss, "float"),
        "final_val_loss": (result.val_loss, "float"),
        "best_val_loss": (result.best_val_loss, "float"),
        "tokens_per_step": (result.tokens_per_step, "int"),
        "steps_per_epoch": (result.steps_per_epoch, "float"),
        "tokens_seen": (result.tokens_seen, "int"),
        "tokens_per_s": (result.tokens_per_s, "float"),
        "mfu": (result.mfu, "float"),
        "n_params": (result.n_params, "int"),
        "n_trainable": (result.n_trainable, "int"),
        "device": (result.device, "text"),
        "dtype": (result.dtype, "text"),
        "world_size": (result.world_size, "int"),
        "elapsed_s": (result.elapsed_s, "float"),
        "data_fingerprint": (result.data_fingerprint, "text"),
        "model_dir": (result.model_dir, "path"),
        "loss_curve": (result.history, "json"),
        "val_curve": (result.val_history, "json"),
    }
    return {name: {"raw_value": value, "type": kind} for name, (value, kind) in typed.items() if value is not None}


def _open_pipes(is_main: bool):
    """Dagster Pipes on rank 0 when Dagster started us; otherwise a stand-in that does nothing."""
    if is_main:
        from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

        if PipesEnvVarParamsLoader().is_dagster_pipes_process():
            return open_dagster_pipes()
    return nullcontext(None)


def _progress_to(pipes) -> Callable[[dict], None] | None:
    if pipes is None:
        return None

    def on_log(event: dict) -> None:
        if event["kind"] == "eval":
            pipes.log.info(f"step {event['step']}/{event['max_steps']}: val loss {event['val_loss']:.4f}")
            return
        mfu = f", mfu {event['mfu']:.1%}" if event.get("mfu") is not None else ""
        pipes.log.info(f"step {event['step']}/{event['max_steps']}: loss {event['loss']:.4f}, lr {event['lr']:.2e}, "
                       f"{event['tokens_per_s']:,.0f} tok/s{mfu}")  # fmt: skip

    return on_log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, type=Path, help="job.json written by plan_finetune (or by hand)")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format=f"%(asctime)s [rank {rank}] %(name)s: %(message)s"
    )
    job = FinetuneJob.read(args.job)
    with _open_pipes(rank == 0) as pipes, exclusive(Path(job.config.out_dir)) if rank == 0 else nullcontext():
        on_log = _progress_to(pipes)
        if os.environ.get(STOP_WITH_PARENT_ENV) == "1" and rank == 0:
            on_log = stop_when_orphaned(on_log)
        result = run_job(job, on_log=on_log)
        if rank == 0:
            write_text_atomic(Path(job.config.out_dir) / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
            if pipes is not None:
                pipes.report_asset_materialization(metadata=result_metadata(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
