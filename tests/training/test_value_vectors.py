import math

import polars as pl
import pytest

from sources.schema import VALUE_VECTORS
from tests.eval_helpers import benchmark_rows
from training.value_vectors import (
    DIMENSION_NAMES,
    OTHER,
    build_value_vectors,
    cosine,
    coverage,
    data_vector,
    dimension_of,
    model_vector,
    progress_scores,
    vectors_table,
)


@pytest.mark.parametrize(
    ("text", "dimension"),
    [
        ("Right to life", "life_safety"),
        ("Duty to obey the law", "authority_order"),
        ("Respect for authority", "authority_order"),  # authority comes before dignity
        ("honesty.", "honesty_truth"),
        ("Religious freedom", "religion_sanctity"),
        ("Duty to feed one's children", "family_loyalty"),
        ("Compassion", "care_compassion"),
        ("Loyalty to one's friends", "family_loyalty"),
        ("Right to own property", "property_prosperity"),
        ("Mastery of the harpsichord", OTHER),
    ],
)
def test_dimension_of_groups_recurring_items(text, dimension):
    assert dimension_of(text) == dimension


def as_dict(vector: pl.DataFrame) -> dict[str, tuple[float, int]]:
    return {d: (s, n) for d, s, n in vector.select("dimension", "score", "n").iter_rows()}


def test_data_vector_is_the_mean_sign_of_the_teachers_labels():
    vector = as_dict(data_vector(benchmark_rows()))
    assert list(vector) == list(DIMENSION_NAMES)
    assert vector["care_compassion"] == (1.0, 1)  # Compassion: supports
    assert vector["honesty_truth"] == (-0.5, 2)  # Honesty opposes, honesty. either
    assert vector["authority_order"] == (1.0, 1) and vector["family_loyalty"] == (1.0, 1)
    assert vector["knowledge_reason"] == (0.0, 0)  # no items: no evidence either way


def test_model_vector_reads_the_models_log_probabilities():
    items = benchmark_rows()
    # P(supports) = 0.7, P(opposes) = 0.2, P(either) = 0.1 on every item, written as log-probs
    scored = items.with_columns(
        logp_supports=pl.lit(math.log(0.7)), logp_opposes=pl.lit(math.log(0.2)), logp_either=pl.lit(math.log(0.1))
    )
    vector = as_dict(model_vector(scored))
    assert vector["honesty_truth"][0] == pytest.approx(0.5) and vector["honesty_truth"][1] == 2
    # log-probs need not be normalised over the three choices: a constant shift changes nothing
    shifted = scored.with_columns(pl.col("logp_supports", "logp_opposes", "logp_either") - 5.0)
    assert as_dict(model_vector(shifted))["honesty_truth"][0] == pytest.approx(0.5)


def test_cosine_is_none_without_evidence():
    assert cosine([1, 0], [1, 0]) == pytest.approx(1.0) and cosine([1, 0], [-1, 0]) == pytest.approx(-1.0)
    assert cosine([0, 0], [1, 0]) is None


def vector_of(**scores: float) -> pl.DataFrame:
    return pl.DataFrame({"dimension": list(DIMENSION_NAMES)}).with_columns(
        pl.col("dimension").replace_strict(scores, default=0.0, return_dtype=pl.Float64).alias("score"),
        pl.lit(1, pl.Int64).alias("n"),
    )


def test_follow_and_predict_against_the_data_with_the_base_as_baseline():
    data = {
        "C017": vector_of(religion_sanctity=1.0),
        "C018": vector_of(religion_sanctity=1.0, autonomy_liberty=1.0),
        "C020": vector_of(autonomy_liberty=1.0),
    }
    models = {"C017": vector_of(religion_sanctity=1.0), "C020": vector_of(autonomy_liberty=1.0, life_safety=1.0)}
    table = vectors_table(models, vector_of(life_safety=1.0), data)
    assert table.columns == list(VALUE_VECTORS) and set(table["side"]) == {"model", "base", "data"}
    report = progress_scores(table, ["C016", "C017", "C018", "C019", "C020", "C021"])
    rows = {row["century"]: row for row in report.per_century.iter_rows(named=True)}
    assert list(rows) == ["C017", "C020"]
    assert rows["C017"]["follow"] == pytest.approx(1.0)
    assert rows["C017"]["next_century"] == "C018" and rows["C017"]["predict"] == pytest.approx(1 / math.sqrt(2))
    assert rows["C020"]["follow"] == pytest.approx(1 / math.sqrt(2)) and rows["C020"]["predict"] is None  # no C021
    assert rows["C017"]["base_follow"] == pytest.approx(0.0) and rows["C020"]["base_follow"] == pytest.approx(0.0)
    assert report.follow == pytest.approx((1 + 1 / math.sqrt(2)) / 2)
    assert report.predict == pytest.approx(1 / math.sqrt(2))  # averaged over the centuries that have a next one
    assert report.base_follow == pytest.approx(0.0) and report.follow > report.base_follow


def test_build_value_vectors_from_eval_rows_base_scores_and_annotations():
    items = benchmark_rows()
    scored = items.with_columns(logp_supports=pl.lit(-0.1), logp_opposes=pl.lit(-3.0), logp_either=pl.lit(-3.0))
    table = build_value_vectors({"C017": scored, "C013": scored.clear()}, scored, items)
    sides = table.group_by("side", "century").len().sort("side", "century", nulls_last=True)
    assert sides.rows() == [
        ("base", None, len(DIMENSION_NAMES)),
        ("data", "C017", len(DIMENSION_NAMES)),
        ("data", "C020", len(DIMENSION_NAMES)),
        ("model", "C017", len(DIMENSION_NAMES)),
    ]  # the century without eval rows has no model vector


def test_coverage_counts_every_item_once():
    counts = coverage(benchmark_rows()["text"].to_list())
    assert sum(counts.values()) == 5 and counts[OTHER] == 0 and counts["honesty_truth"] == 2
