"""Schedules; each starts stopped and says what its cron means."""

import dagster as dg

from pipelines.rebuild import rebuild_requests
from pipelines.resources import SettingsResource


@dg.schedule(
    name="weekly_rebuild",
    cron_schedule="0 3 * * 1",  # Mondays at 03:00 UTC: after a week of corpus edits, before people look at it
    execution_timezone="UTC",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly: one run per century partition for what is stale (unchanged partitions are skipped, no "
    "run and no teacher call when nothing changed); declarative automation carries the wave downstream and "
    "publishes only behind green blocking checks. Stopped by default: start it with the toggle, together with "
    "the chronoprism_automation sensor.",
)
def weekly_rebuild(context: dg.ScheduleEvaluationContext, settings: SettingsResource):
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return rebuild_requests(context.repository_def.asset_graph, context.instance, settings.get(), tick)


SCHEDULES: list[dg.ScheduleDefinition] = [weekly_rebuild]
