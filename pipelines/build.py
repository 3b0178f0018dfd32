"""In-process builds for the CLI: plan the selected assets into steps (pipelines/plan.py) and run each step
through Dagster; a partitioned step runs once per century. Every step is a real Dagster run on the shared
instance, so the UI and `chronoprism status` see exactly what the CLI built. Fresh partitions are skipped
(pipelines/freshness.py), so an unchanged rebuild starts no run at all.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import dagster as dg

from pipelines.freshness import FreshnessJudge, default_partitions
from pipelines.partitions import CENTURIES
from pipelines.plan import Step, StepResult, plan_steps
from pipelines.progress import PlainReporter
from pipelines.resources import SettingsResource
from pipelines.tags import BUILD_ID_TAG, PROCESS_TAG, SOURCE_TAG
from sources.settings import Settings
from teacher.cache import ensure_build_id

# step logs still reach the instance (UI, `dagster` run logs); the console shows our progress lines only
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_build(
    defs: dg.Definitions,
    selection: str | dg.AssetSelection | None,
    partitions: list[str] | None,
    instance: dg.DagsterInstance,
    with_upstream: bool = True,
    force: bool = False,
    reporter: PlainReporter | None = None,
    source: str = "cli",
) -> list[StepResult]:
    """Materialize `selection` (Dagster selection syntax; None = everything) and, by default, its upstream
    assets too, so `--select documents` on a fresh home ingests what documents needs (like `make`).

    Only what changed runs (see pipelines/freshness.py): a partition is skipped when Dagster finds it fresh and
    its settings sections and input files are unchanged; after each run the rest of its step is judged again, so
    a rerun that wrote identical rows stops there. `force` runs every selected partition once. A partition whose
    upstream failed (or failed a blocking check) in this build is not attempted. Returns one result per run.
    """
    asset_graph = defs.resolve_asset_graph()
    selected = _resolve_selection(asset_graph, selection, with_upstream)
    steps = plan_steps(asset_graph, selected)
    scope = {key: default_partitions(asset_graph, key, partitions, _settings_of(defs)) for key in selected}
    build = _Build(defs, instance, reporter or PlainReporter(), force, source)
    total = sum(len(scope[key]) if step.partitioned else 1 for step in steps for key in step.keys)
    build.reporter.planned(build.build_id, len(selected), len(steps), total, force)
    build.total = total
    try:
        for number, step in enumerate(steps, 1):
            for partition in (partitions or CENTURIES) if step.partitioned else [None]:
                keys = [key for key in step.keys if partition is None or partition in scope[key]]
                if keys:
                    build.run_partition(f"[{number}/{len(steps)}]", Step(step.partitioned, keys), partition)
    finally:
        build.reporter.close()
    return build.results


class _Build:
    """State of one build: what ran, what failed, how far along it is."""

    def __init__(self, defs, instance: dg.DagsterInstance, reporter: PlainReporter, force: bool, source: str):
        self.asset_graph = defs.resolve_asset_graph()
        self.job = defs.resolve_implicit_global_asset_job_def()
        self.instance = instance
        self.reporter = reporter
        self.force = force
        self.source = source
        self.judge = FreshnessJudge(instance, self.asset_graph, _settings_of(defs))
        self.build_id = ensure_build_id()
        self.results: list[StepResult] = []
        self.failed: set[tuple[dg.AssetKey, str | None]] = set()
        self.done = 0
        self.total = 0
        for run_id in reap_orphaned_runs(instance):
            reporter.write(f"run {run_id} of a killed build marked failed, its pool slots freed")

    def run_partition(self, prefix: str, step: Step, partition: str | None) -> None:
        """Run the keys of `step` that must run for one partition, judging again after each run."""
        where = f" [{partition}]" if partition else ""
        keys = []
        for key in step.keys:
            parent = self._failed_parent(key, partition)
            if parent is None:
                keys.append(key)
                continue
            self.failed.add((key, partition))
            blocked = StepResult(Step(step.partitioned, [key]), partition, False, 0.0, "", f"{parent} failed", [key])
            self._record(prefix, blocked)
        todo = {key: "forced" for key in keys} if self.force else self.judge.stale(keys, partition)
        ran: set[dg.AssetKey] = set()
        while todo:
            todo = settled_subset(self.asset_graph, keys, todo)
            run_step = Step(step.partitioned, [key for key in keys if key in todo])
            result = self._execute(prefix, run_step, partition, todo)
            ran |= set(result.step.keys)
            if self.force or not result.success:
                break
            todo = self.judge.stale([key for key in keys if key not in ran], partition)
        fresh = [key for key in keys if key not in ran]
        self.done += len(fresh)
        label = Step(step.partitioned, fresh).label()
        self.reporter.fresh(f"{prefix} {label}{where}", len(fresh), self.done, self.total)

    def _failed_parent(self, key: dg.AssetKey, partition: str | None) -> str | None:
        """The first parent that failed in this build for a partition this key reads, as `name[partition]`."""
        for parent in sorted(self.asset_graph.get(key).parent_keys):
            for bad_key, bad_partition in self.failed:
                if bad_key == parent and (partition is None or bad_partition in (None, partition)):
                    return parent.to_user_string() + (f"[{bad_partition}]" if bad_partition else "")
        return None

    def _execute(self, prefix: str, step: Step, partition: str | None, reasons: dict) -> StepResult:
        """One Dagster run of `step`'s keys for one partition. A key fails when it did not materialize or one of
        its blocking checks failed."""
        run_id = str(uuid.uuid4())  # what Dagster run ids are
        self.instance.add_event_listener(run_id, self.reporter.on_event)
        self.reporter.run_started(f"{prefix} {step.label()}" + (f" [{partition}]" if partition else ""), reasons)
        tags = {**self.judge.run_tags(step.keys), **build_run_tags(self.build_id, self.source)}
        started = time.monotonic()
        outcome = self.job.execute_in_process(
            instance=self.instance,
            asset_selection=step.keys,
            partition_key=partition,
            raise_on_error=False,
            run_config=QUIET_RUN_CONFIG,
            run_id=run_id,
            tags=tags,
        )
        self.judge.forget()
        materialized = {event.asset_key for event in outcome.get_asset_materialization_events()}
        bad = {key for key in step.keys if key not in materialized}
        bad |= {e.asset_key for e in outcome.get_asset_check_evaluations() if e.blocking and not e.passed}
        self.failed |= {(key, partition) for key in bad}
        error = "" if outcome.success else _first_error(outcome)
        seconds = time.monotonic() - started
        failed_keys = [key for key in step.keys if key in bad]
        result = StepResult(step, partition, outcome.success and not bad, seconds, run_id, error, failed_keys)
        self._record(prefix, result)
        return result

    def _record(self, prefix: str, result: StepResult) -> None:
        self.results.append(result)
        self.done += len(result.step.keys)
        where = f" [{result.partition}]" if result.partition else ""
        self.reporter.run_finished(f"{prefix} {result.step.label()}{where}", result, self.done, self.total)


def settled_subset(asset_graph, keys: list[dg.AssetKey], todo: dict) -> dict:
    """The stale keys that may run now: none of their ancestors in this step can still change.

    A fresh key downstream of a stale one may turn stale once that one reruns; a stale key below such a key must
    wait for the next judgement, or it would run before its input is rebuilt (e.g. the dataset card before the
    value trend it shows). `keys` is in topological order; the first stale key is always settled.
    """
    in_step = set(keys)
    unsettled: set[dg.AssetKey] = set()
    waiting: set[dg.AssetKey] = set()
    for key in keys:
        parents = asset_graph.get(key).parent_keys & in_step
        if key in todo:
            if parents & (unsettled | waiting):
                waiting.add(key)
        elif parents & (set(todo) | unsettled | waiting):
            unsettled.add(key)
    return {key: reason for key, reason in todo.items() if key not in waiting}


def build_run_tags(build_id: str, source: str) -> dict[str, str]:
    """Tags on every run a build starts: which build, started by what (cli / weekly_rebuild), which process."""
    return {
        BUILD_ID_TAG: build_id,
        SOURCE_TAG: source,
        PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}",
    }


def reap_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Runs a killed `chronoprism build` left "started" on this host: mark them failed and free the pool slots
    their steps held, so the next build does not wait forever for the `gpu` or `teacher` pool."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    )
    reaped = []
    for run in runs:
        host, _, pid = run.tags.get(PROCESS_TAG, "").rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            instance.report_run_failed(run, "the chronoprism build running it was killed")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            reaped.append(run.run_id)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _resolve_selection(asset_graph, selection, with_upstream: bool) -> set[dg.AssetKey]:
    all_keys = set(asset_graph.materializable_asset_keys)
    if selection:
        chosen = selection if isinstance(selection, dg.AssetSelection) else dg.AssetSelection.from_string(selection)
        selected = (chosen.upstream() if with_upstream else chosen).resolve(asset_graph)
    else:
        selected = all_keys
    selected &= all_keys
    if not selected:
        raise ValueError(f"selection {selection!r} matches no assets")
    return selected


def _settings_of(defs: dg.Definitions) -> Settings:
    resource = (defs.resources or {}).get("settings")
    return resource.get() if isinstance(resource, SettingsResource) else Settings.load()


def _first_error(outcome: dg.ExecuteInProcessResult) -> str:
    for event in outcome.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            return root_cause(event.step_failure_data.error)
    return "run failed (see the Dagster UI for the run's logs)"


def root_cause(error) -> str:
    """The innermost error's message: Dagster wraps user errors in a step-execution error."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip().splitlines()[-1][:300]
