"""The one Definitions for chronoprism: assets (every module under assets/), checks, jobs, schedules, sensors."""

from __future__ import annotations

import dagster as dg

import assets as asset_package
from pipelines.automation import with_automation
from pipelines.checks import ASSET_CHECKS
from pipelines.executors import executor_from_env
from pipelines.jobs import JOBS
from pipelines.resources import default_resources
from pipelines.schedules import SCHEDULES
from pipelines.sensors import MONITORING_ASSETS, SENSORS

all_assets = with_automation(dg.load_assets_from_package_module(asset_package))


def make_definitions(resources: dict | None = None) -> dg.Definitions:
    """The project's Definitions; the CLI passes resources built from its flags, everything else the defaults."""
    return dg.Definitions(
        assets=[*all_assets, *MONITORING_ASSETS],
        asset_checks=ASSET_CHECKS,
        jobs=JOBS,
        schedules=SCHEDULES,
        sensors=SENSORS,
        resources={**default_resources(), **(resources or {})},
        executor=executor_from_env(),
    )


defs = make_definitions()
