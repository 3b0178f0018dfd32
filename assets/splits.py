"""Relevance filter, VRD dedup, and the training / benchmark splits built from the kept items."""

from contextlib import ExitStack

import dagster as dg
import polars as pl

from assets.teacher import generation_metadata
from dataset.decontam import decontaminate
from dataset.human_review import apply_human_review
from dataset.splits import (
    SplitConfig,
    benchmark_references,
    build_benchmark,
    build_preference_pairs,
    build_sft_mixture,
    build_vrd_rows,
    read_split_rows,
)
from dataset.trend import plot_value_trend, value_trend
from pipelines.concurrency import TEACHER_POOL
from pipelines.metadata import png_metadata, report_teacher_progress, stage_asset, stage_result
from pipelines.resources import SettingsResource, TeacherResource
from quality.relevance import TeacherRelevanceScorer, filter_relevance
from quality.vrd_dedup import VrdDedupConfig, dedup_vrd
from sources.schema import (
    HUMAN_REVIEW,
    PASSAGES,
    SITUATIONS,
    VRD,
    VRD_CANDIDATES,
    VRD_SPLIT,
)
from sources.settings import Settings
from sources.stats import StageStats, counts_by
from sources.storage import Store, write_bytes_atomic

VRD_PREVIEW = ["kind", "text", "valence", "relevance", "explanation"]


def split_config(settings: Settings) -> SplitConfig:
    return SplitConfig(
        validation_fraction=settings.publish.validation_fraction,
        test_fraction=settings.publish.test_fraction,
        salt=settings.publish.split_salt,
        relevance_negatives=settings.filter.relevance_negatives,
    )


def counted(stage: str, n: int) -> StageStats:
    """Stats for a stage that reshapes rather than filters: every row in goes out."""
    stats = StageStats(stage, n_in=n, n_out=n)
    return stats.check()


@stage_asset(
    "vrd",
    ["vrd_candidates", "situations"],
    ("python", "parquet"),
    partitioned=True,
    pool=TEACHER_POOL,
    reads="filter.teacher",
)
def vrd_relevant(
    context: dg.AssetExecutionContext, settings: SettingsResource, teacher: TeacherResource
) -> dg.MaterializeResult:
    """Candidates whose relevance (teacher P(yes)) reaches `filter.relevance_threshold`; the rest are rejects
    with reason `irrelevant` (score in detail) or `unscored`. The teacher is opened only for unscored rows."""
    config, store, century = settings.get(), settings.store(), context.partition_key
    candidates = store.read("vrd_candidates", century, schema=VRD_CANDIDATES, missing_ok=True)
    situations = store.read("situations", century, schema=SITUATIONS, missing_ok=True)
    with ExitStack() as opened:
        scorer = None
        if config.filter.relevance_scorer == "teacher":
            scorer = TeacherRelevanceScorer(
                lambda: report_teacher_progress(
                    context, "vrd_relevant", opened.enter_context(teacher.open(config, context.run_id))
                ),
                calibrate=config.filter.relevance_calibration == "content_free",
            )
        result = filter_relevance(candidates, config.filter.relevance_threshold, situations, scorer)
        extra = {
            "threshold": config.filter.relevance_threshold,
            "scored_by": dict(scorer.methods) if scorer else {},
            "content_free_prior": scorer.prior if scorer else {},
            "teacher": scorer.teacher_stats() if scorer else {},
            "backend_calls": scorer.backend_calls() if scorer else 0,
        }
    path = store.write("vrd_relevant", result.kept, century)
    store.write_rejects("relevance", result.rejects, century)
    return stage_result(result.stats, result.kept, path, VRD_PREVIEW, extra)


# reads `collapse` too: its check (vrd_collapse) must run again when the collapse thresholds or `blocking` change
@stage_asset("vrd", ["vrd_relevant"], ("python", "parquet"), partitioned=True, reads="filter.collapse")
def vrd(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Relevant candidates after KaleidoSys-style dedup per situation and kind (ROUGE-L and embedding cosine
    against every kept item); dropped near-duplicates are rejects naming the kept candidate."""
    config, store, century = settings.get(), settings.store(), context.partition_key
    relevant = store.read("vrd_relevant", century, schema=VRD_CANDIDATES)
    dedup_config = VrdDedupConfig(config.filter.rouge_threshold, config.filter.cosine_threshold)
    result = dedup_vrd(relevant, embedder(), dedup_config)
    path = store.write("vrd", result.vrd, century)
    store.write_rejects("vrd_dedup", result.rejects, century)
    by_kind = counts_by(result.vrd, "kind")
    extra = {"items_by_kind": by_kind, **generation_metadata(store, "vrd", century, config)}  # [issue 19]
    return stage_result(result.stats, result.vrd, path, VRD_PREVIEW, extra)


def embedder():
    from quality.embeddings import embed

    return embed


@stage_asset("splits", ["vrd", "situations", "passages", "human_review"], reads="publish.filter")
def vrd_splits(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """ValuePrism-like rows (situation, kind, text, valence, explanation) with lineage ids, split train /
    validation / test by a hash of the content group (a Bible chapter in every edition, a document with all its
    passages): no group spans two splits, and new data never moves an existing group."""
    config, store = settings.get(), settings.store()
    kept = store.read_all("vrd", schema=VRD)
    kept, human_rejects = apply_human_review(kept, store.read("human_review", schema=HUMAN_REVIEW, missing_ok=True))
    store.write_rejects("human_review", human_rejects)  # [issue 18] items judged wrong in Label Studio
    situations = store.read_all("situations", schema=SITUATIONS)
    passages = store.read_all("passages", schema=PASSAGES)
    documents = store.scan("documents")  # [issue 13] source_doc_id: a Bible chapter's split is one in every edition
    lineage = documents.select("doc_id", "source", "source_doc_id").collect() if documents is not None else None
    rows = build_vrd_rows(kept, situations, passages, split_config(config), lineage)
    path = store.write("vrd_splits", rows)
    counts = counts_by(rows, "split")
    stats = StageStats("vrd_splits", n_in=kept.height, n_out=rows.height)
    if kept.height > rows.height:
        stats.reject("no_situation", kept.height - rows.height)
    if human_rejects.height:  # [issue 18]
        stats.n_in += human_rejects.height
        stats.reject("human_rejected", human_rejects.height)
    situations_per_split = dict(rows.group_by("split").agg(pl.col("situation_id").n_unique()).iter_rows())
    return stage_result(
        stats.check(),
        rows,
        path,
        ["split", "century", "situation", "kind", "text", "valence"],
        extra={"rows_per_split": counts, "situations_per_split": situations_per_split},
    )


@stage_asset("splits", ["vrd_splits"], reads="publish.filter")
def sft_mixture(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Kaleido's four tasks as (task, input, output) rows for train and validation situations: generate,
    relevance (with as many negatives sampled from other situations), valence, explanation."""
    config, store = settings.get(), settings.store()
    rows = read_split_rows(store, "vrd_splits", VRD_SPLIT, ("train", "validation"))
    mixture = build_sft_mixture(rows, split_config(config))
    path = store.write("sft_mixture", mixture)
    counts = counts_by(mixture, "split")
    by_task = counts_by(mixture, "task")
    return stage_result(
        counted("sft_mixture", mixture.height),
        mixture,
        path,
        ["split", "task", "input", "output"],
        extra={"rows_per_split": counts, "rows_per_task": by_task},
    )


@stage_asset("splits", ["vrd_splits", "vrd_candidates"], reads="publish.filter")
def preference_pairs(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """{prompt, chosen, rejected} for training situations: a kept item vs one the relevance filter or the
    dedup dropped."""
    store = settings.store()
    rows = read_split_rows(store, "vrd_splits", VRD_SPLIT, ("train",))
    candidates = store.read_all("vrd_candidates", schema=VRD_CANDIDATES)
    rejects = store.read_rejects()
    rejects = rejects.filter(pl.col("stage").is_in(["relevance", "vrd_dedup"]))
    pairs = build_preference_pairs(rows, candidates, rejects)
    path = store.write("preference_pairs", pairs)
    by_reason = counts_by(pairs, "rejected_reason")
    return stage_result(
        counted("preference_pairs", pairs.height),
        pairs,
        path,
        ["prompt", "chosen", "rejected", "rejected_reason"],
        extra={"pairs_by_rejected_reason": by_reason},
    )


@stage_asset("splits", ["vrd_splits", "sft_mixture", "preference_pairs", "pretrain_corpus"], reads="publish.filter")
def benchmark(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Held-out (test split) situations with their gold items, decontaminated: rows whose situation or item
    shares an exact text or a 13-word n-gram with a training row or the pretrain corpus are removed."""
    config, store = settings.get(), settings.store()
    result = decontaminate(build_benchmark_input(store), benchmark_references(store), config.filter.decontam_ngram)
    path = store.write("benchmark", result.clean)
    stats = StageStats("benchmark", n_in=result.clean.height + result.removed.height, n_out=result.clean.height)
    for rule, n in result.report.items():
        stats.reject(rule, n)
    return stage_result(
        stats.check(),
        result.clean,
        path,
        ["century", "situation", "kind", "text", "valence"],
        extra={"decontamination_removed_by_rule": result.report, "ngram": config.filter.decontam_ngram},
    )


def build_benchmark_input(store: Store) -> pl.DataFrame:
    return build_benchmark(read_split_rows(store, "vrd_splits", VRD_SPLIT, ("test",)))


@stage_asset("splits", ["vrd_splits"], ("polars", "parquet", "matplotlib"), reads="publish")
def value_trend_data(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Per century: the most frequent values / rights / duties (normalised text) and their valence shares, from
    the data alone, before any model is trained; a heatmap plot in the metadata."""
    config, store = settings.get(), settings.store()
    rows = read_split_rows(store, "vrd_splits", VRD_SPLIT)
    trend = value_trend(rows, config.publish.trend_top_k)
    path = store.write("value_trend_data", trend)
    png = plot_value_trend(trend)
    plot_path = write_bytes_atomic(store.home / "reports" / "value_trend_data.png", png)
    return stage_result(
        counted("value_trend_data", trend.height),
        trend,
        path,
        ["century", "kind", "rank", "item", "n", "share_of_situations", "supports", "opposes"],
        extra={"plot": png_metadata(png), "plot_path": dg.MetadataValue.path(str(plot_path))},
    )
