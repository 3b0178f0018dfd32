"""Date estimation assets: opt-in placement with accounting, the estimator asset, the check, `chronoprism date`."""

import json

import dagster as dg
import polars as pl

from assets.dating import date_estimator, dates_agree_with_estimate, estimated_documents
from assets.documents import documents, raw_assets
from pipelines.resources import SettingsResource
from sources.dating import save_estimator
from sources.registry import SOURCES
from sources.schema import DOCUMENTS, empty
from sources.storage import Store
from tests.helpers import GOOD_TEXT, settings_resource, write_jsonl
from tests.sources.dating.corpus import held_back, small_documents, small_estimator

JUNK = "qz xv kk " * 60


def undated_corpus(directory):
    """2 dated rows, 4 rows without a usable date (3 scorable + junk), 1 future year (never scored)."""
    write_jsonl(
        directory / "dated.jsonl",
        [{"id": "d1", "text": GOOD_TEXT, "year": 1850}, {"id": "d2", "text": held_back("kjv")[1], "year": 1611}],
    )
    write_jsonl(
        directory / "undated.jsonl",
        [
            {"id": "u1", "text": held_back("wyc")[0]},
            {"id": "u2", "text": held_back("kjv")[0], "date": "in the reign of good king James"},
            {"id": "u3", "text": JUNK},
            {"id": "u4", "text": GOOD_TEXT, "year": 3000},
        ],
    )
    (directory / "bare.txt").write_text(held_back("web")[0], encoding="utf-8")  # no sidecar
    return directory


def settings_for(corpus, **corpus_overrides) -> SettingsResource:
    overrides = {f"corpus.{key}": value for key, value in corpus_overrides.items()}
    return settings_resource(overrides, corpus_dirs=[str(corpus)], include_bundled=False)


def build_documents(settings: SettingsResource, partitions=("C014", "C019")) -> None:
    resources = {"settings": settings}
    assert dg.materialize([*raw_assets, estimated_documents], resources=resources).success
    for partition in partitions:
        assert dg.materialize(
            [documents, estimated_documents, *raw_assets],
            selection=[documents],
            partition_key=partition,
            resources=resources,
        ).success


def test_opt_in_places_confident_undated_rows_and_accounts_for_every_row(home, tmp_path):
    save_estimator(small_estimator(), home / "models")  # the saved model the placement uses
    settings = settings_for(undated_corpus(tmp_path / "corpus"), estimate_dates=True, estimate_threshold=0.9)
    build_documents(settings)
    store = Store(home)

    placed = store.read("estimated_documents")
    assert sorted(placed["century"]) == ["C014", "C017", "C021"]
    assert set(placed["date_method"]) == {"estimated"} and set(placed["date_model"]) == {small_estimator().version}
    assert placed.filter(pl.col("century") == "C021")["source_doc_id"].to_list() == ["bare.txt"]  # no sidecar
    c014 = store.read("documents", "C014", schema=DOCUMENTS)
    assert c014["date_method"].to_list() == ["estimated"] and c014["source_doc_id"].to_list() == ["u1"]

    ingest = store.read("rejects/ingest", "user_corpus")
    assert ingest["reason"].to_list() == ["future_year"]  # undated rows went to the estimator instead
    kept = store.read("rejects/date_estimate", "user_corpus")
    assert kept["reason"].to_list() == ["missing_date"] and "< threshold 0.9" in kept["detail"][0]

    # every row read ends in exactly one place: a document (dated or placed) or a rejects row
    raw, undated = store.read("raw_user_corpus"), store.read("undated_user_corpus")
    assert (raw.height, undated.height, ingest.height) == (2, 4, 1)
    assert undated.height == placed.height + kept.height
    rows_read = 2 + 4 + 1  # dated.jsonl, undated.jsonl, bare.txt
    assert raw.height + placed.height + store.read_rejects().height == rows_read

    from pipelines.cli import date_methods

    assert date_methods(store) == {"estimated": 1, "field:year": 1}  # C014 and C019 were built


def test_placed_rows_publish_their_date_method_and_confidence(home, tmp_path, models_dir):
    """[issue 13] estimated_documents -> documents -> clean -> dedup -> pretrain_corpus -> hf_dataset: a placed row
    reaches the published pretrain config and the HistText tree with `date_method = "estimated"` and the
    probability it was placed with; a row dated by its metadata has a null confidence."""
    import datasets

    from assets.clean import documents_clean
    from assets.dedup import documents_dedup, near_duplicate_clusters, pretrain_corpus
    from assets.publish import hf_dataset
    from quality.tokens import tokenizer_path
    from sources.histtext import TREE_DIR

    tokenizer_dir = tokenizer_path(models_dir).parent  # pretrain_corpus counts tokens with it
    (home / "models").mkdir()
    (home / "models" / tokenizer_dir.name).symlink_to(tokenizer_dir)
    save_estimator(small_estimator(), home / "models")
    settings = settings_for(undated_corpus(tmp_path / "corpus"), estimate_dates=True, estimate_threshold=0.9)
    build_documents(settings, partitions=("C014", "C019"))
    resources = {"settings": settings}
    for century in ("C014", "C019"):
        assert dg.materialize([documents_clean], partition_key=century, resources=resources).success
    assert dg.materialize([near_duplicate_clusters], resources=resources).success
    for century in ("C014", "C019"):
        assert dg.materialize([documents_dedup, pretrain_corpus], partition_key=century, resources=resources).success
    assert dg.materialize([hf_dataset], resources=resources).success

    store = Store(home)
    placed = store.read("estimated_documents").filter(pl.col("source_doc_id") == "u1").row(0, named=True)
    assert placed["date_confidence"] >= 0.9
    out = home / "publish" / "chronoprism"
    pretrain = datasets.load_dataset(str(out), "pretrain", cache_dir=str(tmp_path / "hf"))
    (estimated,) = pretrain["C014"]
    assert (estimated["doc_id"], estimated["date_method"]) == (placed["doc_id"], "estimated")
    assert estimated["date_confidence"] == placed["date_confidence"]
    (dated,) = pretrain["C019"]
    assert (dated["date_method"], dated["date_confidence"]) == ("field:year", None)
    (record,) = json.loads(next((out / "histtext" / TREE_DIR / "C014").glob("*.json")).read_text())
    assert (record["date_method"], record["date_confidence"]) == ("estimated", placed["date_confidence"])


def test_estimation_is_off_by_default_and_accounting_is_unchanged(home, tmp_path):
    save_estimator(small_estimator(), home / "models")
    settings = settings_for(undated_corpus(tmp_path / "corpus"))
    build_documents(settings, partitions=("C014",))
    store = Store(home)
    assert store.read("estimated_documents").is_empty()
    assert not store.exists("undated_user_corpus")
    ingest = store.read("rejects/ingest", "user_corpus")
    reasons = ingest["reason"].value_counts().sort("reason").rows()
    assert reasons == [("future_year", 1), ("missing_date", 3), ("unparseable_date", 1)]
    assert store.read("documents", "C014").is_empty()


def test_threshold_setting_controls_placement(home, tmp_path):
    save_estimator(small_estimator(), home / "models")
    corpus = undated_corpus(tmp_path / "corpus")
    resources = {"settings": settings_for(corpus, estimate_dates=True, estimate_threshold=0.0)}
    assert dg.materialize([*raw_assets, estimated_documents], resources=resources).success
    assert Store(home).read("estimated_documents").height == 4  # even the junk row, at threshold 0
    resources = {"settings": settings_for(corpus, estimate_dates=True, estimate_threshold=1.0)}
    result = dg.materialize([*raw_assets, estimated_documents], resources=resources)
    meta = result.asset_materializations_for_node("estimated_documents")[0].metadata
    assert meta["n_in"].value == 4 and meta["n_out"].value + meta["n_rejected"].value == 4
    assert meta["model_version"].value == small_estimator().version


def write_documents(store: Store, docs: pl.DataFrame) -> None:
    for century in docs["century"].unique():
        store.write("documents", docs.filter(pl.col("century") == century), century)


def test_date_estimator_asset_trains_reports_and_reuses(home):
    store = Store(home)
    write_documents(store, small_documents())
    resources = {"settings": SettingsResource()}
    result = dg.materialize([date_estimator], resources=resources)
    meta = result.asset_materializations_for_node("date_estimator")[0].metadata
    assert 0.8 < meta["accuracy"].value <= 1 and 0 < meta["macro_f1"].value <= 1
    assert 0 <= meta["ece"].value <= 1 and 0 <= meta["ece_uncalibrated"].value <= 1 and meta["temperature"].value > 0
    assert "data:image/png;base64," in meta["confusion_matrix"].value
    assert "data:image/png;base64," in meta["reliability_diagram"].value
    assert set(meta["per_source"].value) == {"bible", "sotu"} and meta["reused_saved_model"].value is False
    assert "bible:kjv" in meta["unseen_per_source"].value and 0 <= meta["unseen_passage_accuracy"].value <= 1
    assert meta["unseen_passage_accuracy"].value < meta["accuracy"].value  # unseen editions are harder
    version = meta["model_version"].value
    assert (home / "models" / "dating" / "LATEST").read_text().strip() == version

    again = dg.materialize([date_estimator], resources=resources)
    meta = again.asset_materializations_for_node("date_estimator")[0].metadata
    assert meta["reused_saved_model"].value is True and meta["model_version"].value == version


def test_disagreement_check_warns_about_a_misdated_document(home):
    store = Store(home)
    for spec in SOURCES:
        store.write(f"raw_{spec.name}", empty(DOCUMENTS))
    bible = small_documents().filter(pl.col("source") == "bible")
    misdated = (
        bible.filter(pl.col("century") == "C014")
        .head(1)
        .with_columns(pl.lit(1950).cast(pl.Int32).alias("year"), pl.lit("C020").alias("century"))
    )
    store.write("raw_user_corpus", pl.concat([bible.filter(pl.col("century") == "C020").head(5), misdated]))
    resources = {"settings": SettingsResource()}

    def run_check():
        result = dg.materialize(
            [documents, dates_agree_with_estimate, estimated_documents, *raw_assets],
            selection=dg.AssetSelection.assets(documents) | dg.AssetSelection.checks(dates_agree_with_estimate),
            partition_key="C020",
            resources=resources,
        )
        assert result.success  # a warning never fails the run
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation

    assert run_check().passed and "skipped" in run_check().metadata  # no model saved yet
    save_estimator(small_estimator(), home / "models")
    evaluation = run_check()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["n_flagged"].value == 1 and evaluation.metadata["n_checked"].value == 6
    assert "C014" in evaluation.metadata["flagged"].value


def test_chronoprism_date_prints_century_and_confidence(home, tmp_path, capsys):
    from pipelines.cli import main

    files = []
    for code in ("wyc", "web"):
        path = tmp_path / f"{code}.txt"
        path.write_text(held_back(code)[2], encoding="utf-8")
        files.append(str(path))
    save_estimator(small_estimator(), home / "models")
    assert main(["date", *files]) == 0
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[0].startswith("C014  c.1349  ") and lines[0].endswith("wyc.txt")
    assert lines[1].startswith("C021  ") and lines[1].endswith("web.txt")
    assert small_estimator().version in out.err and "training" not in out.err

    assert main(["date", "--json", files[0], str(tmp_path / "missing.txt")]) == 1
    out = capsys.readouterr()
    assert json.loads(out.out)["estimates"][0]["century"] == "C014" and "missing.txt: cannot read" in out.err


def test_chronoprism_date_trains_from_the_bundled_corpus_when_no_model_is_saved(home, tmp_path, capsys):
    from pipelines.cli import main

    path = tmp_path / "wyc.txt"
    path.write_text(held_back("wyc")[3], encoding="utf-8")
    small = ["--set", "corpus.max_docs_per_source=15", "--set", 'corpus.bible_translations=["wyc","kjv","web"]']
    assert main(["date", str(path), *small]) == 0
    out = capsys.readouterr()
    assert "no saved date estimator" in out.err and "training one from the bundled corpus" in out.err
    assert out.out.startswith("C014  ")
    assert (home / "models" / "dating" / "LATEST").is_file()
    assert main(["date", str(path)]) == 0 and "training" not in capsys.readouterr().err  # saved: reused
