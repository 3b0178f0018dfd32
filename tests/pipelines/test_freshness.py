"""The build's freshness verdicts: Dagster's own staleness (bulk-computed, checked against Dagster's resolver) plus
settings, corpus files, deleted outputs and blocking checks."""

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from pipelines.freshness import FreshnessJudge, corpus_fingerprint, section_hashes
from sources.settings import Settings
from tests.pipelines.toy_graph import PARTS, QUIET, build_all, make_graph, run


def verdicts(defs, instance):
    """{(asset, partition): stale?} by our judge and by Dagster's resolver."""
    graph = defs.resolve_asset_graph()
    judge = FreshnessJudge(instance, graph, Settings.load())
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    ours, dagsters = {}, {}
    for key in graph.toposorted_asset_keys:
        for p in PARTS.get_partition_keys() if graph.get(key).is_partitioned else [None]:
            ours[key.to_user_string(), p] = judge.dagster_reason(key, p) is not None
            dagsters[key.to_user_string(), p] = resolver.get_status(key, p) != StaleStatus.FRESH
    return ours, dagsters


def stale_set(verdict):
    return {key for key, stale in verdict.items() if stale}


def test_bulk_staleness_agrees_with_dagsters_resolver(home):
    versions = {}
    with dg.DagsterInstance.ephemeral() as instance:
        defs = make_graph(versions)
        ours, dagsters = verdicts(defs, instance)
        assert ours == dagsters and all(ours.values())  # all missing

        build_all(defs, instance)
        ours, dagsters = verdicts(defs, instance)
        assert ours == dagsters and not any(ours.values())

        # raw rewritten with the same data version: nothing downstream is stale
        run(defs, instance, ["raw"])
        ours, dagsters = verdicts(defs, instance)
        assert ours == dagsters and not any(ours.values())

        # raw changes: every docs partition is stale, nothing further yet
        versions["raw"] = "v1"
        run(defs, instance, ["raw"])
        ours, dagsters = verdicts(defs, instance)
        assert ours == dagsters
        assert stale_set(ours) == {("docs", p) for p in PARTS.get_partition_keys()}

        # docs rerun; only C019's content changed: only clean[C019] follows
        versions["docs[C019]"] = "v1"
        for p in PARTS.get_partition_keys():
            run(defs, instance, ["docs"], p)
        ours, dagsters = verdicts(defs, instance)
        assert ours == dagsters and stale_set(ours) == {("clean", "C019")}

        # clean[C019] changes: the unpartitioned index and then every report partition
        versions["clean[C019]"] = "v1"
        run(defs, instance, ["clean"], "C019")
        ours, dagsters = verdicts(defs, instance)
        assert ours == dagsters and stale_set(ours) == {("index", None), ("report", "C019")}

        # a new code version of clean: every clean partition
        ours, dagsters = verdicts(make_graph(versions, code_version="2"), instance)
        assert ours == dagsters
        assert {("clean", p) for p in PARTS.get_partition_keys()} <= stale_set(ours)


@pytest.fixture
def built(home):
    with dg.DagsterInstance.ephemeral() as instance:
        defs = make_graph({})
        build_all(defs, instance)
        yield defs, instance


def test_settings_section_change_stales_only_the_groups_that_read_it(built):
    defs, instance = built
    graph = defs.resolve_asset_graph()
    base = Settings.load()
    tags = FreshnessJudge(instance, graph, base).run_tags([dg.AssetKey("clean")])
    run_with_tags = defs.resolve_implicit_global_asset_job_def()
    run_with_tags.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("clean")], partition_key="C019", tags=tags, run_config=QUIET
    )
    changed = Settings.load({"clean.min_chars": 999})
    judge = FreshnessJudge(instance, graph, changed)
    assert judge.stale([dg.AssetKey("clean")], "C019") == {dg.AssetKey("clean"): "settings changed: clean"}
    assert judge.stale([dg.AssetKey("clean")], "C018") == {}  # written without tags (e.g. from the UI): trusted
    assert (
        FreshnessJudge(instance, graph, Settings.load({"teacher.concurrency": 16})).stale(
            [dg.AssetKey("clean")], "C019"
        )
        == {}
    )
    assert section_hashes(base)["teacher"] == section_hashes(Settings.load({"teacher.timeout_s": 1.0}))["teacher"]


def test_corpus_fingerprint_moves_with_files(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    empty = corpus_fingerprint([corpus])
    (corpus / "a.jsonl").write_text('{"text": "x", "year": 1850}\n')
    one = corpus_fingerprint([corpus])
    assert one != empty and corpus_fingerprint([corpus]) == one
    (corpus / "a.jsonl").write_text('{"text": "y", "year": 1851}\n')
    assert corpus_fingerprint([corpus]) != one


def test_deleted_output_file_is_stale(built, home):
    defs, instance = built
    judge = FreshnessJudge(instance, defs.resolve_asset_graph(), Settings.load())
    folder = home / "data" / "docs"
    folder.mkdir(parents=True)
    (folder / "C019.parquet").write_bytes(b"")
    assert judge.stale([dg.AssetKey("docs")], "C019") == {}
    assert judge.stale([dg.AssetKey("docs")], "C018") == {dg.AssetKey("docs"): "output file missing"}


def test_failed_or_unevaluated_blocking_check_is_stale(home):
    outcome = {"passed": False}

    @dg.asset(partitions_def=PARTS, code_version="1", group_name="sources")
    def docs():
        return dg.MaterializeResult(data_version=dg.DataVersion("v"))

    @dg.asset_check(asset=docs, blocking=True)
    def docs_gate():
        return dg.AssetCheckResult(passed=outcome["passed"])

    with dg.DagsterInstance.ephemeral() as instance:
        plain = dg.Definitions(assets=[docs])
        run(plain, instance, ["docs"], "C018")  # materialized before the check existed
        defs = dg.Definitions(assets=[docs], asset_checks=[docs_gate])
        job = defs.resolve_implicit_global_asset_job_def()
        job.execute_in_process(
            instance=instance, asset_selection=[docs.key], partition_key="C019", raise_on_error=False, run_config=QUIET
        )
        judge = FreshnessJudge(instance, defs.resolve_asset_graph(), Settings.load())
        assert judge.stale([docs.key], "C019") == {docs.key: "blocking check docs_gate failed"}
        assert judge.stale([docs.key], "C018") == {docs.key: "blocking check docs_gate not evaluated"}
        outcome["passed"] = True
        job.execute_in_process(instance=instance, asset_selection=[docs.key], partition_key="C019", run_config=QUIET)
        judge.forget()
        assert judge.stale([docs.key], "C019") == {}
