"""weekly_rebuild: stopped by default, rebuilds what is stale, publishes only after every blocking check passed."""

import dagster as dg
import pytest

import pipelines.definitions
from pipelines.jobs import weekly_rebuild_job
from pipelines.rebuild import rebuild_then_publish
from pipelines.resources import SettingsResource
from pipelines.schedules import weekly_rebuild

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def make_defs(check_passes: dict):
    @dg.asset(code_version="1", group_name="splits")
    def vrd():
        return dg.MaterializeResult(data_version=dg.DataVersion("v1"))

    @dg.asset_check(asset=vrd, blocking=True)
    def vrd_ids_unique():
        return dg.AssetCheckResult(passed=check_passes["value"])

    @dg.asset(deps=[vrd], code_version="1", group_name="publish")
    def hf_publish():
        return dg.MaterializeResult(data_version=dg.DataVersion("pushed"))

    return dg.Definitions(assets=[vrd, hf_publish], asset_checks=[vrd_ids_unique])


def published(instance) -> bool:
    return instance.get_latest_materialization_event(dg.AssetKey("hf_publish")) is not None


def test_schedule_starts_stopped_and_runs_the_rebuild_job():
    assert weekly_rebuild.default_status == dg.DefaultScheduleStatus.STOPPED
    assert weekly_rebuild.cron_schedule == "0 3 * * 1" and weekly_rebuild.job_name == "weekly_rebuild_job"
    defs = pipelines.definitions.defs
    assert defs.resolve_schedule_def("weekly_rebuild").job_name == "weekly_rebuild_job"


def test_publishes_only_when_every_blocking_check_passed(home):
    check = {"value": False}
    with dg.DagsterInstance.ephemeral() as instance:
        outcome = rebuild_then_publish(make_defs(check), instance, report=lambda line: None)
        assert not outcome.published and not published(instance)
        assert any("vrd_ids_unique" in problem for problem in outcome.problems)

        check["value"] = True
        outcome = rebuild_then_publish(make_defs(check), instance, report=lambda line: None)
        assert outcome.published and outcome.problems == [] and published(instance)

        # nothing changed since: nothing runs, nothing is published again
        outcome = rebuild_then_publish(make_defs(check), instance, report=lambda line: None)
        assert outcome.results == [] and outcome.problems == []


@pytest.fixture
def toy_definitions(monkeypatch):
    check = {"value": False}
    monkeypatch.setattr(pipelines.definitions, "make_definitions", lambda resources=None: make_defs(check))
    return check


def test_the_job_fails_visibly_when_it_holds_publishing_back(home, toy_definitions):
    with dg.DagsterInstance.ephemeral() as instance:
        run = dict(instance=instance, resources={"settings": SettingsResource()}, run_config=QUIET)
        failed = weekly_rebuild_job.execute_in_process(raise_on_error=False, **run)
        assert not failed.success and not published(instance)
        failure = next(e for e in failed.all_events if e.is_step_failure)
        assert "not published" in failure.step_failure_data.error.message

        toy_definitions["value"] = True
        passed = weekly_rebuild_job.execute_in_process(**run)
        assert passed.success and passed.output_for_node("rebuild_then_publish_op") is True and published(instance)
