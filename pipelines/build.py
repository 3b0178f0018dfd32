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
from collections.abc import Callable

import dagster as dg

from pipelines.concurrency import teacher_pool_limit
from pipelines.freshness import FreshnessJudge, default_partitions
from pipelines.partitions import CENTURIES
from pipelines.plan import Step, StepResult, plan_steps
from pipelines.progress import PlainReporter
from pipelines.resources import SettingsResource
from pipelines.tags import BUILD_ID_TAG, PROCESS_TAG, SOURCE_TAG
from sources.parallel import WORKERS_ENV
from sources.settings import Settings
from sources.storage import SHARES_ENV
from teacher.cache import BUILD_ID_ENV, ensure_build_id

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
    workers: int = 1,
    defs_factory: Callable[[], dg.Definitions] | None = None,
) -> list[StepResult]:
    """Materialize `selection` (Dagster selection syntax; None = everything) and, by default, its upstream
    assets too, so `--select documents` on a fresh home ingests what documents needs (like `make`).

    Only what changed runs (see pipelines/freshness.py): a partition is skipped when Dagster finds it fresh and
    its settings sections and input files are unchanged; after each run the rest of its step is judged again, so
    a rerun that wrote identical rows stops there. `force` runs every selected partition once. A partition whose
    upstream failed (or failed a blocking check) in this build is not attempted. Returns one result per run.

    [issue 14] With `workers` > 1 and a picklable `defs_factory` (rebuilds `defs` in a worker process), the
    centuries of a partitioned step of document stages (`PARALLEL_GROUPS`), and of teacher stages when the teacher
    pool holds more than one step (`TEACHER_GROUPS`), run in that many processes at once; each century is still its
    own Dagster run, so the output is the same whatever the number of workers. Training keys of such a step run
    after, one century at a time (they hold the `gpu` pool and every core).
    """
    asset_graph = defs.resolve_asset_graph()
    selected = _resolve_selection(asset_graph, selection, with_upstream)
    steps = plan_steps(asset_graph, selected)
    scope = {key: default_partitions(asset_graph, key, partitions, _settings_of(defs)) for key in selected}
    build = _Build(defs, instance, reporter or PlainReporter(), force, source)
    total = sum(len(scope[key]) if step.partitioned else 1 for step in steps for key in step.keys)
    build.reporter.planned(build.build_id, len(selected), len(steps), total, force)
    build.total = total
    settings = _settings_of(defs)
    splits = [_parallel_split(asset_graph, step, settings) for step in steps]
    if workers > 1 and defs_factory is not None and any(splits):
        _worker_context(start=True)  # its imports overlap the steps that run here first (ingest)
    stage_environment = {name: os.environ.get(name) for name in (WORKERS_ENV, SHARES_ENV)}
    os.environ[WORKERS_ENV] = str(workers if defs_factory is not None else 1)  # a step alone spreads its batches
    os.environ[SHARES_ENV] = os.environ[WORKERS_ENV]  # [issue 14] that many stage processes share the memory budget
    try:
        for number, (step, split) in enumerate(zip(steps, splits, strict=True), 1):
            prefix = f"[{number}/{len(steps)}]"
            todo = [
                (partition, [key for key in step.keys if partition is None or partition in scope[key]])
                for partition in ((partitions or CENTURIES) if step.partitioned else [None])
            ]
            todo = [(partition, keys) for partition, keys in todo if keys]
            if workers > 1 and defs_factory is not None and len(todo) > 1 and split is not None:
                parallel_keys, cap = split
                together, todo = _split_keys(todo, parallel_keys)
                build.run_parallel(prefix, step, together, min(workers, cap or workers), defs_factory)
            for partition, keys in todo:
                build.run_partition(prefix, Step(step.partitioned, keys), partition)
    finally:
        build.reporter.close()
        for name, value in stage_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return build.results


Todo = list[tuple[str | None, list[dg.AssetKey]]]


def _split_keys(todo: Todo, keys: set[dg.AssetKey]) -> tuple[Todo, Todo]:
    """`todo`'s (partition, keys) entries split into those keys and the rest; a partition left with none drops out."""
    inside = [(partition, [k for k in ks if k in keys]) for partition, ks in todo]
    outside = [(partition, [k for k in ks if k not in keys]) for partition, ks in todo]
    return [(p, ks) for p, ks in inside if ks], [(p, ks) for p, ks in outside if ks]


# [issue 14] groups whose partitioned steps may run several centuries at once: CPU-bound document stages with no
# pool, and the teacher's stages when its pool holds several steps (a served model, or one small CPU model copy per
# core). Training and evaluation share the GPU (or every core) and stay one at a time.
PARALLEL_GROUPS = ("sources", "quality")
TEACHER_GROUPS = ("teacher", "vrd")


def _parallel_split(asset_graph, step: Step, settings: Settings) -> tuple[set[dg.AssetKey], int | None] | None:
    """(the keys of `step` that may run for several centuries at once, at most how many: None = as many as the
    build has workers), or None: the step runs one century at a time. The other keys run after, so none of them
    may feed a parallel key."""
    if not step.partitioned:
        return None
    teacher_steps = teacher_pool_limit(settings)
    groups = PARALLEL_GROUPS + (TEACHER_GROUPS if teacher_steps > 1 else ())
    parallel = {key for key in step.keys if asset_graph.get(key).group_name in groups}
    serial = set(step.keys) - parallel
    uses_teacher = any(asset_graph.get(key).group_name in TEACHER_GROUPS for key in parallel)
    if not parallel or (serial and not uses_teacher):  # a split costs a run per century: worth it for the teacher
        return None
    if any(asset_graph.get(key).parent_keys & serial for key in parallel):
        return None
    return parallel, (teacher_steps if uses_teacher else None)


class _Build:
    """State of one build: what ran, what failed, how far along it is."""

    def __init__(
        self,
        defs,
        instance: dg.DagsterInstance,
        reporter: PlainReporter,
        force: bool,
        source: str,
        reap: bool = True,
    ):
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
        for run_id in reap_orphaned_runs(instance) if reap else []:
            reporter.write(f"run {run_id} of a killed build marked failed, its pool slots freed")

    def run_parallel(
        self,
        prefix: str,
        step: Step,
        todo: list[tuple[str | None, list[dg.AssetKey]]],
        workers: int,
        defs_factory: Callable[[], dg.Definitions],
    ) -> None:
        """[issue 14] `run_partition` for each (partition, keys) of one step in a pool of `workers` processes.

        Each worker rebuilds the definitions, opens the instance and runs its century exactly as the sequential
        path does; its lines reach the console directly, its results and failures come back here."""
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=_worker_context()) as pool:
            futures = [
                pool.submit(
                    _run_partition_in_worker,
                    dict(os.environ),
                    defs_factory,
                    prefix,
                    Step(step.partitioned, keys),
                    partition,
                    set(self.failed),
                    self.force,
                    self.source,
                    self.build_id,
                    self.total,
                    self.done + sum(len(keys) for _, keys in todo[:position]),  # where this century's lines count from
                )
                for position, (partition, keys) in enumerate(todo)
            ]
            for future in as_completed(futures):
                results, failed, done = future.result()
                self.results.extend(results)
                self.failed |= failed
                self.done += done
                self.reporter.fresh(prefix, 0, self.done, self.total)  # moves the overall bar

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
        bad |= {e.asset_key for e in outcome.get_asset_check_evaluations() if blocks(e)}
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


# [issue 14] Workers fork from one server process that has imported the heavy libraries once (Great Expectations
# alone costs ~6 s of CPU, Dagster and pandas ~3 s more, our asset modules ~2.4 s), instead of each spawned worker
# importing them again. Importing them reads no settings, home or environment that a worker uses (a worker builds
# its Definitions afresh from the build's settings), starts no thread (Dagster's are in this process, which is
# never forked) and writes nothing; a module the server cannot import is imported by the worker as before.
WORKER_PRELOAD = [
    "dagster",
    "great_expectations",
    "pandas",
    "polars",
    "pyarrow.parquet",
    "duckdb",
    "pipelines.definitions",
]


def _worker_context(start: bool = False):
    """The forkserver context of build workers; `start` launches the server now rather than at the first pool."""
    import multiprocessing
    import multiprocessing.forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)  # takes effect when the server starts
    if start:
        multiprocessing.forkserver.ensure_running()  # returns at once: the server imports in the background
    return context


def _run_partition_in_worker(
    environment: dict[str, str],
    defs_factory: Callable[[], dg.Definitions],
    prefix: str,
    step: Step,
    partition: str | None,
    failed: set,
    force: bool,
    source: str,
    build_id: str,
    total: int,
    done: int,
) -> tuple[list[StepResult], set, int]:
    """One century of a step in a worker process: (its run results, the failures seen, materializations done)."""
    # the fork server kept the environment it started with; the build's may have changed since (another home)
    os.environ.clear()
    os.environ.update(environment)
    os.environ[BUILD_ID_ENV] = build_id
    os.environ[WORKERS_ENV] = "1"  # this process is one of the build's workers already
    # SHARES_ENV comes with `environment`: every worker of the build shares the memory budget, this one included
    defs = defs_factory()
    with dg.DagsterInstance.get() as instance:
        reporter = PlainReporter(lambda line: print(line, flush=True))
        build = _Build(defs, instance, reporter, force, source, reap=False)
        build.failed, build.total, build.done = failed, total, done
        build.run_partition(prefix, step, partition)
        return build.results, build.failed, build.done - done


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


def blocks(evaluation: dg.AssetCheckEvaluation) -> bool:
    """A failed blocking check stops downstream only at ERROR severity, as in Dagster itself (a WARN is reported,
    e.g. the teacher-collapse checks unless `collapse.blocking`)."""
    return evaluation.blocking and not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR


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
