"""weekly_rebuild: stopped by default; requests one run per stale partition front, nothing when all is fresh, and
never hf_publish behind a failed blocking check."""

from datetime import UTC, datetime

import dagster as dg

import pipelines.definitions
from pipelines.automation import new_data_downstream
from pipelines.resources import SettingsResource
from pipelines.schedules import weekly_rebuild
from pipelines.tags import SOURCE_TAG

PARTS = dg.StaticPartitionsDefinition(["C018", "C019"])
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def make_defs(check_passes: dict) -> dg.Definitions:
    """raw -> vrd[p] (blocking check) -> hf_dataset -> hf_publish, with the weekly schedule."""

    @dg.asset(code_version="1")
    def raw():
        return dg.MaterializeResult(data_version=dg.DataVersion("r1"))

    @dg.asset(partitions_def=PARTS, deps=[raw], code_version="1")
    def vrd():
        return dg.MaterializeResult(data_version=dg.DataVersion("v1"))

    @dg.asset_check(asset=vrd, blocking=True)
    def vrd_gate():
        return dg.AssetCheckResult(passed=check_passes["value"])

    @dg.asset(deps=[vrd], code_version="1")
    def hf_dataset():
        return dg.MaterializeResult(data_version=dg.DataVersion("d1"))

    @dg.asset(deps=[hf_dataset], code_version="1")
    def hf_publish():
        return dg.MaterializeResult(data_version=dg.DataVersion("pushed"))

    return dg.Definitions(
        assets=[raw, vrd, hf_dataset, hf_publish],
        asset_checks=[vrd_gate],
        schedules=[weekly_rebuild],
        resources={"settings": SettingsResource()},
    )


def evaluate(defs: dg.Definitions, instance: dg.DagsterInstance):
    with dg.build_schedule_context(  # exiting the context hands Dagster's current instance back
        instance=instance, repository_def=defs.get_repository_def(), scheduled_execution_time=datetime.now(UTC)
    ) as context:
        return weekly_rebuild(context, settings=SettingsResource())


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    job = defs.resolve_implicit_global_asset_job_def()
    job.execute_in_process(
        instance=instance,
        asset_selection=list(request.asset_selection),
        partition_key=request.partition_key,
        run_config=QUIET,
        raise_on_error=False,
    )


def build_everything(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """Follow the schedule's requests until it skips, as the schedule plus the automation sensor would."""
    for _ in range(6):
        requests = evaluate(defs, instance)
        if isinstance(requests, dg.SkipReason):
            return
        for request in requests:
            execute(defs, instance, request)
    raise AssertionError("the rebuild did not settle")


def published(instance: dg.DagsterInstance) -> bool:
    return instance.get_latest_materialization_event(dg.AssetKey("hf_publish")) is not None


def test_schedule_starts_stopped_and_belongs_to_the_definitions():
    assert weekly_rebuild.default_status == dg.DefaultScheduleStatus.STOPPED
    assert weekly_rebuild.cron_schedule == "0 3 * * 1"
    assert pipelines.definitions.defs.resolve_schedule_def("weekly_rebuild") is not None


def test_fresh_instance_gets_the_front_of_the_graph_then_each_partition(home):
    defs = make_defs({"value": True})
    with dg.instance_for_test() as instance:
        first = evaluate(defs, instance)
        assert [(r.asset_selection, r.partition_key) for r in first] == [([dg.AssetKey("raw")], None)]
        assert first[0].tags[SOURCE_TAG] == "weekly_rebuild"
        execute(defs, instance, first[0])
        second = evaluate(defs, instance)
        assert sorted(r.partition_key for r in second) == ["C018", "C019"]  # one run per century partition
        assert all(r.asset_selection == [dg.AssetKey("vrd")] for r in second)


def test_unchanged_instance_requests_nothing(home):
    defs = make_defs({"value": True})
    with dg.instance_for_test() as instance:
        build_everything(defs, instance)
        assert published(instance)
        skip = evaluate(defs, instance)
        assert isinstance(skip, dg.SkipReason) and "nothing is stale" in skip.skip_message


def test_failed_blocking_check_holds_publishing_back(home):
    check = {"value": False}
    defs = make_defs(check)
    with dg.instance_for_test() as instance:
        for _ in range(4):
            requests = evaluate(defs, instance)
            if isinstance(requests, dg.SkipReason):
                break
            assert all(dg.AssetKey("hf_publish") not in r.asset_selection for r in requests)
            for request in requests:
                execute(defs, instance, request)
        assert not published(instance)

        check["value"] = True  # the data is fixed: the next ticks rebuild the gated partitions, then publish
        build_everything(defs, instance)
        assert published(instance)


def test_automation_never_carries_the_wave_past_a_failed_blocking_check(home):
    state = {"passes": True, "version": "v1"}

    @dg.asset
    def raw():
        return dg.MaterializeResult(data_version=dg.DataVersion("r1"))

    @dg.asset(deps=[raw])
    def vrd():
        return dg.MaterializeResult(data_version=dg.DataVersion(state["version"]))

    @dg.asset_check(asset=vrd, blocking=True)
    def vrd_gate():
        return dg.AssetCheckResult(passed=state["passes"])

    @dg.asset(deps=[vrd], automation_condition=new_data_downstream())
    def hf_publish():
        return dg.MaterializeResult(data_version=dg.DataVersion("pushed"))

    def write_vrd(version: str, passes: bool) -> None:
        state.update(version=version, passes=passes)
        job.execute_in_process(instance=instance, asset_selection=[vrd.key], run_config=QUIET, raise_on_error=False)

    with dg.instance_for_test() as instance:  # resolve the job inside: Dagster looks up the current instance
        defs = dg.Definitions(assets=[raw, vrd, hf_publish], asset_checks=[vrd_gate])
        job = defs.resolve_implicit_global_asset_job_def()
        job.execute_in_process(instance=instance, run_config=QUIET)
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        write_vrd("v2", passes=False)  # new data, but its blocking check failed
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.total_requested == 0
        write_vrd("v3", passes=True)  # fixed: the wave goes on to hf_publish
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.total_requested == 1
