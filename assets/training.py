"""Training: one finetuned model per century, trained in a subprocess launched through Dagster Pipes."""

import json

import dagster as dg
import polars as pl

from pipelines.metadata import file_data_version, png_metadata, stage_asset
from pipelines.resources import SettingsResource


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
    """A causal LM continued-pretrained on one century's `pretrain_corpus` text (ProgressGym's per-century models).

    The trainer runs as a subprocess (python, or `accelerate launch` on a multi-GPU host) that reports progress and
    metrics through Dagster Pipes; it checkpoints every N steps and a rebuild resumes from the last checkpoint. On a
    host without a GPU only models under `training.max_cpu_params` train (the tiny model by default).
    """
    # imported here: the trainer stack (torch, transformers) stays out of the code location's load time
    from training.launch import RESULT_FILE, plan_finetune
    from training.plots import loss_curve_png

    store = settings.store()
    century = context.partition_key
    corpus = store.table_path("pretrain_corpus", century)
    n_docs, n_chars = pl.scan_parquet(corpus).select(pl.len(), pl.col("text").str.len_chars().sum()).collect().row(0)
    if n_docs == 0:
        context.log.warning(f"{century}: pretrain_corpus is empty; no model is trained for this century")
        return dg.MaterializeResult(metadata={"skipped": "no pretrain text", "n_docs": 0})
    plan = plan_finetune(settings.get().training, century, corpus, store.home)
    for note in plan.notes:
        context.log.info(note)
    context.log.info(f"launching: {' '.join(plan.command)}")
    completed = pipes_subprocess_client.run(
        command=plan.command, context=context, env=plan.env(), extras={"job": str(plan.job_path)}
    )
    reported = completed.get_materialize_result().metadata or {}
    result = json.loads((plan.out_dir / RESULT_FILE).read_text(encoding="utf-8"))
    plot = loss_curve_png(result["history"], result["val_history"], title=f"{century}: {plan.preset}")
    return dg.MaterializeResult(
        metadata={
            **reported,
            "loss_curve_plot": png_metadata(plot),
            "preset": plan.preset,
            "n_docs": dg.MetadataValue.int(n_docs),
            "n_chars": dg.MetadataValue.int(n_chars or 0),
            "gpus": dg.MetadataValue.int(plan.gpu_count),
            "job": dg.MetadataValue.path(str(plan.job_path)),
        },
        data_version=file_data_version(plan.out_dir / "model"),
    )
