"""The one Definitions for chronoprism: assets (every module under assets/), checks, jobs, schedules, sensors.

The only module that imports assets/: everything else in pipelines/ sits below the assets and is handed what it
needs (the asset graph from the Definitions or a schedule context).
"""

from __future__ import annotations

import dagster as dg

import assets as asset_package
from pipelines.automation import with_automation
from pipelines.checks import ASSET_CHECKS
from pipelines.executors import executor_from_env
from pipelines.jobs import asset_groups, stage_jobs
from pipelines.resources import default_resources
from pipelines.schedules import SCHEDULES
from pipelines.sensors import MONITORING_ASSETS, SENSORS

all_assets = with_automation(dg.load_assets_from_package_module(asset_package))
# checks are declared in pipelines/checks.py (table gates) and beside their asset (e.g. assets/dating.py)
all_checks = [*ASSET_CHECKS, *dg.load_asset_checks_from_package_module(asset_package)]


def make_definitions(resources: dict | None = None) -> dg.Definitions:
    """The project's Definitions; the CLI passes resources built from its flags, everything else the defaults."""
    return dg.Definitions(
        assets=[*all_assets, *MONITORING_ASSETS],
        asset_checks=all_checks,
        jobs=stage_jobs(asset_groups(all_assets)),
        schedules=SCHEDULES,
        sensors=SENSORS,
        resources={**default_resources(), **(resources or {})},
        executor=executor_from_env(),
    )


defs = make_definitions()
