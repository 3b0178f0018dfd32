"""Cluster report: sizes, centuries and sources per near-duplicate cluster, and the oversized-cluster rules."""

import dagster as dg
import polars as pl

from quality.dedup.cluster_report import ClusterLimits, cluster_report, cluster_size_histogram, oversized_clusters
from sources.schema import CLUSTER_REPORT, DOCUMENTS, DUPLICATES, frame_of
from sources.storage import Store
from tests.helpers import make_doc


def duplicates(rows: list[tuple[str, str, str, str, float]]) -> pl.DataFrame:
    """(doc_id, century, kept_doc_id, kept_century, similarity) -> a DUPLICATES frame."""
    return pl.DataFrame(
        [
            {
                "doc_id": d,
                "century": c,
                "kept_doc_id": k,
                "kept_century": kc,
                "kept_year": 1611,
                "reason": "exact_duplicate" if s == 1.0 else "near_duplicate",
                "similarity": s,
            }
            for d, c, k, kc, s in rows
        ],
        schema=DUPLICATES,
    )


DUPS = duplicates(
    [
        ("web", "C019", "kjv", "C017", 0.91),
        ("asv", "C020", "kjv", "C017", 0.84),
        ("kjv2", "C017", "kjv", "C017", 1.0),
        ("sotu2", "C019", "sotu1", "C019", 1.0),
    ]
)
SOURCES = pl.DataFrame(
    {"doc_id": ["kjv", "web", "asv", "kjv2", "sotu1", "sotu2"], "source": ["bible"] * 4 + ["sotu"] * 2}
)


def test_cluster_report_counts_members_centuries_and_sources():
    report = cluster_report(DUPS, SOURCES)
    assert report.columns == list(CLUSTER_REPORT)
    assert report["cluster_id"].to_list() == ["kjv", "sotu1"]  # largest first
    kjv = report.row(0, named=True)
    assert kjv["size"] == 4 and kjv["n_centuries"] == 3
    assert kjv["centuries"] == "C017,C019,C020" and kjv["sources"] == "bible"
    assert kjv["min_similarity"] == 0.84
    assert kjv["largest_century"] == "C017" and kjv["largest_century_members"] == 2
    sotu = report.row(1, named=True)
    assert (sotu["size"], sotu["centuries"], sotu["min_similarity"]) == (2, "C019", 1.0)


def test_member_without_a_source_row_is_unknown_not_lost():
    report = cluster_report(DUPS, SOURCES.filter(pl.col("doc_id") != "asv"))
    assert report.row(0, named=True)["sources"] == "bible,unknown"


def test_empty_duplicates_give_an_empty_typed_report():
    report = cluster_report(duplicates([]), SOURCES)
    assert report.is_empty() and report.schema == pl.Schema(CLUSTER_REPORT)


def test_oversized_by_size_and_by_share_name_the_cluster():
    report = cluster_report(DUPS, SOURCES)
    per_century = {"C017": 100, "C019": 4, "C020": 10}
    by_size = oversized_clusters(report, per_century, ClusterLimits(max_size=3, max_share=None))
    assert [(c.cluster_id, c.rule) for c in by_size] == [("kjv", "max_size")]
    # sotu1: both members in C019, 2 / 4 documents = 50 %; kjv: 2 / 100 in C017
    by_share = oversized_clusters(report, per_century, ClusterLimits(max_size=None, max_share=0.25))
    assert [(c.cluster_id, c.century, c.share, c.rule) for c in by_share] == [("sotu1", "C019", 0.5, "max_share")]
    assert "sotu1" in by_share[0].describe() and "C019" in by_share[0].describe()
    assert oversized_clusters(report, per_century, ClusterLimits(max_size=None, max_share=None)) == []


def test_histogram_is_a_png():
    assert cluster_size_histogram(cluster_report(DUPS, SOURCES))[:8] == b"\x89PNG\r\n\x1a\n"
    assert cluster_size_histogram(cluster_report(duplicates([]), SOURCES))[:8] == b"\x89PNG\r\n\x1a\n"


def test_asset_and_check_warn_on_a_cluster_swallowing_a_century(home, monkeypatch):
    """The asset writes the report with a histogram; the non-blocking check fails with WARN and names it."""
    from assets.dedup import near_duplicate_cluster_report
    from pipelines.checks import near_duplicate_cluster_size
    from pipelines.resources import SettingsResource

    store = Store(home)
    text = "The law of the land is written in the hearts of the people and kept by their judges. " * 5
    copies = [make_doc(text + "x" * i, source="letters", source_doc_id=f"l{i}", year=1850) for i in range(4)]
    other = make_doc("A wholly different letter about the harvest and the weather this year. " * 5, year=1850)
    store.write("documents_clean", frame_of([*copies, other], DOCUMENTS), "C019")
    store.write(
        "near_duplicate_clusters",
        duplicates([(d.doc_id, "C019", copies[0].doc_id, "C019", 0.95) for d in copies[1:]]),
    )
    monkeypatch.setenv("CHRONOPRISM__DEDUP__CLUSTER_WARN_SHARE", "0.5")
    result = dg.materialize(
        [near_duplicate_cluster_report, near_duplicate_cluster_size], resources={"settings": SettingsResource()}
    )
    assert result.success  # a warning never fails the run
    (event,) = result.asset_materializations_for_node("near_duplicate_cluster_report")
    assert event.metadata["clusters"].value == 1 and "data:image/png;base64" in event.metadata["histogram"].value
    assert store.read("near_duplicate_cluster_report")["size"].to_list() == [4]
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert copies[0].doc_id[:12] in evaluation.description and "80% of C019" in evaluation.description


def test_a_tie_names_the_earliest_century():
    report = cluster_report(duplicates([("web", "C019", "kjv", "C017", 0.9)]), SOURCES)
    assert report.select("largest_century", "largest_century_members").row(0) == ("C017", 1)
