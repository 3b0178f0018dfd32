import dataclasses
import math

import pytest
import torch
from safetensors.torch import load_file

from training.base_models import ModelTooLargeForCPU
from training.data import prepare_data
from training.finetune import (
    CHECKPOINT,
    MODEL_DIR,
    FinetuneConfig,
    _mfu,
    evaluate,
    flops_per_token_of,
    lr_at,
    resolve_max_steps,
    train,
)
from training.presets import PRESETS, make_config, preset_name_for

LLAMA_8B = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8,
)  # fmt: skip


def tiny_config(tiny_model, out_dir, **overrides) -> FinetuneConfig:
    """Seconds on CPU: 4 rows x 32 tokens per step."""
    values = dict(base_model=str(tiny_model), out_dir=str(out_dir), seq_len=32, batch_size=4, max_steps=6,
                  warmup_steps=2, eval_interval=2, eval_batches=1, checkpoint_interval=2)  # fmt: skip
    return make_config("cpu-tiny", **{**values, **overrides})


def test_lr_warms_up_peaks_then_decays_to_the_floor():
    cfg = FinetuneConfig(learning_rate=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-3 / 11)
    assert lr_at(9, cfg) < lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))  # halfway down the cosine
    assert lr_at(110, cfg) == lr_at(500, cfg) == pytest.approx(1e-4)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 120))


def test_max_steps_from_epochs_and_the_token_cap():
    cfg = FinetuneConfig(max_steps=None, epochs=4, batch_size=8, grad_accum=2, seq_len=100)
    assert resolve_max_steps(cfg, n_train_rows=160).max_steps == 40  # 4 x 160 rows / 16 rows per step
    assert resolve_max_steps(cfg, n_train_rows=160, world=2).max_steps == 20
    capped = dataclasses.replace(cfg, max_train_tokens=16_000)  # 1,600 tokens per step
    assert resolve_max_steps(capped, n_train_rows=160).max_steps == 10
    with pytest.raises(ValueError, match="max_steps or epochs"):
        resolve_max_steps(FinetuneConfig(max_steps=None), 10)


def test_mfu_counts_model_flops_per_token():
    smollm2 = {"n_layers": 30, "hidden_size": 576, "vocab_size": 49152, "tie_word_embeddings": True}
    per_token = flops_per_token_of(134_515_008, smollm2, seq_len=1024)
    assert per_token == 6 * 134_515_008 + 12 * 30 * 576 * 1024  # ~1.02 GFLOP per token
    untied = {**smollm2, "tie_word_embeddings": False}
    assert flops_per_token_of(134_515_008, untied, 1024) == per_token - 6 * 49152 * 576  # a lookup costs no matmul
    assert flops_per_token_of(134_515_008, smollm2, 1024, lora=True) < per_token
    # 400k tokens/s on a 989 TFLOP/s H100 would be ~41% MFU; float32 runs and CPUs report none
    assert _mfu(per_token, 400_000, 989.4e12, "bfloat16") == pytest.approx(0.412, abs=1e-3)
    assert _mfu(per_token, 400_000, 989.4e12, "float32") is None and _mfu(per_token, 1e3, None, "bfloat16") is None


def test_presets_override_only_known_fields():
    assert make_config("cpu-tiny").max_steps == PRESETS["cpu-tiny"]["max_steps"]
    assert make_config("gpu-small", max_steps=None).max_steps is None  # None keeps the preset's (epochs)
    with pytest.raises(ValueError, match="unknown finetuning settings"):
        make_config("cpu-tiny", learning_rat=1.0)
    with pytest.raises(ValueError, match="unknown preset"):
        make_config("gpu-huge")
    assert preset_name_for("tiny", 3_000_000, gpu=True) == "cpu-tiny"
    assert preset_name_for("/m/8b", 8_000_000_000, gpu=True) == "gpu-lora"
    assert preset_name_for("smollm2", 134_515_008, gpu=True) == "gpu-small"
    assert preset_name_for("smollm2", 134_515_008, gpu=False) == "cpu-small"


def test_evaluate_runs_without_grad_and_restores_train_mode(tiny_model, tiny_tokenizer, verses):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    data = prepare_data(verses, tiny_tokenizer, 32, 0.2, 0)
    model.train()
    loss = evaluate(model, [data.val])
    assert model.training and all(p.grad is None for p in model.parameters())
    assert loss == pytest.approx(math.log(len(tiny_tokenizer)), rel=0.05)  # a random model: ~uniform over the vocab
    model.eval()
    evaluate(model, [data.val])
    assert not model.training


def test_loss_decreases_on_a_tiny_overfit_set(tiny_model, tiny_tokenizer, verses, tmp_path):
    cfg = tiny_config(
        tiny_model,
        tmp_path,
        max_steps=15,
        eval_interval=15,
        checkpoint_interval=15,
        learning_rate=5e-3,
        eval_batches=2,
    )
    data = prepare_data(verses, tiny_tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed)
    result = train(cfg, data)
    losses = [h["loss"] for h in result.history]
    assert result.step == 15 and len(losses) == 15
    assert sum(losses[-3:]) / 3 < losses[0] - 2.0  # from ~log(49152) = 10.8 nats down by more than 2
    assert result.val_history[-1]["val_loss"] < result.val_history[0]["val_loss"] - 2.0
    assert result.tokens_per_step == 4 * 32 and result.tokens_per_s > 0 and result.mfu is None  # no MFU on CPU
    assert (tmp_path / MODEL_DIR / "config.json").is_file() and (tmp_path / MODEL_DIR / "tokenizer.json").is_file()


class Crash(Exception):
    pass


def test_resume_after_a_crash_retraces_the_uninterrupted_run(tiny_model, tiny_tokenizer, verses, tmp_path):
    straight = tiny_config(tiny_model, tmp_path / "straight")
    data = prepare_data(verses, tiny_tokenizer, straight.seq_len, straight.val_fraction, straight.seed)
    reference = train(straight, data)

    crashed = dataclasses.replace(straight, out_dir=str(tmp_path / "crashed"))

    def crash_at_step_3(event):
        if event["kind"] == "train" and event["step"] == 3:
            raise Crash

    with pytest.raises(Crash):
        train(crashed, data, on_log=crash_at_step_3)
    state = torch.load(tmp_path / "crashed" / CHECKPOINT, weights_only=True)
    assert state["step"] == 2 and state["data_fingerprint"] == data.fingerprint
    assert {"model", "optimizer", "config", "step", "best_val_loss", "data_fingerprint"} <= set(state)

    resumed = train(crashed, data)
    assert resumed.start_step == 2 and resumed.step == 6
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in reference.history], rel=1e-5)
    assert [v["step"] for v in resumed.val_history] == [0, 2, 4, 6]
    weights = load_file(tmp_path / "crashed" / MODEL_DIR / "model.safetensors")
    expected = load_file(tmp_path / "straight" / MODEL_DIR / "model.safetensors")
    assert all(torch.allclose(weights[k], expected[k], atol=1e-6) for k in expected)

    again = train(crashed, data)  # finished: a rebuild does nothing
    assert again.start_step == again.step == 6 and again.tokens_seen == 0


def test_a_checkpoint_for_other_data_or_settings_is_not_resumed(tiny_model, tiny_tokenizer, verses, tmp_path):
    cfg = tiny_config(tiny_model, tmp_path, max_steps=1)
    train(cfg, prepare_data(verses, tiny_tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed))
    other_data = prepare_data(verses[:12], tiny_tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed)
    assert train(cfg, other_data).start_step == 0
    other_lr = dataclasses.replace(cfg, learning_rate=1e-4)
    assert train(other_lr, other_data).start_step == 0


def test_lora_trains_adapters_only_and_exports_a_merged_model(tiny_model, tiny_tokenizer, verses, tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(tiny_model, tmp_path, max_steps=2, lora_rank=4, lora_targets=("q_proj", "v_proj"))
    result = train(cfg, prepare_data(verses, tiny_tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed))
    assert 0 < result.n_trainable < result.n_params / 100
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / MODEL_DIR)
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_refuses_to_train_a_large_model_on_cpu(tmp_path, tiny_tokenizer, verses):
    from transformers import LlamaConfig

    LlamaConfig(**LLAMA_8B).save_pretrained(tmp_path / "llama-8b")  # config only: no weights exist to load
    cfg = FinetuneConfig(base_model=str(tmp_path / "llama-8b"), out_dir=str(tmp_path / "out"), device="cpu")
    data = prepare_data(verses, tiny_tokenizer, 32, 0.1, 0)
    with pytest.raises(ModelTooLargeForCPU, match=r"refusing to train .* \(8030M parameters\) on CPU"):
        train(cfg, data)
    assert not (tmp_path / "out").exists()
