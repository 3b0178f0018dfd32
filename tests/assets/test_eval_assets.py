import math
import shutil

import dagster as dg
import polars as pl
import pytest

from assets.evaluation import NOT_WORSE_THAN_BASE, progress_scores, value_eval, value_trend, value_vectors
from pipelines.build import default_partitions, run_build
from pipelines.definitions import defs as project_defs
from pipelines.partitions import CENTURIES, century_partitions
from pipelines.progress import PlainReporter
from sources.schema import PROGRESS_SCORES, VALUE_EVAL, VALUE_TREND_MODEL, VALUE_VECTORS, VRD_SPLIT, conform
from sources.settings import Settings
from sources.storage import Store
from tests.eval_helpers import benchmark_rows, data_trend, perturbed_model, scored_by
from tests.helpers import settings_resource
from training.evaluation import score_items
from training.finetune import MODEL_DIR
from training.launch import finetuned_dir


def materialize(asset, tiny_model, partition: str | None = None) -> dg.ExecuteInProcessResult:
    overrides = {"training": {"base_model": str(tiny_model)}}
    resources = {"settings": settings_resource(overrides)}
    assets = asset if isinstance(asset, list) else [asset]
    return dg.materialize(assets, resources=resources, partition_key=partition, raise_on_error=False)


def check_of(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == NOT_WORSE_THAN_BASE
    return evaluation


def test_value_eval_scores_the_benchmark_and_warns_when_worse_than_base(home, tiny_model, monkeypatch):
    store = Store(home)
    store.write("benchmark", benchmark_rows())
    finetuned = perturbed_model(tiny_model, finetuned_dir(home, "C017") / MODEL_DIR)  # weights differ from the base

    result = materialize(value_eval, tiny_model, "C017")
    assert result.success
    (event,) = result.asset_materializations_for_node("value_eval")
    meta = {key: value.value for key, value in event.metadata.items()}
    assert meta["n_items"] == 5 and meta["n_out"] == 5 and meta["majority_baseline"] == pytest.approx(0.6)
    assert sum(meta["confusion"].values()) == 5 and meta["own_century"]["n"] == 3
    assert "honesty" in meta["value_profile"] and "support_share" in meta["value_profile"]
    scored = store.read("value_eval", "C017", schema=VALUE_EVAL)
    # the model column holds the finetuned weights' scores and the base column the base's, not one model twice
    own, base = score_items(finetuned, benchmark_rows()), score_items(tiny_model, benchmark_rows())
    logps = ["logp_supports", "logp_opposes", "logp_either"]
    assert scored.select(logps).to_numpy() == pytest.approx(own.select(logps).to_numpy())
    assert scored.select(logps).to_numpy() != pytest.approx(base.select(logps).to_numpy(), abs=1e-3)
    assert scored["predicted"].to_list() == own["predicted"].to_list()
    assert scored["base_predicted"].to_list() == base["predicted"].to_list()
    accuracy, base_accuracy = meta["accuracy"], meta["base_accuracy"]
    assert accuracy == (own["predicted"] == own["valence"]).mean()
    assert base_accuracy == (base["predicted"] == base["valence"]).mean()
    evaluation = check_of(result)
    assert meta["worse_than_base"] is (accuracy < base_accuracy) and evaluation.passed is (accuracy >= base_accuracy)
    assert evaluation.severity == dg.AssetCheckSeverity.WARN

    # a finetuned model that gets every item wrong, against the cached base scores
    def wrong(model_dir, items, batch_size=16):
        assert "finetuned" in str(model_dir), "the base model was scored again instead of read from the cache"
        flipped = pl.when(pl.col("valence") == "supports").then(pl.lit("opposes")).otherwise(pl.lit("supports"))
        return scored.drop("model_century", "base_predicted").with_columns(predicted=flipped)

    monkeypatch.setattr("training.evaluation.score_items", wrong)
    worse = materialize(value_eval, tiny_model, "C017")
    assert worse.success  # a warning, not a failure
    (event,) = worse.asset_materializations_for_node("value_eval")
    assert event.metadata["accuracy"].value == 0.0 and event.metadata["worse_than_base"].value is True
    evaluation = check_of(worse)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN


def test_value_eval_skips_a_century_without_a_model(home, tiny_model):
    Store(home).write("benchmark", benchmark_rows())
    result = materialize(value_eval, tiny_model, "C013")
    assert result.success and check_of(result).passed
    (event,) = result.asset_materializations_for_node("value_eval")
    assert event.metadata["skipped"].value == "no finetuned model"
    assert Store(home).read("value_eval", "C013").is_empty()


def test_value_trend_plots_the_evaluated_centuries_and_names_the_rest(home, tiny_model):
    store = Store(home)
    store.write("value_eval", scored_by("C017", ["supports", "opposes", "supports", "either", "supports"]), "C017")
    store.write("value_eval", scored_by("C020", ["opposes"] * 5), "C020")
    store.write("value_eval", scored_by("C013", ["supports"] * 5).clear(), "C013")  # a skipped century
    store.write("value_trend_data", data_trend())
    result = materialize(value_trend, tiny_model)
    assert result.success
    (event,) = result.asset_materializations_for_node("value_trend")
    meta = {key: value.value for key, value in event.metadata.items()}
    assert meta["evaluated_centuries"] == ["C017", "C020"]
    assert meta["skipped_centuries"] == [c for c in CENTURIES if c not in ("C017", "C020")]
    (pair,) = meta["cosine_consecutive"]
    assert pair["from"] == "C017" and pair["to"] == "C020" and 0 <= pair["model"] < 1 and pair["data"] == 0.0
    assert "data:image/png;base64," in meta["plot"] and (home / "reports" / "value_trend.png").is_file()
    assert "| C017 | 5 | 1.0 |" in meta["summary"]  # accuracy of the C017 answers vs gold
    table = store.read("value_trend", schema=VALUE_TREND_MODEL)
    assert set(table["century"]) == {"C017", "C020"} and table.filter(pl.col("data_n").is_not_null()).height == 3


def test_a_build_without_partitions_trains_and_evaluates_only_the_eval_centuries():
    graph = project_defs.resolve_asset_graph()
    settings = Settings.load({"training": {"eval_centuries": ["C020", "C017"]}})
    for name in ("finetuned_model", "value_eval"):
        assert default_partitions(graph, dg.AssetKey(name), None, settings) == ["C017", "C020"]
        assert default_partitions(graph, dg.AssetKey(name), ["C019"], settings) == ["C019"]  # --partition wins
    assert default_partitions(graph, dg.AssetKey("pretrain_corpus"), None, settings) == list(CENTURIES)


def test_the_planner_runs_training_assets_only_for_the_eval_centuries(home):
    @dg.asset(partitions_def=century_partitions, group_name="quality")
    def corpus(): ...

    @dg.asset(partitions_def=century_partitions, deps=[corpus], group_name="training")
    def model(): ...

    @dg.asset(deps=[model], group_name="training")
    def trend(): ...

    settings = settings_resource({"training": {"eval_centuries": ["C013", "C021"]}})
    defs = dg.Definitions(assets=[corpus, model, trend], resources={"settings": settings})
    with dg.DagsterInstance.ephemeral() as instance:
        results = run_build(defs, None, None, instance, reporter=PlainReporter(lambda line: None))
        ran = {(key.to_user_string(), r.partition) for r in results for key in r.step.keys}
        assert {p for name, p in ran if name == "model"} == {"C013", "C021"}
        assert {p for name, p in ran if name == "corpus"} == set(CENTURIES) and ("trend", None) in ran
        results = run_build(defs, "model", ["C019"], instance, reporter=PlainReporter(lambda line: None))
        assert [(r.step.keys, r.partition) for r in results] == [([dg.AssetKey("model")], "C019")]


def test_value_eval_scores_the_latest_stage(home, tiny_model):
    store = Store(home)
    store.write("benchmark", benchmark_rows())
    shutil.copytree(tiny_model, finetuned_dir(home, "C017") / MODEL_DIR)
    shutil.copytree(tiny_model, finetuned_dir(home, "C017") / "sft" / MODEL_DIR)
    result = materialize(value_eval, tiny_model, "C017")
    (event,) = result.asset_materializations_for_node("value_eval")
    assert event.metadata["model_dir"].value == str(finetuned_dir(home, "C017") / "sft" / MODEL_DIR)


def test_value_vectors_and_progress_scores_with_the_base_as_baseline(home, tiny_model):
    store = Store(home)
    store.write("benchmark", benchmark_rows())
    store.write("value_eval", scored_by("C017", ["supports"] * 5), "C017")
    store.write("value_eval", scored_by("C020", ["supports"] * 5).clear(), "C020")  # no model for C020
    annotations = benchmark_rows().with_columns(
        passage_id=pl.lit("p"), relevance=pl.lit(1.0), split=pl.lit("test")
    )  # the teacher's labels of C017 and C020 items
    store.write("vrd_splits", conform(annotations, VRD_SPLIT))
    result = materialize([value_vectors, progress_scores], tiny_model)
    assert result.success
    vectors = store.read("value_vectors", schema=VALUE_VECTORS)
    assert sorted(set(zip(vectors["side"], vectors["century"].fill_null("-"), strict=True))) == [
        ("base", "-"), ("data", "C017"), ("data", "C020"), ("model", "C017"),
    ]  # fmt: skip
    # every scored item has P(supports) = e^-1 / (e^-1 + e^-2 + e^-3) and P(opposes) = e^-2 / (...)
    margin = (math.exp(-1) - math.exp(-2)) / (math.exp(-1) + math.exp(-2) + math.exp(-3))
    model = vectors.filter((pl.col("side") == "model") & (pl.col("n") > 0))
    assert model["score"].to_list() == pytest.approx([margin] * model.height)
    (event,) = result.asset_materializations_for_node("value_vectors")
    assert event.metadata["benchmark_coverage"].value["honesty_truth"] == 2 and "life_safety" in str(
        event.metadata["dimensions"].value
    )
    (event,) = result.asset_materializations_for_node("progress_scores")
    meta = {key: value.value for key, value in event.metadata.items()}
    scores = store.read("progress_scores", schema=PROGRESS_SCORES)
    assert scores["century"].to_list() == ["C017"] and scores["next_century"].to_list() == ["C018"]
    assert scores["predict"].to_list() == [None]  # no C018 annotations
    assert -1 <= meta["follow"] <= 1 and -1 <= meta["base_follow"] <= 1 and "predict" not in meta
    assert "data:image/png;base64," in meta["plot"] and (home / "reports" / "progress_scores.png").is_file()
