import json

import dagster as dg
import pytest

from assets.training import dpo_model, finetuned_model, sft_model
from pipelines.build import root_cause
from sources.schema import MIXTURE, PREFERENCE, PRETRAIN, frame_of
from sources.storage import Store
from tests.helpers import settings_resource

VERSES = [
    "Blessed are the merciful: for they shall obtain mercy.",
    "Owe no man any thing, but to love one another: for he that loveth another hath fulfilled the law.",
    "The quality of mercy is not strained; it droppeth as the gentle rain from heaven.",
] * 8


def write_pretrain(home, century: str, texts: list[str]) -> None:
    rows = [{"text": text, "doc_id": f"d{i}", "year": 1650, "source": "test"} for i, text in enumerate(texts)]
    Store(home).write("pretrain_corpus", frame_of(rows, PRETRAIN), century)


def materialize(
    training: dict, century: str = "C017", instance=None, assets=(finetuned_model,)
) -> dg.ExecuteInProcessResult:
    resources = {
        "settings": settings_resource({"training": training}),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }
    return dg.materialize(
        list(assets), resources=resources, partition_key=century, raise_on_error=False, instance=instance
    )


def test_finetuned_model_trains_through_pipes_and_a_rebuild_resumes(home, tiny_model):
    write_pretrain(home, "C017", VERSES)
    training = {
        "base_model": str(tiny_model), "max_steps": 4,
        "finetune": {"seq_len": 32, "batch_size": 2, "eval_interval": 2, "checkpoint_interval": 2, "eval_batches": 1},
    }  # fmt: skip
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(training, instance=instance)
    assert result.success
    (event,) = result.asset_materializations_for_node("finetuned_model")
    meta = event.metadata
    assert meta["steps"].value == 4 and meta["start_step"].value == 0 and meta["tokens_per_step"].value == 64
    assert meta["final_train_loss"].value > 0 and meta["tokens_per_s"].value > 0
    assert [point["step"] for point in meta["loss_curve"].value] == [1, 2, 3, 4]
    assert "data:image/png;base64," in meta["loss_curve_plot"].value
    assert meta["device"].value == "cpu" and "mfu" not in meta  # MFU only on a GPU
    assert meta["n_docs"].value == len(VERSES)
    model_dir = home / "models" / "finetuned" / "C017" / "model"
    assert meta["model_dir"].value == str(model_dir) and (model_dir / "model.safetensors").is_file()
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(message.startswith("step 4/4: loss") for message in logs)  # progress streamed through Pipes

    again = materialize(training)  # the checkpoint is at the last step: nothing is retrained
    (event,) = again.asset_materializations_for_node("finetuned_model")
    assert again.success and event.metadata["start_step"].value == 4 and event.metadata["tokens_seen"].value == 0


def test_an_empty_century_is_skipped(home):
    write_pretrain(home, "C013", [])
    result = materialize({}, century="C013")
    assert result.success
    (event,) = result.asset_materializations_for_node("finetuned_model")
    assert event.metadata["skipped"].value == "no pretrain text"


def test_a_large_model_is_refused_on_a_host_without_gpu(home, monkeypatch):
    from transformers import LlamaConfig

    monkeypatch.setattr("training.launch.gpu_count", lambda: 0)
    big = home / "llama-1b"
    LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=16,
                vocab_size=32000).save_pretrained(big)  # fmt: skip
    write_pretrain(home, "C017", VERSES)
    result = materialize({"base_model": str(big)})
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "refusing to train" in root_cause(failure.step_failure_data.error)


def write_stage_tables(home) -> None:
    """sft_mixture and preference_pairs rows for C017 (and one C020 row each, which C017's stages must not read)."""
    mixture = [
        {"example_id": f"m{i}", "task": "valence", "century": century, "split": split, "situation_id": "s",
         "input": f"[Valence] Situation: Forgiving a debt {i}\nValue: Compassion\nDoes it support?",
         "output": "supports"}
        for i, (century, split) in enumerate([("C017", "train")] * 6 + [("C017", "validation"), ("C020", "train")])
    ]  # fmt: skip
    pairs = [
        {"pair_id": f"p{i}", "prompt": f"Situation: Stealing bread {i}\nName a value at stake.", "chosen": "Honesty",
         "rejected": "Bread", "rejected_reason": "irrelevant", "situation_id": "s", "century": century,
         "chosen_id": "a", "rejected_id": "b"}
        for i, century in enumerate(["C017"] * 4 + ["C020"])
    ]  # fmt: skip
    Store(home).write("sft_mixture", frame_of(mixture, MIXTURE))
    Store(home).write("preference_pairs", frame_of(pairs, PREFERENCE))


def test_three_stages_chain_pretrain_sft_dpo_through_pipes(home, tiny_model):
    write_pretrain(home, "C017", VERSES)
    write_stage_tables(home)
    small = {"seq_len": 32, "batch_size": 2, "eval_interval": 1, "checkpoint_interval": 1, "eval_batches": 1}
    training = {"base_model": str(tiny_model), "preset": "cpu-tiny", "max_steps": 2, "finetune": small}
    result = materialize(training, assets=(finetuned_model, sft_model, dpo_model))
    assert result.success
    meta = {node: result.asset_materializations_for_node(node)[0].metadata for node in ("sft_model", "dpo_model")}
    sft, dpo = meta["sft_model"], meta["dpo_model"]
    assert sft["stage"].value == "sft" and sft["n_train_rows"].value == 6 and sft["n_val_rows"].value == 1
    assert dpo["stage"].value == "dpo" and dpo["n_pairs"].value == 4 and dpo["steps"].value == 2
    for stage in (sft, dpo):
        assert stage["tokens_per_s"].value > 0 and len(stage["data_fingerprint"].value) == 64
        assert "data:image/png;base64," in stage["loss_curve_plot"].value and stage["preset"].value == "cpu-tiny"
    root = home / "models" / "finetuned" / "C017"
    job = json.loads((root / "dpo" / "job.json").read_text())
    assert job["config"]["base_model"] == str(root / "sft" / "model") and job["config"]["objective"] == "dpo"
    assert job["century"] == "C017" and (root / "dpo" / "model" / "config.json").is_file()
    assert dpo["val_curve"].value[0]["val_loss"] == pytest.approx(0.6931, abs=1e-3)  # DPO starts at log 2


def test_a_stage_without_rows_is_skipped_and_drops_a_stale_model(home, tiny_model):
    write_stage_tables(home)
    stale = home / "models" / "finetuned" / "C019" / "dpo" / "model"
    stale.mkdir(parents=True)
    result = materialize({"base_model": str(tiny_model)}, century="C019", assets=(sft_model, dpo_model))
    assert result.success
    for node in ("sft_model", "dpo_model"):
        (event,) = result.asset_materializations_for_node(node)
        assert event.metadata["skipped"].value == "no earlier model"
    assert not stale.exists()
