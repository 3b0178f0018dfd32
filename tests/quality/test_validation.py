import polars as pl
import pytest

from quality.validation import (
    suite_for,
    validate_split_disjointness,
    validate_table,
)
from sources.schema import DOCUMENTS, VRD, century_bounds, frame_of
from tests.helpers import make_doc
from tests.vrd_helpers import candidate


def documents(n: int = 3) -> pl.DataFrame:
    return frame_of([make_doc(f"text {i} " * 40, year=1600 + i, source_doc_id=str(i)) for i in range(n)], DOCUMENTS)


def vrd_rows() -> pl.DataFrame:
    rows = [candidate("s1", kind, text, "supports", 0.8) for kind, text in (("value", "Mercy"), ("duty", "Pay"))]
    return frame_of([{**r, "dedup_group": r["candidate_id"], "keep_reason": "most_relevant"} for r in rows], VRD)


def test_good_tables_pass_both_levels():
    assert validate_table(documents(), "documents", "C017").success
    assert validate_table(vrd_rows(), "vrd", "C017").success
    assert validate_table(vrd_rows(), "vrd", "C017", level="warn").success


BLOCKING_CASES = {
    "schema_missing_column": ("documents", lambda d: d.drop("year_max"), "schema"),
    "schema_wrong_dtype": ("documents", lambda d: d.with_columns(pl.col("year").cast(pl.Int64)), "schema"),
    "null_id": ("documents", lambda d: d.with_columns(pl.lit(None, pl.String).alias("doc_id")), "not_null"),
    "duplicate_id": ("documents", lambda d: pl.concat([d, d.head(1)]), "unique"),
    "year_outside_century": (
        "documents",
        lambda d: d.with_columns(pl.lit(1850, pl.Int32).alias("year")),
        "year_in_century",
    ),
    "valence_outside_domain": ("vrd", lambda d: d.with_columns(pl.lit("neutral").alias("valence")), "valence_domain"),
    "relevance_above_one": ("vrd", lambda d: d.with_columns(pl.lit(1.5).alias("relevance")), "relevance_range"),
    "relevance_null": (
        "vrd",
        lambda d: d.with_columns(pl.lit(None, pl.Float64).alias("relevance")),
        "relevance_range",
    ),
    "kind_outside_domain": ("vrd", lambda d: d.with_columns(pl.lit("virtue").alias("kind")), "kind_domain"),
}


@pytest.mark.parametrize("case", sorted(BLOCKING_CASES))
def test_each_blocking_rule_fails_on_a_crafted_bad_table(case):
    table, corrupt, kind = BLOCKING_CASES[case]
    good = documents() if table == "documents" else vrd_rows()
    result = validate_table(corrupt(good), table, "C017")
    assert not result.success and kind in result.failures, result.failures
    assert all(d["kind"] in result.failures for d in result.details)


def test_failures_carry_sample_values():
    bad = vrd_rows().with_columns(pl.lit("neutral").alias("valence"))
    result = validate_table(bad, "vrd", "C017")
    (detail,) = [d for d in result.details if d["kind"] == "valence_domain"]
    assert detail["sample"] == ["neutral", "neutral"] and result.failures == {"valence_domain": 2}


def test_warn_rules_report_without_touching_blocking():
    short = vrd_rows().with_columns(pl.lit("x").alias("text"), pl.lit(None, pl.String).alias("explanation"))
    assert validate_table(short, "vrd", "C017").success
    soft = validate_table(short, "vrd", "C017", level="warn")
    assert not soft.success and set(soft.failures) == {"item_length", "explanation_missing"}
    assert not validate_table(vrd_rows().head(0), "vrd", "C017", level="warn").success  # empty_table


def test_split_disjointness():
    train = pl.DataFrame({"situation_id": ["a", "b", "b"], "split": ["train", "train", "train"]})
    assert validate_split_disjointness({"vrd": train, "benchmark": pl.DataFrame({"situation_id": ["c"]})}).success
    leaked = validate_split_disjointness({"vrd": train, "benchmark": pl.DataFrame({"situation_id": ["b"]})})
    assert not leaked.success and leaked.failures == {"split_disjoint": 2}


def test_suites_and_century_bounds():
    assert century_bounds("C013") == (1200, 1299) and century_bounds("C021") == (2000, 2099)
    kinds = {rule.kind for rule in suite_for("benchmark") if rule.level == "blocking"}
    assert {"schema", "not_null", "unique", "valence_domain", "kind_domain"} <= kinds
    with pytest.raises(KeyError):
        suite_for("nope")
