import polars as pl

from sources.dating import keep_rejected, place_undated
from sources.schema import ESTIMATED_DOCUMENTS, UNDATED, doc_id_of
from tests.sources.dating.corpus import held_back, small_estimator

JUNK = "qz xv kk " * 60


def undated_rows() -> pl.DataFrame:
    texts = [held_back("wyc")[0], held_back("kjv")[0], JUNK, held_back("web")[0]]
    reasons = ["missing_date", "unparseable_date", "missing_date", "future_year"]
    return pl.DataFrame(
        {
            "row_ref": [f"c.jsonl:{i}" for i in range(4)],
            "source": "user:c",
            "source_doc_id": [f"u{i}" for i in range(4)],
            "title": None,
            "author": None,
            "language": "en",
            "text": texts,
            "reason": reasons,
            "detail": "no year, date, or year_min + year_max",
            "license": "cc0",
            "provenance": "file:///c",
        },
        schema=UNDATED,
    )


def test_confident_rows_are_placed_and_the_rest_stay_rejected_with_the_estimate():
    placement = place_undated(undated_rows(), small_estimator(), threshold=0.9)
    docs, rejects, stats = placement.documents, placement.rejects, placement.stats
    assert stats.n_in == 4 and stats.n_out + stats.n_rejected == 4
    assert docs.schema == pl.Schema(ESTIMATED_DOCUMENTS)
    assert docs["century"].to_list() == ["C014", "C017"]
    assert set(docs["date_method"]) == {"estimated"} and (docs["date_confidence"] >= 0.9).all()
    assert docs["date_model"].to_list() == [small_estimator().version] * 2
    assert docs["doc_id"].to_list() == [doc_id_of("user:c", "u0"), doc_id_of("user:c", "u1")]
    assert docs["year"].to_list() == [1349, 1649] and docs["year_min"].to_list() == [1300, 1600]
    # junk text: scored, not confident enough; a row rejected for another reason (future_year) is never scored
    assert rejects["reason"].to_list() == ["missing_date", "future_year"]
    assert set(rejects["stage"]) == {"date_estimate"}
    assert "< threshold 0.9" in rejects["detail"][0] and "not scored" in rejects["detail"][1]


def test_threshold_decides_between_placing_and_keeping():
    rows = undated_rows()
    junk_confidence = small_estimator().estimate([JUNK])[0].confidence
    everything = place_undated(rows, small_estimator(), threshold=0.0)
    assert everything.stats.n_out == 3  # every scorable row, however unsure
    just_above = place_undated(rows, small_estimator(), threshold=junk_confidence)
    assert just_above.stats.n_out == 3
    just_below = place_undated(rows, small_estimator(), threshold=min(junk_confidence + 1e-6, 1.0))
    assert just_below.stats.n_out == 2


def test_estimation_off_keeps_every_row_rejected():
    kept = keep_rejected(undated_rows(), "date estimation is off (corpus.estimate_dates)")
    assert kept.documents.is_empty() and kept.rejects.height == 4
    assert kept.rejects["reason"].to_list() == ["missing_date", "unparseable_date", "missing_date", "future_year"]
    assert all(d.endswith("date estimation is off (corpus.estimate_dates)") for d in kept.rejects["detail"])
