import dagster as dg
import polars as pl
import pytest

from assets.teacher import passages, situations, vrd_candidates
from pipelines.resources import TeacherResource
from sources.schema import PASSAGES, SITUATIONS, VRD_CANDIDATES
from sources.storage import Store
from teacher.cache import status_summary
from tests.helpers import ADDRESS, GENEALOGY, SERMON, pretrain_frame, settings_resource

TEACHER_ASSETS = [passages, situations, vrd_candidates]


def resources(**overrides) -> dict:
    return {"settings": settings_resource(overrides), "teacher": TeacherResource()}


@pytest.fixture
def store(home, monkeypatch):
    monkeypatch.delenv("CHRONOPRISM_BUILD_ID", raising=False)  # each materialize is its own build (its run id)
    store = Store(home)
    texts = {"sermon": ("bible", SERMON * 4), "genealogy": ("bible", GENEALOGY * 4), "address": ("sotu", ADDRESS * 4)}
    store.write("pretrain_corpus", pretrain_frame(texts), "C017")
    return store


def metadata(result, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_teacher_stage_builds_a_partition_and_an_unchanged_rebuild_calls_nothing(store, home):
    settings = {"teacher.backend": "scripted", "teacher.passages_per_century": 3}
    first = dg.materialize(TEACHER_ASSETS, partition_key="C017", resources=resources(**settings))
    assert first.success
    rows = store.read("passages", "C017", schema=PASSAGES)
    sits = store.read("situations", "C017", schema=SITUATIONS)
    cands = store.read("vrd_candidates", "C017", schema=VRD_CANDIDATES)
    assert rows.height == 3 and 0 < sits.height <= 6 and cands.height >= sits.height
    assert set(sits["passage_id"]) <= set(rows["passage_id"]) and set(cands["situation_id"]) <= set(
        sits["situation_id"]
    )
    meta = metadata(first, "vrd_candidates")
    assert meta["backend_calls"] > 0 and meta["cache_hits"] == 0 and meta["parse_rate"] == 1.0
    assert {"malformed", "quarantined", "tokens_per_s", "sample", "teacher_backend"} <= set(meta)
    assert meta["n_in"] == sits.height and meta["dagster/row_count"] == cands.height
    status = status_summary(home)
    assert status["last_build"]["build_id"] == first.run_id and status["last_build"]["backend_calls"] > 0

    second = dg.materialize(TEACHER_ASSETS, partition_key="C017", resources=resources(**settings))
    assert second.success
    status = status_summary(home)
    assert status["last_build"]["build_id"] == second.run_id
    assert status["last_build"]["backend_calls"] == 0 and status["last_build"]["cache_hits"] > 0
    assert store.read("vrd_candidates", "C017").equals(cands)
    assert metadata(second, "situations")["backend_calls"] == 0


def test_faults_end_as_quarantined_rejects_with_the_stage_still_balanced(store):
    settings = {
        "teacher.backend": "scripted",
        "teacher.fault_share": 0.6,
        "teacher.fault_seed": 1,
        "teacher.max_retries": 0,
        "teacher.retry_backoff_s": 0,
    }
    result = dg.materialize(TEACHER_ASSETS, partition_key="C017", resources=resources(**settings))
    assert result.success
    rejects = store.read_rejects()
    teacher_rejects = rejects.filter(pl.col("stage") == "teacher")
    assert teacher_rejects.height > 0
    assert set(teacher_rejects["reason"]) <= {"malformed_output", "backend_error", "no_valence", "situation_cap"}
    for asset in ("situations", "vrd_candidates"):
        meta = metadata(result, asset)
        assert meta["n_in"] == meta["n_out"] + meta["n_rejected"]


def test_an_empty_century_writes_empty_tables(store):
    result = dg.materialize(
        TEACHER_ASSETS, partition_key="C013", resources=resources(**{"teacher.backend": "scripted"})
    )
    assert result.success
    assert store.read("vrd_candidates", "C013").is_empty()


@pytest.mark.slow
def test_the_packaged_model_runs_the_stage(store, models_dir):
    settings = {
        "teacher.models_dir": str(models_dir),
        "teacher.passages_per_century": 2,
        "teacher.situations_per_passage": 1,
        "teacher.max_new_tokens": 48,
        "teacher.max_retries": 0,
    }
    result = dg.materialize(TEACHER_ASSETS, partition_key="C017", resources=resources(**settings))
    assert result.success
    meta = metadata(result, "situations")
    assert meta["teacher_backend"] == "transformers:smollm2-135m-instruct"
    assert meta["backend_calls"] == 2 and meta["tokens_per_s"] > 0
    assert metadata(result, "vrd_candidates")["n_in"] == store.read("situations", "C017").height
