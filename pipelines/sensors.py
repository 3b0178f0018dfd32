"""Sensors: new or changed corpus files start ingest of exactly the centuries they touch; failed runs are recorded.

`corpus_files_sensor` (stopped by default) keeps a JSON cursor `{path: {size, mtime_ns, sha256, centuries}}` over
the configured corpus directories. A file whose size or mtime moved is hashed; a new hash (or a deleted file) is
a new file version: one run of `raw_user_corpus`, then one `documents` run per century the file touches (old and
new rows), all with run keys derived from the file versions and a shared `chronoprism/corpus_sync` tag that
dagster.yaml limits to one run at a time, so the queue runs them in order. Downstream partitions follow through
`chronoprism_automation` (pipelines/automation.py) only where the data changed.

`run_failure_recorder` (running by default) appends every failed run to the `run_failures` table under
`$CHRONOPRISM_HOME/data/run_failures/` and reports it on the `run_failures` asset, so the asset page lists
recent failures with their error; no external service is involved.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.automation import automation_sensor
from pipelines.freshness import corpus_files, is_sidecar
from pipelines.metadata import preview_markdown
from pipelines.partitions import CENTURIES
from pipelines.resources import SettingsResource
from pipelines.tags import BUILD_ID_TAG
from sources.base import RawRow
from sources.dates import DateError
from sources.schema import RUN_FAILURES, century_of
from sources.storage import file_sha256
from sources.user_corpus import SIDECAR_SUFFIX, UserCorpusReader

logger = logging.getLogger(__name__)

RAW_USER_CORPUS = dg.AssetKey("raw_user_corpus")
DOCUMENTS = dg.AssetKey("documents")
CORPUS_SYNC_TAG = "chronoprism/corpus_sync"

# ---------------------------------------------------------------------------------------------------------------
# corpus directories


@dataclass
class CorpusChanges:
    cursor: dict[str, dict]
    changed: list[str] = field(default_factory=list)  # paths whose content is new, changed or gone
    centuries: set[str] = field(default_factory=set)  # century partitions those files touched, before or now

    def version(self) -> str:
        """One key for this set of file versions: the same edit seen twice never starts two runs."""
        digest = hashlib.sha256()
        for path in sorted(self.changed):
            state = self.cursor.get(path, {})
            digest.update(f"{path}\t{state.get('sha256', 'deleted')}\t{state.get('mtime_ns', 0)}\n".encode())
        return digest.hexdigest()[:16]


class _OneFileReader(UserCorpusReader):
    """The user-corpus reader limited to one file, to learn which centuries its rows fall in."""

    def __init__(self, path: Path):
        super().__init__(path.parent)
        self.path = path

    def iter_raw(self):
        yield from self._read_file(self.path)


def centuries_of_file(path: Path) -> set[str]:
    """Century partitions of the rows of one corpus file (rows without a usable date have none)."""
    if is_sidecar(path):
        path = path.with_name(path.name[: -len(SIDECAR_SUFFIX)] + ".txt")
    if not path.is_file():
        return set()
    reader = _OneFileReader(path)
    found: set[str] = set()
    for item in reader.iter_raw():
        if not isinstance(item, RawRow):
            continue
        try:
            found.add(century_of(reader.date_of(item).year))
        except (DateError, TypeError, ValueError):
            continue
    return found & set(CENTURIES)


def scan_corpus(dirs: Iterable[str | Path], cursor: dict[str, dict]) -> CorpusChanges:
    """Compare the corpus directories with the cursor; hash only files whose size or mtime moved."""
    new_cursor: dict[str, dict] = {}
    changes = CorpusChanges(new_cursor)
    for path in corpus_files(dirs):
        stat = path.stat()
        key = str(path)
        before = cursor.get(key)
        if before and before["size"] == stat.st_size and before["mtime_ns"] == stat.st_mtime_ns:
            new_cursor[key] = before
            continue
        digest = file_sha256(path)
        if before and before.get("sha256") == digest:  # touched, same bytes
            new_cursor[key] = {**before, "mtime_ns": stat.st_mtime_ns}
            continue
        centuries = centuries_of_file(path)
        new_cursor[key] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": digest,
            "centuries": sorted(centuries),
        }
        changes.changed.append(key)
        changes.centuries |= centuries | set((before or {}).get("centuries", []))
    for key, before in cursor.items():
        if key not in new_cursor:  # deleted: its rows leave the centuries they were in
            changes.changed.append(key)
            changes.centuries |= set(before.get("centuries", []))
    return changes


def corpus_run_requests(changes: CorpusChanges) -> list[dg.RunRequest]:
    """Ingest first, then one `documents` run per touched century; the sync tag keeps them in this order."""
    if not changes.changed:
        return []
    version = changes.version()
    names = ", ".join(Path(p).name for p in sorted(changes.changed))[:200]
    tags = {CORPUS_SYNC_TAG: version, "chronoprism/corpus_files": names}
    requests = [dg.RunRequest(run_key=f"corpus-{version}", asset_selection=[RAW_USER_CORPUS], tags=tags)]
    for century in sorted(changes.centuries):
        requests.append(
            dg.RunRequest(
                run_key=f"corpus-{version}-{century}",
                asset_selection=[DOCUMENTS],
                partition_key=century,
                tags=tags,
            )
        )
    return requests


@dg.sensor(
    name="corpus_files_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    target=[RAW_USER_CORPUS, DOCUMENTS],
    description="Watches settings.corpus.corpus_dirs; a new, changed or deleted file re-ingests raw_user_corpus "
    "and rebuilds the documents partitions of the centuries it touches.",
)
def corpus_files_sensor(context: dg.SensorEvaluationContext, settings: SettingsResource) -> dg.SensorResult:
    dirs = settings.get().corpus.corpus_dirs
    if not dirs:
        return dg.SensorResult(skip_reason="no corpus directories configured (settings.corpus.corpus_dirs)")
    changes = scan_corpus(dirs, json.loads(context.cursor) if context.cursor else {})
    cursor = json.dumps(changes.cursor, sort_keys=True)
    if not changes.changed:
        return dg.SensorResult(skip_reason=f"no changes in {len(changes.cursor)} corpus files", cursor=cursor)
    context.log.info(f"{len(changes.changed)} changed corpus files touch {sorted(changes.centuries) or 'no century'}")
    return dg.SensorResult(run_requests=corpus_run_requests(changes), cursor=cursor)


# ---------------------------------------------------------------------------------------------------------------
# failed runs

RUN_FAILURES_KEY = dg.AssetKey("run_failures")
KEEP_FAILURES = 1000
ERROR_CHARS = 500

run_failures_spec = dg.AssetSpec(
    RUN_FAILURES_KEY,
    group_name="monitoring",
    kinds={"parquet"},
    description="Failed Dagster runs (time, job, partition, assets, root error), recorded by the "
    "run_failure_recorder sensor into data/run_failures/all.parquet; the latest entries are in the metadata.",
)


def failure_row(run: dg.DagsterRun, error: str, failed_at: datetime | None = None) -> dict[str, str | None]:
    assets = sorted(key.to_user_string() for key in (run.asset_selection or []))
    return {
        "failed_at": (failed_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "assets": ", ".join(assets) or None,
        "error": error[:ERROR_CHARS],
        "build_id": run.tags.get(BUILD_ID_TAG),
    }


def record_failure(store, row: dict) -> tuple[Path, pl.DataFrame]:
    """Append one failure (once per run id) to the run_failures table, keeping the newest KEEP_FAILURES rows."""
    table = store.read("run_failures", missing_ok=True, schema=RUN_FAILURES)
    if table.height and row["run_id"] in set(table["run_id"].to_list()):
        return store.table_path("run_failures"), table
    table = pl.concat([pl.DataFrame([row], schema=RUN_FAILURES), table]).head(KEEP_FAILURES)
    return store.write("run_failures", table), table


def failure_metadata(path: Path, table: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    latest = table.row(0, named=True)
    return {
        "n_failures": dg.MetadataValue.int(table.height),
        "last_run_id": dg.MetadataValue.text(latest["run_id"]),
        "last_job": dg.MetadataValue.text(latest["job"] or ""),
        "last_error": dg.MetadataValue.text(latest["error"] or ""),
        "recent": dg.MetadataValue.md(preview_markdown(table, ["failed_at", "job", "partition", "assets", "error"])),
        "path": dg.MetadataValue.path(str(path)),
    }


def _error_of(context: dg.RunFailureSensorContext) -> str:
    from pipelines.build import root_cause

    for event in context.get_step_failure_events():
        if event.step_failure_data and event.step_failure_data.error:
            return f"{event.step_key}: {root_cause(event.step_failure_data.error)}"
    return context.failure_event.message or "run failed"


@dg.run_failure_sensor(
    name="run_failure_recorder",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run in the run_failures table and on the run_failures asset.",
)
def run_failure_recorder(context: dg.RunFailureSensorContext, settings: SettingsResource) -> None:
    row = failure_row(context.dagster_run, _error_of(context))
    path, table = record_failure(settings.store(), row)
    message = f"run {row['run_id']} ({row['job']}, partition {row['partition']}) failed: {row['error']}"
    context.log.warning(message)
    logger.warning(message)
    context.instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=RUN_FAILURES_KEY, metadata=failure_metadata(path, table))
    )


SENSORS: list[dg.SensorDefinition] = [corpus_files_sensor, run_failure_recorder, automation_sensor]
MONITORING_ASSETS: list[dg.AssetSpec] = [run_failures_spec]
