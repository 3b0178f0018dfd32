"""Training: per century three stages (continued pretraining → SFT → DPO), each a trainer subprocess run via Pipes."""

import json

import dagster as dg
import polars as pl

from pipelines.metadata import file_data_version, png_metadata, stage_asset
from pipelines.resources import SettingsResource


def _train_stage(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    client: dg.PipesSubprocessClient,
    stage: str,
    data_path,
    base_model: str | None,
    extra: dict,
) -> dg.MaterializeResult:
    """Plan the stage's job, run the trainer through Pipes, and report its metrics, loss curve and model version."""
    # imported here: the trainer stack (torch, transformers) stays out of the code location's load time
    from training.launch import RESULT_FILE, plan_finetune
    from training.plots import loss_curve_png

    store, century = settings.store(), context.partition_key
    plan = plan_finetune(settings.get().training, century, data_path, store.home, stage=stage, base_model=base_model)
    for note in plan.notes:
        context.log.info(note)
    context.log.info(f"launching: {' '.join(plan.command)}")
    completed = client.run(command=plan.command, context=context, env=plan.env(), extras={"job": str(plan.job_path)})
    reported = completed.get_materialize_result().metadata or {}
    result = json.loads((plan.out_dir / RESULT_FILE).read_text(encoding="utf-8"))
    plot = loss_curve_png(result["history"], result["val_history"], title=f"{century} {stage}: {plan.preset}")
    return dg.MaterializeResult(
        metadata={
            **reported,
            **extra,
            "stage": stage,
            "loss_curve_plot": png_metadata(plot),
            "preset": plan.preset,
            "gpus": dg.MetadataValue.int(plan.gpu_count),
            "job": dg.MetadataValue.path(str(plan.job_path)),
        },
        data_version=file_data_version(plan.out_dir / "model"),
    )


def _skip(
    context: dg.AssetExecutionContext, settings: SettingsResource, stage: str, reason: str, **counts: int
) -> dg.MaterializeResult:
    """No model for this stage: drop a stale one so later stages and value_eval never read an old model."""
    from training.launch import drop_stage_model

    dropped = drop_stage_model(settings.store().home, context.partition_key, stage)
    context.log.warning(f"{context.partition_key} {stage}: {reason}; no model is trained for this stage")
    return dg.MaterializeResult(metadata={"skipped": reason, "stage": stage, "dropped_stale_model": dropped, **counts})


@stage_asset(
    "training",
    ["pretrain_corpus"],
    ("pytorch",),
    partitioned=True,
    pool="gpu",  # one finetuning step at a time per host (dagster.yaml pools); the training job adds the gpu run tag
)
def finetuned_model(
    context: dg.AssetExecutionContext, settings: SettingsResource, pipes_subprocess_client: dg.PipesSubprocessClient
) -> dg.MaterializeResult:
    """Stage 1, continued pretraining: the base LM (SmolLM2-135M with LoRA on CPU) trained on one century's
    `pretrain_corpus` text (ProgressGym's per-century models).

    The trainer runs as a subprocess (python, or `accelerate launch` on a multi-GPU host) that reports progress and
    metrics through Dagster Pipes; it checkpoints every N steps and a rebuild resumes from the last checkpoint. On a
    host without a GPU only models under `training.max_cpu_params` train.
    """
    corpus = settings.store().table_path("pretrain_corpus", context.partition_key)
    n_docs, n_chars = pl.scan_parquet(corpus).select(pl.len(), pl.col("text").str.len_chars().sum()).collect().row(0)
    if n_docs == 0:
        return _skip(context, settings, "pretrain", "no pretrain text", n_docs=0)
    counts = {"n_docs": dg.MetadataValue.int(n_docs), "n_chars": dg.MetadataValue.int(n_chars or 0)}
    return _train_stage(context, settings, pipes_subprocess_client, "pretrain", corpus, None, counts)


def _previous_model(settings: SettingsResource, century: str, stage: str) -> str | None:
    from training.launch import latest_model_dir

    found = latest_model_dir(settings.store().home, century, stage, inclusive=False)
    return str(found) if found else None


@stage_asset("training", ["finetuned_model", "sft_mixture"], ("pytorch",), partitioned=True, pool="gpu")
def sft_model(
    context: dg.AssetExecutionContext, settings: SettingsResource, pipes_subprocess_client: dg.PipesSubprocessClient
) -> dg.MaterializeResult:
    """Stage 2, SFT: the century's continued-pretrained model trained on its `sft_mixture` rows (Kaleido's generate,
    relevance, valence and explanation tasks) as prompt + completion, loss on the completion only; the mixture's
    validation rows give the validation loss."""
    store, century = settings.store(), context.partition_key
    mixture = store.table_path("sft_mixture")
    n_train = n_val = 0
    if mixture.is_file():
        rows = pl.scan_parquet(mixture).filter(pl.col("century") == century)
        counts = [(pl.col("split") == split).sum().alias(split) for split in ("train", "validation")]
        n_train, n_val = rows.select(counts).collect().row(0)
    base = _previous_model(settings, century, "sft")
    if base is None or n_train == 0:
        reason = "no earlier model" if base is None else "no sft rows"
        return _skip(context, settings, "sft", reason, n_train=n_train)
    counts = {"n_train_rows": dg.MetadataValue.int(n_train), "n_val_rows": dg.MetadataValue.int(n_val)}
    return _train_stage(context, settings, pipes_subprocess_client, "sft", mixture, base, counts)


@stage_asset("training", ["sft_model", "preference_pairs"], ("pytorch",), partitioned=True, pool="gpu")
def dpo_model(
    context: dg.AssetExecutionContext, settings: SettingsResource, pipes_subprocess_client: dg.PipesSubprocessClient
) -> dg.MaterializeResult:
    """Stage 3, DPO: the century's SFT model (or its latest earlier model) trained on its `preference_pairs` (a kept
    value, right or duty preferred over one the relevance filter or the dedup dropped); the reference is the same
    model with its LoRA adapters switched off. This is the model `value_eval` scores."""
    store, century = settings.store(), context.partition_key
    pairs = store.table_path("preference_pairs")
    n_pairs = (
        pl.scan_parquet(pairs).filter(pl.col("century") == century).select(pl.len()).collect().item()
        if pairs.is_file()
        else 0
    )
    base = _previous_model(settings, century, "dpo")
    if base is None or n_pairs < 2:  # one pair cannot be split into training and validation
        reason = "no earlier model" if base is None else "fewer than 2 pairs"
        return _skip(context, settings, "dpo", reason, n_pairs=n_pairs)
    counts = {"n_pairs": dg.MetadataValue.int(n_pairs)}
    return _train_stage(context, settings, pipes_subprocess_client, "dpo", pairs, base, counts)
