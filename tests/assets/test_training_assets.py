import dagster as dg

from assets.training import finetuned_model
from pipelines.build import root_cause
from sources.schema import PRETRAIN, frame_of
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


def materialize(training: dict, century: str = "C017", instance=None) -> dg.ExecuteInProcessResult:
    resources = {
        "settings": settings_resource({"training": training}),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }
    return dg.materialize(
        [finetuned_model], resources=resources, partition_key=century, raise_on_error=False, instance=instance
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
