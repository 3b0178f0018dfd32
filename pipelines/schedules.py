"""Schedules; each starts stopped and says what its cron means."""

import dagster as dg

from pipelines.jobs import weekly_rebuild_job

weekly_rebuild = dg.ScheduleDefinition(
    name="weekly_rebuild",
    job=weekly_rebuild_job,
    cron_schedule="0 3 * * 1",  # Mondays at 03:00 UTC: after a week of corpus edits, before people look at it
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly: rebuild what is stale (unchanged partitions are skipped, 0 teacher calls when nothing "
    "changed), then publish only if every blocking check passed. Stopped by default: start it with the toggle.",
)

SCHEDULES: list[dg.ScheduleDefinition] = [weekly_rebuild]
