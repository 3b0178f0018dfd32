import dagster as dg
import polars as pl

from assets.documents import documents, raw_assets
from pipelines.build import root_cause
from pipelines.resources import SettingsResource
from sources.schema import DOCUMENTS
from sources.storage import Store
from tests.helpers import make_bad_corpus


def test_one_partition_materializes_in_process(home, tmp_path):
    expected = make_bad_corpus(tmp_path / "corpus", giant_line_bytes=2 * 1024 * 1024)
    settings = SettingsResource(
        corpus_dirs=[str(tmp_path / "corpus")],
        include_bundled=False,
        overrides_json='{"corpus.max_line_chars": 1000000}',
    )
    resources = {"settings": settings}
    result = dg.materialize(raw_assets, resources=resources)
    assert result.success
    result = dg.materialize([documents, *raw_assets], selection=[documents], partition_key="C018", resources=resources)
    assert result.success

    store = Store(home)
    docs = store.read("documents", "C018", schema=DOCUMENTS)
    assert docs.height == expected["C018"] and set(docs["century"]) == {"C018"}
    (materialization,) = result.asset_materializations_for_node("documents")
    assert materialization.metadata["n_out"].value == expected["C018"]
    assert "| source |" in materialization.metadata["preview"].value
    raw_rejects = store.read("rejects/ingest", "user_corpus")
    assert raw_rejects.height > 10 and set(raw_rejects["stage"]) == {"ingest"}


def test_rerun_rewrites_only_its_partition(home, tmp_path):
    make_bad_corpus(tmp_path / "corpus", giant_line_bytes=1024 * 1024)
    resources = {"settings": SettingsResource(corpus_dirs=[str(tmp_path / "corpus")], include_bundled=False)}
    assert dg.materialize(raw_assets, resources=resources).success
    for partition in ("C018", "C019", "C018"):
        assert dg.materialize(
            [documents, *raw_assets], selection=[documents], partition_key=partition, resources=resources
        ).success
    store = Store(home)
    assert store.partitions("documents") == ["C018", "C019"]
    assert store.read("documents", "C018")["doc_id"].is_unique().all()


def test_documents_fails_clearly_without_raw_tables(home):
    result = dg.materialize(
        [documents, *raw_assets],
        selection=[documents],
        partition_key="C017",
        resources={"settings": SettingsResource()},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "has not been materialized" in root_cause(failure.step_failure_data.error)


def test_duplicate_doc_ids_across_sources_are_rejected():
    from sources.documents import assemble_documents
    from sources.schema import frame_of
    from tests.helpers import make_doc

    doc = make_doc("text " * 50, year=1750)
    docs, rejects, stats = assemble_documents([frame_of([doc], DOCUMENTS), frame_of([doc], DOCUMENTS)], "C018")
    assert docs.height == 1 and rejects["reason"].to_list() == ["duplicate_id"]
    assert stats.n_in == 2 and stats.n_out == 1
    assert pl.DataFrame(rejects).height == 1
