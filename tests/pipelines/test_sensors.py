"""Sensor ticks on built contexts: the corpus cursor (new file -> right partition, unchanged -> nothing) and the
run-failure recorder."""

import json
import os

import dagster as dg
import pytest

from pipelines.resources import SettingsResource
from pipelines.sensors import (
    CORPUS_SYNC_TAG,
    DOCUMENTS,
    RAW_USER_CORPUS,
    corpus_files_sensor,
    run_failure_recorder,
    scan_corpus,
)
from sources.storage import Store
from tests.helpers import write_jsonl


def write_years(path, *years):
    """A JSONL corpus file with one short text per year."""
    write_jsonl(path, [{"text": f"A text written in {y}.", "year": y} for y in years])


def tick(corpus, cursor=None):
    settings = SettingsResource(corpus_dirs=[str(corpus)])
    context = dg.build_sensor_context(cursor=cursor, resources={"settings": settings})
    return corpus_files_sensor(context)


def requested(result):
    return [(tuple(k.to_user_string() for k in r.asset_selection), r.partition_key) for r in result.run_requests]


@pytest.fixture
def corpus(tmp_path, home):
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_years(folder / "letters.jsonl", 1712, 1744)
    return folder


def test_new_file_requests_ingest_then_its_century_and_unchanged_requests_nothing(corpus):
    first = tick(corpus)
    assert requested(first) == [(("raw_user_corpus",), None), (("documents",), "C018")]
    cursor = first.cursor

    quiet = tick(corpus, cursor)
    assert quiet.run_requests == [] and quiet.cursor == cursor

    write_years(corpus / "diary.jsonl", 1850)
    new = tick(corpus, cursor)
    assert requested(new) == [(("raw_user_corpus",), None), (("documents",), "C019")]
    assert all(r.tags[CORPUS_SYNC_TAG] for r in new.run_requests)
    assert len({r.run_key for r in new.run_requests}) == 2
    assert tick(corpus, new.cursor).run_requests == []


def test_touch_is_not_a_change_but_an_edit_reaches_old_and_new_centuries(corpus):
    cursor = json.loads(tick(corpus).cursor)
    path = corpus / "letters.jsonl"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = scan_corpus([corpus], cursor)
    assert touched.changed == [] and touched.cursor[str(path)]["mtime_ns"] == stat.st_mtime_ns + 10**9

    write_years(path, 1912)  # the rows leave C018 for C020: both partitions must be rebuilt
    edited = scan_corpus([corpus], touched.cursor)
    assert edited.changed == [str(path)] and edited.centuries == {"C018", "C020"}

    path.unlink()
    deleted = scan_corpus([corpus], edited.cursor)
    assert deleted.changed == [str(path)] and deleted.centuries == {"C020"} and deleted.cursor == {}


def test_no_corpus_dirs_skips(home):
    context = dg.build_sensor_context(resources={"settings": SettingsResource()})
    assert corpus_files_sensor(context).skip_reason is not None


def test_sensors_are_defined_with_their_default_status():
    from pipelines.definitions import defs

    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert sensors["corpus_files_sensor"].default_status == dg.DefaultSensorStatus.STOPPED
    assert sensors["chronoprism_automation"].default_status == dg.DefaultSensorStatus.STOPPED
    assert sensors["run_failure_recorder"].default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    assert {RAW_USER_CORPUS, DOCUMENTS} <= set(graph.materializable_asset_keys)
    assert not graph.get(dg.AssetKey("run_failures")).is_materializable


def test_failed_run_is_recorded_in_the_table_and_on_the_asset(home):
    @dg.asset(group_name="sources")
    def flaky():
        raise ValueError("the corpus directory vanished")

    job = dg.Definitions(assets=[flaky]).resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/partition": "C017"})
        failure = next(event for event in result.all_events if event.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_recorder",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"settings": SettingsResource()},
        ).for_run_failure()
        run_failure_recorder(context)
        run_failure_recorder(context)  # the same run twice: one row

        table = Store(home).read("run_failures")
        assert table.height == 1
        row = table.row(0, named=True)
        assert row["run_id"] == result.run_id and row["partition"] == "C017"
        assert "flaky: ValueError: the corpus directory vanished" in row["error"]
        materialization = instance.get_latest_materialization_event(dg.AssetKey("run_failures")).asset_materialization
        assert materialization.metadata["n_failures"].value == 1
        assert "vanished" in materialization.metadata["last_error"].value
