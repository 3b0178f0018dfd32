import math

import polars as pl
import pytest

from sources.schema import VALUE_EVAL, VALUE_TREND_MODEL
from tests.eval_helpers import benchmark_rows, data_trend, scored_by
from training.data import prepare_data, sample_texts
from training.evaluation import (
    CenturyEval,
    consecutive_cosines,
    evaluate_century,
    frequent_items,
    profile_cosine,
    value_trend_report,
)
from training.finetune import MODEL_DIR, train
from training.plots import value_trend_png
from training.presets import make_config

CENTURIES = ["C016", "C017", "C018", "C019", "C020"]


@pytest.fixture(scope="module")
def trained_model(tiny_model, tiny_tokenizer, tmp_path_factory):
    """The tiny model after 4 in-process steps on a few verses: a real, if weak, finetuned model dir."""
    from tests.training.conftest import VERSES

    out_dir = tmp_path_factory.mktemp("finetuned")
    cfg = make_config("cpu-tiny", base_model=str(tiny_model), out_dir=str(out_dir), seq_len=32, batch_size=4,
                      max_steps=4, eval_interval=4, eval_batches=1, checkpoint_interval=4)  # fmt: skip
    train(cfg, prepare_data(VERSES, tiny_tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed))
    return out_dir / MODEL_DIR


def test_value_eval_scores_every_item_against_gold_and_the_cached_base(trained_model, tiny_model, tmp_path,
                                                                       monkeypatch):  # fmt: skip
    items = benchmark_rows()
    result = evaluate_century(trained_model, items, "C017", base_dir=tiny_model, cache_dir=tmp_path)
    scored = result.scored
    assert scored.columns == list(VALUE_EVAL) and scored.height == items.height  # every item, not only C017's
    assert (
        set(scored["model_century"]) == {"C017"} and scored["predicted"].is_in(["supports", "opposes", "either"]).all()
    )
    assert scored["base_predicted"].is_not_null().all()
    assert result.accuracy["n"] == 5 and result.own_century["n"] == 3
    assert result.accuracy["majority_baseline"] == pytest.approx(3 / 5)
    assert sum(result.accuracy["confusion"].values()) == 5
    honesty = result.profile.filter(pl.col("item") == "honesty").row(0, named=True)
    assert honesty["n"] == 2  # "Honesty" and "honesty." are one item
    assert len(list(tmp_path.glob("base-*.parquet"))) == 1

    def score_items(model_dir, items, batch_size=16):
        assert str(model_dir) != str(tiny_model), "the base model was scored again"
        return result.scored.drop("model_century", "base_predicted")

    monkeypatch.setattr("training.evaluation.score_items", score_items)
    again = evaluate_century(trained_model, items, "C020", base_dir=tiny_model, cache_dir=tmp_path)
    assert again.base_accuracy == result.base_accuracy and again.own_century["n"] == 2


def test_worse_than_base_compares_accuracies():
    def judged(ours, base):
        acc = {"accuracy": ours}
        return CenturyEval(pl.DataFrame(), acc, acc, None if base is False else {"accuracy": base}, pl.DataFrame())

    assert judged(0.4, 0.5).worse_than_base is True
    assert judged(0.5, 0.5).worse_than_base is False and judged(0.6, 0.5).worse_than_base is False
    assert judged(0.5, False).worse_than_base is None and judged(None, 0.5).worse_than_base is None


def test_trend_puts_model_profiles_beside_the_data_and_compares_consecutive_centuries():
    evals = {
        "C017": scored_by("C017", ["supports", "supports", "supports", "supports", "supports"]),
        "C019": scored_by("C019", ["supports"] * 5).clear(),  # written empty: no model, skipped
        "C020": scored_by("C020", ["opposes", "opposes", "opposes", "opposes", "opposes"]),
    }
    report = value_trend_report(evals, data_trend(), CENTURIES, top_k=2)
    assert report.evaluated == ["C017", "C020"] and report.skipped == ["C016", "C018", "C019"]
    table = report.table
    assert table.columns == list(VALUE_TREND_MODEL)
    assert sorted(set(zip(table["kind"], table["item"], strict=True))) == [
        ("duty", "duty to feed one s children"), ("duty", "duty to obey the law"), ("value", "compassion"),
        ("value", "honesty"),
    ]  # fmt: skip
    honesty = table.filter(pl.col("item") == "honesty").sort("century")
    assert honesty["n"].to_list() == [2, 2] and honesty["model_supports"].to_list() == [1.0, 0.0]
    assert honesty["data_supports"].to_list() == [1.0, 0.0] and honesty["data_n"].to_list() == [10, 6]
    assert table.filter(pl.col("item") == "duty to obey the law")["data_supports"].is_null().all()
    # model: all-supports vs all-opposes profiles share no component; data: honesty (1,0,0) + compassion vs (0,1,0)
    assert report.cosines == [{"from": "C017", "to": "C020", "model": 0.0, "data": 0.0}]
    summary = report.summary.rows_by_key("century", named=True, unique=True)
    assert summary["C017"]["accuracy"] == pytest.approx(3 / 5) and summary["C017"]["base_accuracy"] == 1.0
    assert summary["C020"]["model_support_share"] == 0.0
    assert summary["C017"]["data_support_share"] == 1.0 and summary["C020"]["data_support_share"] == 0.0

    png = value_trend_png(report, CENTURIES)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert value_trend_png(value_trend_report({}, data_trend(), CENTURIES), CENTURIES).startswith(b"\x89PNG")


def test_profile_cosine_over_the_union_of_items():
    a = pl.DataFrame({"kind": ["value", "value"], "item": ["x", "y"], "s": [1.0, 1.0], "o": [0.0, 0.0]})
    b = pl.DataFrame({"kind": ["value", "value"], "item": ["y", "z"], "s": [1.0, 0.0], "o": [0.0, 1.0]})
    assert profile_cosine(a, a, ["s", "o"]) == pytest.approx(1.0)
    assert profile_cosine(a, b, ["s", "o"]) == pytest.approx(1 / (math.sqrt(2) * math.sqrt(2)))  # only y agrees
    assert profile_cosine(a, a.clear(), ["s", "o"]) is None
    # data: C017 honesty (1,0,0) + compassion (1,0,0) vs C018 honesty (.5,.5,0): 0.5 / (sqrt(2) * sqrt(.5))
    same = [{"from": "C017", "to": "C018", "model": pytest.approx(1.0), "data": pytest.approx(0.5)}]
    evals = {c: scored_by(c, ["supports"] * 5) for c in ("C017", "C018")}
    report = value_trend_report(evals, data_trend(), CENTURIES)
    assert consecutive_cosines(report.table, data_trend(), ["C017", "C018"]) == same


def test_frequent_items_counts_distinct_benchmark_rows_per_kind():
    both = pl.concat([scored_by("C017", ["supports"] * 5), scored_by("C020", ["opposes"] * 5)])
    items = frequent_items(both, top_k=1)
    assert items.rows() == [("duty", "duty to feed one s children", 1), ("value", "honesty", 2)]


def test_cpu_presets_train_on_a_bounded_sample():
    texts = [f"{i:03d} " + "x" * 96 for i in range(100)]  # 100 docs of 100 chars
    sample = sample_texts(texts, 1_050, seed=3)
    assert sum(map(len, sample)) == 1_050 and len(sample) == 11 and len(sample[-1]) == 50
    assert sample == sample_texts(texts, 1_050, seed=3) != sample_texts(texts, 1_050, seed=4)
    assert sample_texts(texts, None, 0) == texts == sample_texts(texts, 10**6, 0)
    assert make_config("cpu-tiny").max_chars and make_config("cpu-small").max_chars
    assert make_config("gpu-small").max_chars is None
