import shutil

import dagster as dg
import polars as pl
import pytest

from assets.evaluation import NOT_WORSE_THAN_BASE, value_eval, value_trend
from pipelines.build import default_partitions, run_build
from pipelines.definitions import defs as project_defs
from pipelines.partitions import CENTURIES, century_partitions
from pipelines.progress import PlainReporter
from sources.schema import VALUE_EVAL, VALUE_TREND_MODEL
from sources.settings import Settings
from sources.storage import Store
from tests.eval_helpers import benchmark_rows, data_trend, scored_by
from tests.helpers import settings_resource
from training.finetune import MODEL_DIR
from training.launch import finetuned_dir


def materialize(asset, tiny_model, partition: str | None = None) -> dg.ExecuteInProcessResult:
    overrides = {"training": {"base_model": str(tiny_model)}}
    resources = {"settings": settings_resource(overrides)}
    return dg.materialize([asset], resources=resources, partition_key=partition, raise_on_error=False)


def check_of(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == NOT_WORSE_THAN_BASE
    return evaluation


def test_value_eval_scores_the_benchmark_and_warns_when_worse_than_base(home, tiny_model, monkeypatch):
    store = Store(home)
    store.write("benchmark", benchmark_rows())
    shutil.copytree(tiny_model, finetuned_dir(home, "C017") / MODEL_DIR)  # "finetuned" = the base: not worse

    result = materialize(value_eval, tiny_model, "C017")
    assert result.success
    (event,) = result.asset_materializations_for_node("value_eval")
    meta = {key: value.value for key, value in event.metadata.items()}
    assert meta["n_items"] == 5 and meta["n_out"] == 5 and meta["majority_baseline"] == pytest.approx(0.6)
    assert meta["accuracy"] == meta["base_accuracy"] and meta["worse_than_base"] is False
    assert sum(meta["confusion"].values()) == 5 and meta["own_century"]["n"] == 3
    assert "honesty" in meta["value_profile"] and "support_share" in meta["value_profile"]
    scored = store.read("value_eval", "C017", schema=VALUE_EVAL)
    assert scored.height == 5 and scored["predicted"].to_list() == scored["base_predicted"].to_list()
    evaluation = check_of(result)
    assert evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN

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
