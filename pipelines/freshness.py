"""Which (asset, partition) pairs a build must run, and why: Dagster's stale status plus what Dagster cannot see.

Dagster calls a partition MISSING until it is materialized and STALE when its code version, or the data version of
an upstream partition it read, changed since (assets return a content hash as data version, see
`pipelines.metadata.table_data_version`, so an upstream rerun that wrote the same rows changes nothing downstream).
Three more inputs live outside the asset graph; `chronoprism build` records them as run tags and compares here:

- settings: one hash per settings section; an asset is stale when a section its group reads changed
  (`SECTIONS_BY_GROUP`, or the asset tag `ASSET_SETTINGS_TAG: "clean.dedup"`: sections joined by dots, since
  Dagster asset tag values allow only letters, digits, `_`, `-` and `.`);
- files read by root assets: user corpus directories (path, size, mtime of every file the reader would read);
- blocking checks: a partition whose blocking check failed (or did not run) when it was written is run again,
  never trusted as fresh (a failure at WARN severity blocks nothing, so it counts as passed).

A run without these tags (started from the UI, a sensor or a schedule) counts as matching the current settings;
a root asset without an input tag is read again, which is cheap and always right.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from sources.registry import SOURCES
from sources.settings import Settings
from sources.storage import UNPARTITIONED
from sources.user_corpus import SIDECAR_SUFFIX

SETTINGS_RUN_TAG = "chronoprism/settings_hashes"  # "clean=1a2b3c4d,corpus=…": one short hash per section
INPUTS_RUN_TAG = "chronoprism/input_files"  # "raw_user_corpus=…": fingerprint of the files a root asset read
ASSET_SETTINGS_TAG = "chronoprism/settings"  # asset tag: the settings sections it reads, e.g. "filter.teacher"

# settings sections each stage reads; a group not listed here reads every section except `corpus`
SECTIONS_BY_GROUP: dict[str, tuple[str, ...]] = {
    "sources": ("corpus",),
    "quality": ("clean", "dedup"),
    "teacher": ("teacher", "filter"),
    "publish": ("publish",),
    "training": ("training",),
}
# fields that change how fast a stage runs, not what it writes
RUNTIME_ONLY_FIELDS: dict[str, tuple[str, ...]] = {
    "teacher": ("concurrency", "timeout_s", "http_retries", "retry_backoff_s", "torch_threads", "models_dir")
    # [issue 15] throughput, budgets and prices change how fast and what it costs, not what is written
    + ("max_in_flight", "adaptive_window", "requests_per_minute", "tokens_per_minute", "price_prompt_per_million")
    + ("price_completion_per_million", "vllm_tensor_parallel_size", "vllm_data_parallel_size")
    + ("vllm_gpu_memory_utilization", "merge_interval_s"),
    "dedup": ("cluster_warn_size", "cluster_warn_share"),  # [issue 18] only the cluster check's warning limits
}
# check executions read per check; a partition last written before the newest 500 is checked again (rerun)
CHECK_HISTORY = 500
USER_CORPUS_ASSETS = frozenset(f"raw_{spec.name}" for spec in SOURCES if not spec.bundled)

# What Dagster records on every materialization (the tags behind the UI's "data version" and provenance).
DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"
INPUT_VERSION_PREFIX = "dagster/input_data_version/"
INPUT_POINTER_PREFIX = "dagster/input_event_pointer/"


@dataclass(frozen=True, slots=True)
class Provenance:
    """What one materialization read: its code version and, per input asset, the data version and the storage id
    of the input materialization (None when Dagster could not tell)."""

    code_version: str | None
    input_data_versions: dict[dg.AssetKey, str]
    input_storage_ids: dict[dg.AssetKey, int | None]


def data_version_of(record: dg.EventLogRecord) -> str | None:
    materialization = record.asset_materialization
    return (materialization.tags or {}).get(DATA_VERSION_TAG) if materialization else None


def provenance_of(record: dg.EventLogRecord) -> Provenance | None:
    """The provenance Dagster wrote into the materialization's tags; None for one written without data versions.

    Read from the public tags because Dagster's own reader (`extract_data_provenance_from_entry`) is internal."""
    tags = (record.asset_materialization.tags if record.asset_materialization else None) or {}
    if CODE_VERSION_TAG not in tags:
        return None
    versions, pointers = {}, {}
    for tag, value in tags.items():
        if tag.startswith(INPUT_VERSION_PREFIX):
            versions[dg.AssetKey.from_user_string(tag[len(INPUT_VERSION_PREFIX) :])] = value
        elif tag.startswith(INPUT_POINTER_PREFIX):
            key = dg.AssetKey.from_user_string(tag[len(INPUT_POINTER_PREFIX) :])
            pointers[key] = int(value) if value.isdigit() else None
    for key in versions:
        pointers.setdefault(key, None)
    return Provenance(tags[CODE_VERSION_TAG], versions, pointers)


def section_hashes(settings: Settings) -> dict[str, str]:
    """A short hash per settings section (the home directory is where, not what, so it is left out)."""
    dumped = settings.model_dump(mode="json")
    hashes = {}
    for section, values in dumped.items():
        if not isinstance(values, dict):
            continue
        values = {k: v for k, v in values.items() if k not in RUNTIME_ONLY_FIELDS.get(section, ())}
        hashes[section] = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]
    return hashes


def encode_pairs(pairs: Mapping[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in sorted(pairs.items()))


def decode_pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def corpus_files(dirs: Iterable[str | Path]) -> list[Path]:
    """Every file a user-corpus reader looks at (sidecars included: they date `.txt` files), sorted."""
    files: list[Path] = []
    for directory in dirs:
        root = Path(directory).expanduser().resolve()
        if root.is_dir():
            files.extend(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    return sorted(files)


def corpus_fingerprint(dirs: Iterable[str | Path]) -> str:
    """Cheap fingerprint of user corpus directories: path, size and mtime of every file (no reading)."""
    digest = hashlib.sha256()
    for directory in dirs:
        digest.update(f"dir {Path(directory).expanduser().resolve()}\n".encode())
    for path in corpus_files(dirs):
        stat = path.stat()
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def is_sidecar(path: Path) -> bool:
    return path.name.endswith(SIDECAR_SUFFIX)


class RunFacts:
    """What a build asks repeatedly about past runs, materializations and checks, each fetched once (until
    `forget()`, called after every run the build starts)."""

    def __init__(self, instance: dg.DagsterInstance, asset_graph):
        self.instance = instance
        self.asset_graph = asset_graph
        self._tags: dict[str, Mapping[str, str]] = {}
        self.forget()

    def forget(self) -> None:
        self._latest: dict[dg.AssetKey, dict[str | None, dg.EventLogRecord]] = {}
        self._checks: dict[dg.AssetCheckKey, dict[str, bool]] = {}

    def latest_materialization(self, key: dg.AssetKey, partition: str | None) -> dg.EventLogRecord | None:
        """The newest materialization of one partition; all partitions of an asset are fetched in two queries."""
        if key not in self._latest:
            self._latest[key] = self._fetch_latest(key)
        return self._latest[key].get(partition)

    def partitions_of(self, key: dg.AssetKey) -> list[str]:
        if key not in self._latest:
            self._latest[key] = self._fetch_latest(key)
        return sorted(p for p in self._latest[key] if p is not None)

    def _fetch_latest(self, key: dg.AssetKey) -> dict[str | None, dg.EventLogRecord]:
        if not self.asset_graph.get(key).is_partitioned:
            records = self.instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
            return {None: records[0]} if records else {}
        ids = self.instance.event_log_storage.get_latest_storage_id_by_partition(
            key, dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        if not ids:
            return {}
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, storage_ids=list(ids.values())), limit=len(ids)
        ).records
        return {record.partition_key: record for record in records}

    def version_before(self, key: dg.AssetKey, partition: str | None, storage_id: int) -> dg.DataVersion | None:
        """The data version a partition had just before `storage_id` (what a downstream run read then)."""
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, asset_partitions=[partition] if partition else None, before_storage_id=storage_id
            ),
            limit=1,
        ).records
        return data_version_of(records[0]) if records else None

    def tags(self, run_id: str) -> Mapping[str, str]:
        if run_id not in self._tags:
            run = self.instance.get_run_by_id(run_id)
            self._tags[run_id] = dict(run.tags) if run else {}
        return self._tags[run_id]

    def check_results(self, check_key: dg.AssetCheckKey) -> dict[str, bool]:
        """{run_id: passed} over the recent executions of one check (one query on the index, not per run)."""
        if check_key not in self._checks:
            history = self.instance.event_log_storage.get_asset_check_execution_history(check_key, limit=CHECK_HISTORY)
            self._checks[check_key] = {  # statuses by value: their enum is not exported by `dagster`
                record.run_id: record.status.value == "SUCCEEDED" or only_warned(record)
                for record in history
                if record.status.value != "PLANNED"
            }
        return self._checks[check_key]

    def blocking_check_problems(self, key: dg.AssetKey, partition: str | None) -> list[str]:
        """Blocking checks of `key` that did not pass in the run that wrote this partition (that run checks it; a
        materialization whose run skipped the check counts as unchecked)."""
        record = self.latest_materialization(key, partition)
        if record is None:
            return []
        run_id = record.event_log_entry.run_id
        problems = []
        for check_key in sorted(self.asset_graph.get(key).check_keys, key=lambda k: k.name):
            if not self.asset_graph.get_check_spec(check_key).blocking:
                continue
            passed = self.check_results(check_key).get(run_id)
            if passed is not True:
                problems.append(f"{check_key.name} {'not evaluated' if passed is None else 'failed'}")
        return problems


def only_warned(record) -> bool:
    """[issue 19] A check that failed at WARN severity: reported, never blocking (Dagster's rule), so it does not
    make its partition stale either (a collapse warning would otherwise re-run the teacher stage every build)."""
    event = record.event.dagster_event if record.event else None
    evaluation = event.event_specific_data if event else None
    return (
        record.status.value == "FAILED"
        and isinstance(evaluation, dg.AssetCheckEvaluation)
        and evaluation.severity == dg.AssetCheckSeverity.WARN
    )


class FreshnessJudge:
    """Answers "must this asset partition run?" for one build, against the instance as it is now."""

    def __init__(self, instance: dg.DagsterInstance, asset_graph, settings: Settings):
        self.instance = instance
        self.asset_graph = asset_graph
        self.settings = settings
        self.sections = section_hashes(settings)
        self.facts = RunFacts(instance, asset_graph)
        self._inputs: dict[dg.AssetKey, str] = {}

    def forget(self) -> None:
        """Drop what was read from the instance: call after a run changed it."""
        self.facts.forget()

    # what a run records --------------------------------------------------------------------------------------
    def run_tags(self, keys: Iterable[dg.AssetKey]) -> dict[str, str]:
        inputs = {key.to_user_string(): self.input_fingerprint(key) for key in keys}
        tags = {SETTINGS_RUN_TAG: encode_pairs(self.sections)}
        if any(inputs.values()):
            tags[INPUTS_RUN_TAG] = encode_pairs({name: value for name, value in inputs.items() if value})
        return tags

    def input_fingerprint(self, key: dg.AssetKey) -> str | None:
        """Fingerprint of the files a root asset reads (user corpora), None for other assets."""
        if key.to_user_string() not in USER_CORPUS_ASSETS:
            return None
        if key not in self._inputs:
            self._inputs[key] = corpus_fingerprint(self.settings.corpus.corpus_dirs)
        return self._inputs[key]

    def relevant_sections(self, key: dg.AssetKey) -> list[str]:
        node = self.asset_graph.get(key)
        declared = (node.tags or {}).get(ASSET_SETTINGS_TAG)
        if declared:
            return [s.strip() for s in re.split(r"[.,\s]+", declared) if s.strip()]
        if node.group_name in SECTIONS_BY_GROUP:
            return list(SECTIONS_BY_GROUP[node.group_name])
        return [section for section in self.sections if section != "corpus"]

    # the verdict ---------------------------------------------------------------------------------------------
    def stale(self, keys: Iterable[dg.AssetKey], partition: str | None) -> dict[dg.AssetKey, str]:
        """The keys (of one partition, or unpartitioned) that must run, each with the reason why."""
        reasons: dict[dg.AssetKey, str] = {}
        for key in keys:
            reason = self.dagster_reason(key, partition) or self._outside_reason(key, partition)
            if reason:
                reasons[key] = reason
        return reasons

    def dagster_reason(self, key: dg.AssetKey, partition: str | None) -> str | None:
        """Dagster's own verdict (MISSING, or STALE for a new code version or a dependency partition with a new data
        version), computed from the prefetched latest materializations.

        Dagster has no public API for stale status: the UI gets it over GraphQL from the internal
        `CachingStaleStatusResolver`, so we apply the same rules to the public materialization records (one query
        per asset instead of several per partition). tests/pipelines/test_freshness.py checks that both agree."""
        record = self.facts.latest_materialization(key, partition)
        if record is None:
            return "never materialized"
        node = self.asset_graph.get(key)
        provenance = provenance_of(record)
        if provenance is None:  # written before data versions existed: trust only what is newer
            return None
        if node.code_version is not None and provenance.code_version != node.code_version:
            return "new code version"
        parents = {parent for parent in node.parent_keys if self.asset_graph.get(parent).is_materializable}
        for removed in sorted(set(provenance.input_storage_ids) - set(node.parent_keys)):
            return f"removed dependency on {removed.to_user_string()}"
        for parent in sorted(parents):
            if parent not in provenance.input_storage_ids:
                return f"new dependency on {parent.to_user_string()}"
            pointer = provenance.input_storage_ids[parent]
            for dep_partition in self._dep_partitions(parent, node.is_partitioned, partition):
                latest = self.facts.latest_materialization(parent, dep_partition)
                if latest is None or (pointer is not None and latest.storage_id <= pointer):
                    continue
                if dep_partition is None:
                    consumed = provenance.input_data_versions.get(parent)
                else:
                    consumed = self.facts.version_before(parent, dep_partition, (pointer or 0) + 1)
                if data_version_of(latest) != consumed:
                    where = parent.to_user_string() + (f"[{dep_partition}]" if dep_partition else "")
                    return f"{where} has a new data version"
        return None

    def _dep_partitions(self, parent: dg.AssetKey, child_partitioned: bool, partition: str | None) -> list:
        """Partitions of `parent` one partition of the child reads (all our partitioned assets share centuries)."""
        if not self.asset_graph.get(parent).is_partitioned:
            return [None]
        return [partition] if child_partitioned else self.facts.partitions_of(parent)

    def _outside_reason(self, key: dg.AssetKey, partition: str | None) -> str | None:
        """What Dagster cannot see: settings, input files, deleted outputs, blocking checks."""
        record = self.facts.latest_materialization(key, partition)
        tags = self.facts.tags(record.event_log_entry.run_id)
        recorded = decode_pairs(tags.get(SETTINGS_RUN_TAG, ""))
        changed = [
            section
            for section in self.relevant_sections(key)
            if recorded.get(section, self.sections.get(section)) != self.sections.get(section)
        ]
        if changed:
            return f"settings changed: {', '.join(changed)}"
        fingerprint = self.input_fingerprint(key)
        recorded_inputs = decode_pairs(tags.get(INPUTS_RUN_TAG, ""))
        if fingerprint is not None and recorded_inputs.get(key.to_user_string()) != fingerprint:
            return "input files changed"
        if self._output_missing(key, partition):
            return "output file missing"
        problems = self.facts.blocking_check_problems(key, partition)
        return f"blocking check {problems[0]}" if problems else None

    def _output_missing(self, key: dg.AssetKey, partition: str | None) -> bool:
        """A table folder that exists but lacks this partition's file: someone deleted data behind Dagster."""
        folder = self.settings.home_path / "data" / key.to_user_string()
        return folder.is_dir() and not (folder / f"{partition or UNPARTITIONED}.parquet").is_file()


# [issue 7] Training and evaluation are slow on CPU: a build without --partition trains and evaluates only the
# centuries in `training.eval_centuries` (the demo's two); `--partition`, the UI and jobs still reach any century.
SCOPED_GROUPS = ("training",)


def default_partitions(asset_graph, key: dg.AssetKey, partitions: list[str] | None, settings: Settings) -> list[str]:
    """The partitions a build runs for `key`: those asked for, else every century, except for the `training` group,
    which gets `settings.training.eval_centuries`."""
    if partitions:
        return list(partitions)
    node = asset_graph.get(key)
    every = node.partitions_def.get_partition_keys() if node.partitions_def else []
    if node.group_name in SCOPED_GROUPS:
        return [century for century in every if century in settings.training.eval_centuries]
    return list(every)


def stale_partitions(
    asset_graph, instance: dg.DagsterInstance, settings: Settings, keys: Iterable[dg.AssetKey] | None = None
) -> dict[tuple[dg.AssetKey, str | None], str]:
    """Every (asset, partition) a full build would run now, with the reason: the partitions whose own inputs,
    code, settings or checks changed. What is downstream of them is not listed (see `with_downstream`)."""
    judge = FreshnessJudge(instance, asset_graph, settings)
    stale: dict[tuple[dg.AssetKey, str | None], str] = {}
    for key in keys if keys is not None else asset_graph.toposorted_asset_keys:
        node = asset_graph.get(key)
        if not node.is_materializable:
            continue
        for partition in default_partitions(asset_graph, key, None, settings) if node.is_partitioned else [None]:
            reason = judge.stale([key], partition).get(key)
            if reason:
                stale[(key, partition)] = reason
    return stale


def reads_partition(child_partition: str | None, parent_partition: str | None) -> bool:
    """Whether a child partition reads a parent partition: all our partitioned assets share the centuries, an
    unpartitioned child reads every parent partition and every child reads an unpartitioned parent."""
    return child_partition is None or parent_partition is None or child_partition == parent_partition


def with_downstream(
    asset_graph, stale: Mapping[tuple[dg.AssetKey, str | None], str], settings: Settings
) -> dict[tuple[dg.AssetKey, str | None], str]:
    """`stale` plus everything downstream of it, each with the stale upstream it waits for (what Dagster's UI
    shows as a stale dependency)."""
    result = dict(stale)
    for key in asset_graph.toposorted_asset_keys:
        node = asset_graph.get(key)
        if not node.is_materializable:
            continue
        for partition in default_partitions(asset_graph, key, None, settings) if node.is_partitioned else [None]:
            if (key, partition) in result:
                continue
            for (parent, parent_partition), _ in list(result.items()):
                if parent in node.parent_keys and reads_partition(partition, parent_partition):
                    where = parent.to_user_string() + (f"[{parent_partition}]" if parent_partition else "")
                    result[(key, partition)] = f"upstream {where} is stale"
                    break
    return result


def stale_report(asset_graph, instance: dg.DagsterInstance, settings: Settings) -> dict[str, dict[str, str]]:
    """{asset: {partition or "all": why it is stale}} for what has been materialized at least once and would run
    again: its own change, or a stale upstream it waits for (`chronoprism status` prints it)."""
    stale = with_downstream(asset_graph, stale_partitions(asset_graph, instance, settings), settings)
    report: dict[str, dict[str, str]] = {}
    for (key, partition), reason in stale.items():
        if reason != "never materialized":
            report.setdefault(key.to_user_string(), {})[partition or "all"] = reason
    return report
