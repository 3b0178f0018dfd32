"""Teacher stage: passages per century, situations from them, values/rights/duties for each situation.

`situations` and `vrd_candidates` call the teacher model and share the `teacher` pool (pipelines/concurrency.py),
so in-process backends run one step at a time. Every teacher call goes through the generation cache, so a rebuild
with unchanged inputs and settings makes no backend call. Quarantined answers are rejects with stage `teacher`
(files `rejects/situations/` and `rejects/vrd_candidates/`).
"""

from collections.abc import Callable

import dagster as dg
import polars as pl

from pipelines.concurrency import TEACHER_POOL
from pipelines.metadata import report_teacher_progress, stage_asset, stage_result
from pipelines.resources import SettingsResource, TeacherResource
from sources.schema import PASSAGES, PRETRAIN, SITUATIONS
from sources.settings import Settings, config_from
from teacher.client import Teacher, TeacherStats
from teacher.generate import GenerationConfig, StageResult, extract_situations, generate_vrd
from teacher.passages import PassageConfig, select_passages


def passage_config(settings: Settings) -> PassageConfig:
    t = settings.teacher
    return config_from(PassageConfig, t, target_chars=t.passage_chars, per_century=t.passages_per_century)


def generation_config(settings: Settings) -> GenerationConfig:
    t = settings.teacher
    return config_from(
        GenerationConfig, t, vrd_max_new_tokens=t.max_new_tokens, max_situations=t.max_situations_per_century
    )


def teacher_metadata(result: StageResult, teacher: Teacher) -> dict:
    """Calls made, cache hits, parse rate, malformed count, tokens/s and a markdown sample for the asset page."""
    s: TeacherStats = result.teacher
    return {
        "dagster/row_count": result.frame.height,  # rows written; n_in / n_out count the inputs (situations...)
        "teacher_backend": f"{teacher.backend.name}:{teacher.backend.model}",
        "backend_calls": s.counters.backend_calls,
        "cache_hits": s.counters.cache_hits,
        "parse_rate": round(s.parse_rate, 4),
        "malformed": s.counters.parse_failures,
        "quarantined": s.counters.quarantined,
        "backend_errors": s.counters.backend_errors,
        "tokens_per_s": round(s.tokens_per_s, 2),
        "teacher_stats": s.to_dict(),
        "build_id": teacher.build_id,
        "sample": dg.MetadataValue.md(result.sample_markdown),
    }


@stage_asset("teacher", ["pretrain_corpus"], ("python", "parquet"), partitioned=True, reads="teacher")
def passages(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Passages cut on sentence / verse ends (with char spans into the document), the most morally loaded ones
    picked round-robin over sources and documents up to `teacher.passages_per_century`."""
    config, store, century = settings.get(), settings.store(), context.partition_key
    pretrain = store.read("pretrain_corpus", century, schema=PRETRAIN, missing_ok=True)
    frame, rejects, stats = select_passages(pretrain, century, passage_config(config))
    path = store.write("passages", frame, century)
    store.write_rejects("passages", rejects, century)
    preview = ["doc_id", "char_start", "char_end", "text"]
    return stage_result(stats, frame, path, preview, {"dagster/row_count": frame.height})


def teacher_stage_asset(deps: list[str]):
    """A century-partitioned asset that calls the teacher: one at a time per host (`TEACHER_POOL`)."""
    return stage_asset("teacher", deps, ("python", "parquet"), partitioned=True, pool=TEACHER_POOL, reads="teacher")


def run_teacher_stage(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    teacher: TeacherResource,
    upstream: tuple[str, dict],
    stage: Callable[[pl.DataFrame, Teacher, GenerationConfig], StageResult],
    preview: list[str],
) -> dg.MaterializeResult:
    """Read the upstream partition, run one generation stage through the teacher, write rows and rejects."""
    config, store, century = settings.get(), settings.store(), context.partition_key
    table = context.asset_key.to_user_string()
    rows = store.read(upstream[0], century, schema=upstream[1], missing_ok=True)
    with teacher.open(config, context.run_id) as t:
        report_teacher_progress(context, table, t)
        result = stage(rows, t, generation_config(config))
    path = store.write(table, result.frame, century)
    store.write_rejects(table, result.rejects, century)
    return stage_result(result.stats, result.frame, path, preview, teacher_metadata(result, t))


@teacher_stage_asset(["passages"])
def situations(
    context: dg.AssetExecutionContext, settings: SettingsResource, teacher: TeacherResource
) -> dg.MaterializeResult:
    """One to `teacher.situations_per_passage` ValuePrism-style situations per passage, true to its century,
    from the teacher (cached, repaired, quarantined as `malformed_output` / `backend_error`)."""
    return run_teacher_stage(context, settings, teacher, ("passages", PASSAGES), extract_situations, ["situation"])


@teacher_stage_asset(["situations"])
def vrd_candidates(
    context: dg.AssetExecutionContext, settings: SettingsResource, teacher: TeacherResource
) -> dg.MaterializeResult:
    """Values, rights and duties per situation, each with valence (supports / opposes / either) and explanation;
    a missing valence is asked for separately. `relevance` is left for `vrd_relevant` to score."""
    preview = ["kind", "text", "valence", "explanation"]
    return run_teacher_stage(context, settings, teacher, ("situations", SITUATIONS), generate_vrd, preview)
