import pytest

from training.zero3 import (
    TOKENS_PER_STEP,
    ZERO3_PRESETS,
    PlanError,
    check_accelerate_config,
    dry_run,
    main,
    read_accelerate_config,
)


@pytest.mark.parametrize("preset", sorted(ZERO3_PRESETS))
def test_every_zero3_preset_validates_and_fits_an_80_gib_gpu(preset):
    plan = dry_run(preset)
    assert plan.tokens_per_step == TOKENS_PER_STEP  # ProgressGym's 8 x 8 x 1024 at every size
    assert plan.config.lora_rank == 0 and plan.config.gradient_checkpointing and plan.config.seq_len == 1024
    assert plan.fits and plan.total_gib_per_gpu > plan.state_gib_per_gpu > 0
    assert any("not runnable yet" in note for note in plan.notes)


def test_the_8b_memory_arithmetic():
    plan = dry_run("gpu-8b-zero3")
    assert plan.state_gib_per_gpu == pytest.approx(16 * 8_030_261_248 / 8 / 2**30)  # 15.0 GiB
    squeezed = dry_run("gpu-8b-zero3", gpus=2)  # 60 GiB of state per GPU plus activations
    assert not squeezed.fits and "--num_processes 2" in squeezed.describe()


def test_a_config_that_is_not_zero3_is_refused(tmp_path):
    ddp = {"distributed_type": "MULTI_GPU", "mixed_precision": "no", "num_processes": 8}
    problems = check_accelerate_config(ddp, gpus=8)
    assert len(problems) == 4 and any("zero_stage" in p for p in problems)
    with pytest.raises(PlanError, match="does not exist"):
        read_accelerate_config(tmp_path / "missing.yaml")
    with pytest.raises(PlanError, match="unknown ZeRO-3 preset"):
        dry_run("gpu-405b-zero3")


def test_the_cli_prints_every_plan(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ZERO3_PRESETS) and out.count("fits") == len(ZERO3_PRESETS)
    assert main(["--preset", "gpu-70b-zero3", "--gpu-memory-gib", "24"]) == 1
