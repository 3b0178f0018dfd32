"""`run_build` skips what is fresh: an unchanged rebuild starts no run, a change reruns only what it reaches."""

import socket
import subprocess
import sys

import dagster as dg

from pipelines.build import build_run_tags, reap_orphaned_runs, run_build
from pipelines.progress import PlainReporter
from tests.pipelines.toy_graph import PARTS, make_graph, run

ALL = len(PARTS.get_partition_keys())


def build(defs, instance, force=False):
    lines = []
    reporter = PlainReporter(lines.append)
    results = run_build(defs, None, PARTS.get_partition_keys(), instance, force=force, reporter=reporter)
    ran = sorted((key.to_user_string(), r.partition) for r in results for key in r.step.keys)
    return results, ran, lines, reporter


def test_noop_rebuild_skips_everything_and_a_change_reruns_only_what_it_reaches(home):
    versions = {}
    with dg.DagsterInstance.ephemeral() as instance:
        defs = make_graph(versions)
        results, ran, _, reporter = build(defs, instance)
        assert all(r.success for r in results)
        assert len(ran) == 2 + 3 * ALL and reporter.teacher_calls == 3 * ALL

        results, ran, lines, reporter = build(defs, instance)
        assert results == [] and reporter.teacher_calls == 0
        assert any("fresh: 2 skipped" in line for line in lines)

        # raw re-ingested (as the corpus sensor does) with new rows that reach only C019's documents
        versions.update({"raw": "v1", "docs[C019]": "v1"})
        run(defs, instance, ["raw"])
        _, ran, _, reporter = build(defs, instance)
        # every documents partition reads raw, so all rerun; only clean[C019] reads a changed one, and rewrites
        # the same rows, so index and report stay fresh: 0 teacher calls
        assert ran == sorted([*(("docs", p) for p in PARTS.get_partition_keys()), ("clean", "C019")])
        assert reporter.teacher_calls == 0

        _, ran, _, _ = build(defs, instance, force=True)
        assert len(ran) == 2 + 3 * ALL


def test_a_failed_partition_blocks_only_its_own_downstream(home):
    with dg.DagsterInstance.ephemeral() as instance:
        defs = make_graph({}, fail={"clean[C018]"})
        results, _, _, _ = build(defs, instance)
        failed = {(key.to_user_string(), r.partition): r.error for r in results for key in r.failed_keys}
        assert "broke" in failed["clean", "C018"]
        assert failed["index", None] == "clean[C018] failed"
        downstream = {("clean", "C018"), ("index", None), *(("report", p) for p in PARTS.get_partition_keys())}
        assert set(failed) == downstream
        ran = {(key.to_user_string(), r.partition) for r in results for key in r.step.keys}
        assert {("clean", "C019"), ("docs", "C018")} <= ran - set(failed)

        # fixed: the next build runs exactly what failed or never ran
        _, ran, _, _ = build(make_graph({}), instance)
        assert ran == sorted(downstream)


def test_runs_of_a_killed_build_are_failed_and_release_their_slots(home):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with dg.DagsterInstance.ephemeral() as instance:
        orphan = dg.DagsterRun(
            job_name="__ASSET_JOB",
            status=dg.DagsterRunStatus.STARTED,
            tags={**build_run_tags("b1", "cli"), "chronoprism/process": f"{socket.gethostname()}:{dead.pid}"},
        )
        running = dg.DagsterRunStatus.STARTED
        alive = dg.DagsterRun(job_name="__ASSET_JOB", status=running, tags=build_run_tags("b2", "cli"))
        instance.add_run(orphan)
        instance.add_run(alive)
        assert reap_orphaned_runs(instance) == [orphan.run_id]
        assert instance.get_run_by_id(orphan.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED


def test_automation_follows_new_data_below_documents_only():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        follows = [p for p in node.parent_keys if graph.get(p).is_materializable and graph.get(p).parent_keys]
        assert (node.automation_condition is not None) == bool(follows), key
