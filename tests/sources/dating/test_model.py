import polars as pl
import pytest

from sources.dating import disagreements, load_latest, save_estimator, train_estimator, train_or_reuse
from sources.dating.model import century_years, date_of, fingerprint
from sources.dating.store import load_estimator
from tests.sources.dating.corpus import IN_DOMAIN_CONFIG, SMALL_CONFIG, held_back, small_documents, small_estimator


def test_estimate_places_unseen_chapters_in_their_century():
    estimator = small_estimator()
    for code, century in (("wyc", "C014"), ("kjv", "C017"), ("web", "C021")):
        estimates = estimator.estimate(held_back(code))
        assert [e.century for e in estimates].count(century) >= len(estimates) - 1, (code, estimates)
        century_, year, confidence = estimates[0][:3]  # a (century, year, confidence, ...) tuple
        assert century_years(century_)[0] <= year <= century_years(century_)[1] and 0 < confidence <= 1


def test_report_has_held_out_metrics_per_source():
    report = small_estimator().report
    assert report["accuracy"] > 0.8 and 0 < report["macro_f1"] <= 1
    assert set(report["per_source"]) == {"bible", "sotu"}
    assert report["passages"]["test"]["bible"] > 0 and report["n_test"] == sum(report["passages"]["test"].values())
    n = len(report["classes"])
    assert len(report["confusion"]) == n and sum(map(sum, report["confusion"])) == report["n_test"]


def test_estimated_rows_are_never_trained_on_and_two_centuries_are_needed():
    docs = small_documents()
    relabelled = docs.with_columns(pl.lit("estimated").alias("date_method"))
    assert fingerprint(docs, SMALL_CONFIG) != fingerprint(docs.head(10), SMALL_CONFIG)
    with pytest.raises(ValueError, match="two centuries"):
        train_estimator(relabelled, SMALL_CONFIG)
    with pytest.raises(ValueError, match="two centuries"):
        train_estimator(docs.filter(pl.col("century") == "C014"), SMALL_CONFIG)


def test_current_century_never_dates_into_the_future():
    from sources.dates import current_year

    estimate = small_estimator().estimate(held_back("web")[:1])[0]
    assert estimate.century == "C021" and estimate.year <= current_year()
    assert date_of(estimate).year_max <= current_year() and date_of(estimate).method == "estimated"


def test_save_load_and_reuse_by_fingerprint(tmp_path):
    estimator = small_estimator()
    path = save_estimator(estimator, tmp_path)
    assert {p.name for p in path.iterdir()} == {"model.joblib", "report.json", "confusion.png", "reliability.png"}
    assert (path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    loaded = load_latest(tmp_path)
    assert loaded.version == estimator.version
    texts = held_back("kjv")
    assert loaded.estimate(texts) == estimator.estimate(texts)
    again = train_or_reuse(small_documents(), tmp_path, IN_DOMAIN_CONFIG)  # same data + config: nothing to train
    assert again.cached and again.estimator.version == estimator.version
    assert load_estimator(tmp_path, "dating-v1-missing") is None
    (path / "model.joblib").write_bytes(b"not a pickle")
    assert load_latest(tmp_path) is None  # unreadable: retrained, never a crash
    assert train_or_reuse(small_documents(), tmp_path, IN_DOMAIN_CONFIG).cached is False
    assert load_latest(tmp_path).version == estimator.version


def test_disagreements_flag_a_misdated_document():
    docs = small_documents().filter(pl.col("source") == "bible")
    wycliffe = docs.filter(pl.col("century") == "C014").head(2)
    misdated = wycliffe.with_columns(pl.lit(1950).alias("year"), pl.lit("C020").alias("century"))
    sample = pl.concat([docs.filter(pl.col("century") == "C020").head(5), misdated])
    flagged = disagreements(sample, small_estimator(), min_gap=2, min_confidence=0.9)
    assert set(flagged["doc_id"]) == set(misdated["doc_id"])
    assert flagged["estimated_century"].to_list() == ["C014", "C014"] and (flagged["gap"] == 6).all()
    placed = misdated.with_columns(pl.lit("estimated").alias("date_method"))
    assert disagreements(placed, small_estimator()).is_empty()  # its own placements are not re-judged
