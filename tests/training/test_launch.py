import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch

from sources.settings import TrainingSettings
from training.base_models import ModelTooLargeForCPU
from training.finetune import CHECKPOINT
from training.launch import (
    JOB_FILE,
    RESULT_FILE,
    FinetuneJob,
    TrainerBusy,
    exclusive,
    launch_command,
    plan_finetune,
    stop_when_orphaned,
)
from training.presets import make_config

REPO = Path(__file__).resolve().parents[2]


def write_corpus(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"text": texts, "doc_id": [str(i) for i in range(len(texts))]}).write_parquet(path)
    return path


def trainer_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_kill_9_mid_run_then_resume_from_the_last_checkpoint(tiny_model, verses, tmp_path):
    out_dir = tmp_path / "run"
    config = make_config("cpu-tiny", base_model=str(tiny_model), out_dir=str(out_dir), seq_len=16, batch_size=2,
                         max_steps=12, eval_interval=2, eval_batches=1, checkpoint_interval=2)  # fmt: skip
    job = FinetuneJob(config, data=str(write_corpus(tmp_path / "C017.parquet", verses)), models_dir=str(tmp_path))
    job_path = job.write(out_dir / JOB_FILE)
    command = [sys.executable, "-m", "training.launch", "--job", str(job_path)]

    process = subprocess.Popen(command, env=trainer_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out_dir / CHECKPOINT).is_file():  # the first atomic checkpoint (step 2)
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    killed_at = torch.load(out_dir / CHECKPOINT, weights_only=True)["step"]
    assert 2 <= killed_at < 12 and not (out_dir / RESULT_FILE).exists()

    rerun = subprocess.run(command, env=trainer_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed from {out_dir / CHECKPOINT} at step {killed_at}" in rerun.stderr
    result = json.loads((out_dir / RESULT_FILE).read_text())
    assert result["start_step"] == killed_at and result["step"] == 12
    assert [h["step"] for h in result["history"]] == list(range(1, 13))  # the curve spans both processes
    assert not list(out_dir.glob(".*.tmp"))  # a temp file from the killed write is cleaned up


def test_plan_writes_the_job_and_picks_python_on_a_host_without_gpu(tmp_path, tiny_model):
    settings = TrainingSettings(base_model=str(tiny_model), max_steps=5, finetune={"seq_len": 64})
    plan = plan_finetune(settings, "C019", tmp_path / "C019.parquet", tmp_path, n_gpus=0)
    assert plan.command == [sys.executable, "-m", "training.launch", "--job", str(plan.job_path)]
    assert plan.preset == "cpu-small"  # a local dir (not the alias 'tiny') on CPU
    job = FinetuneJob.read(plan.job_path)
    assert job.config.max_steps == 5 and job.config.seq_len == 64 and job.config.out_dir == str(plan.out_dir)
    assert plan.out_dir == tmp_path / "models" / "finetuned" / "C019"
    assert any("no CUDA GPU" in note for note in plan.notes)
    default = plan_finetune(TrainingSettings(), "C019", tmp_path / "x.parquet", tmp_path, n_gpus=0)
    assert TrainingSettings().max_steps is None and default.preset == "cpu-small"  # SmolLM2 is the default base
    assert default.job.config.max_steps == 4 and default.job.config.lora_rank == 8  # LoRA on CPU


def test_each_stage_gets_its_own_dir_preset_and_base(tmp_path, tiny_model):
    settings = TrainingSettings(base_model=str(tiny_model), stage_finetune={"dpo": {"max_steps": 3}})
    sft_base = tiny_model  # stands in for the previous stage's exported model
    plans = {
        stage: plan_finetune(settings, "C017", tmp_path / f"{stage}.parquet", tmp_path, n_gpus=0, stage=stage,
                             base_model=None if stage == "pretrain" else str(sft_base))
        for stage in ("pretrain", "sft", "dpo")
    }  # fmt: skip
    root = tmp_path / "models" / "finetuned" / "C017"
    assert [p.out_dir for p in plans.values()] == [root, root / "sft", root / "dpo"]
    assert {p.preset for p in plans.values()} == {"cpu-small"}  # chosen by the settings' base, not the stage's
    dpo = FinetuneJob.read(plans["dpo"].job_path)
    assert dpo.stage == "dpo" and dpo.century == "C017" and dpo.config.objective == "dpo"
    assert dpo.config.max_steps == 3 and dpo.config.base_model == str(sft_base)
    assert FinetuneJob.read(plans["pretrain"].job_path).century is None


def test_plan_refuses_a_large_model_on_a_host_without_gpu(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=16,
                vocab_size=32000).save_pretrained(tmp_path / "big")  # fmt: skip
    settings = TrainingSettings(base_model=str(tmp_path / "big"))
    with pytest.raises(ModelTooLargeForCPU, match="refusing to train"):
        plan_finetune(settings, "C017", tmp_path / "C017.parquet", tmp_path, n_gpus=0)
    assert not (tmp_path / "models").exists()  # refused before writing anything
    assert plan_finetune(settings, "C017", tmp_path / "C017.parquet", tmp_path, n_gpus=1).preset == "gpu-small"


def test_accelerate_launch_on_a_multi_gpu_host(tmp_path):
    command = launch_command(tmp_path / JOB_FILE, TrainingSettings(), n_gpus=4)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[command.index("--config_file") + 1] == str(REPO / "deploy/accelerate/multi_gpu.yaml")
    assert command[command.index("--num_processes") + 1] == "4"
    assert command[-4:] == ["-m", "training.launch", "--job", str(tmp_path / JOB_FILE)]
    assert (REPO / "deploy/accelerate/multi_gpu.yaml").is_file()
    assert launch_command(tmp_path / JOB_FILE, TrainingSettings(), n_gpus=1)[1:3] == ["-m", "training.launch"]


def test_one_trainer_per_out_dir(tmp_path):
    busy = pytest.raises(TrainerBusy, match="another trainer is running")
    with exclusive(tmp_path / "run"), busy, exclusive(tmp_path / "run", wait_s=0):
        pass
    with exclusive(tmp_path / "run", wait_s=0):  # released with its holder
        pass


def test_training_stops_once_the_launcher_is_gone(monkeypatch):
    seen = []
    on_log = stop_when_orphaned(seen.append)
    on_log({"kind": "train", "step": 1})
    monkeypatch.setattr(os, "getppid", lambda: 1)  # re-parented: the process that started us died
    with pytest.raises(SystemExit, match="stopping at step 2"):
        on_log({"kind": "train", "step": 2})
    assert seen == [{"kind": "train", "step": 1}]
