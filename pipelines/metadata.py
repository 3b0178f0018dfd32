"""Shared bits for thin assets: metadata from stage stats, markdown previews, data versions, progress lines."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import polars as pl

from pipelines.freshness import ASSET_SETTINGS_TAG
from pipelines.partitions import century_partitions
from sources.stats import StageStats
from sources.storage import file_sha256

if TYPE_CHECKING:
    from teacher.client import Teacher, TeacherStats

PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 80


def stage_asset(
    group: str,
    deps: Iterable[str],
    kinds: Iterable[str] = ("polars", "parquet"),
    *,
    partitioned: bool = False,
    reads: str | None = None,
    **asset_args: Any,
):
    """`dg.asset` with what every chronoprism stage declares: its group, upstream tables (assets read the `Store`,
    so dependencies are `deps`, not inputs), kinds, a code version computed from its code (`code_version_of`),
    century partitions when `partitioned`, and `reads`, the settings sections whose change makes it stale
    (`pipelines.freshness`, e.g. "publish.filter")."""
    tags = dict(asset_args.pop("tags", None) or {})
    if reads:
        tags[ASSET_SETTINGS_TAG] = reads

    def decorate(fn):
        version = asset_args.get("code_version") or code_version_of(fn)
        return dg.asset(
            deps=list(deps),
            group_name=group,
            kinds=set(kinds),
            partitions_def=century_partitions if partitioned else None,
            tags=tags or None,
            **{**asset_args, "code_version": version},
        )(fn)

    return decorate


# packages whose code decides what a stage writes; pipelines/ (orchestration, metadata) does not
STAGE_CODE_PACKAGES = ("sources", "teacher", "quality", "dataset", "training")


def source_of(module_name: str) -> str:
    """A module's source text ("" when it has none); the one place code versions read code from."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ""
    with open(spec.origin, encoding="utf-8") as handle:
        return handle.read()


def stage_modules(module_name: str) -> list[str]:
    """The modules of `STAGE_CODE_PACKAGES` that a module imports (at the top or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source_of(module_name))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found.update(name for name in names if name.split(".")[0] in STAGE_CODE_PACKAGES)
    return sorted(found)


def code_version_of(fn: Callable) -> str:
    """A stage's code version: a hash of the asset function's own source and of every stage module its asset
    module imports, so editing the stage's logic makes its outputs (and, through Dagster, everything downstream)
    stale, while editing a sibling asset in the same module does not. Comments and formatting count as edits: a
    rebuild costs less than a missed change."""
    module_source = source_of(fn.__module__)
    node = next((n for n in ast.walk(ast.parse(module_source)) if getattr(n, "name", None) == fn.__name__), None)
    function_source = (ast.get_source_segment(module_source, node) if node else None) or fn.__qualname__
    digest = hashlib.sha256(function_source.encode())
    for name in stage_modules(fn.__module__):
        digest.update(f"\0{name}\0".encode() + source_of(name).encode())
    return digest.hexdigest()[:16]


def preview_markdown(df: pl.DataFrame, columns: list[str] | None = None, rows: int = PREVIEW_ROWS) -> str:
    """A ≤10-row markdown table with long cells cut, for the asset page."""
    view = df.select(columns) if columns else df
    view = view.head(rows)
    if view.is_empty():
        return "_(no rows)_"
    header = "| " + " | ".join(view.columns) + " |"
    rule = "|" + "---|" * len(view.columns)
    lines = [header, rule]
    for row in view.iter_rows():
        cells = []
        for value in row:
            text = "" if value is None else str(value)
            text = text.replace("\n", " ").replace("|", "\\|")
            cells.append(text[:PREVIEW_CELL_CHARS] + ("…" if len(text) > PREVIEW_CELL_CHARS else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_metadata(
    stats: StageStats,
    path: Path | None = None,
    preview: pl.DataFrame | None = None,
    preview_columns: list[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata every stage reports: accounting, reasons, preview, path, plus stage-specific extras."""
    meta: dict[str, Any] = {
        "n_in": dg.MetadataValue.int(stats.n_in),
        "n_out": dg.MetadataValue.int(stats.n_out),
        "n_rejected": dg.MetadataValue.int(stats.n_rejected),
        "rejected_by_reason": dg.MetadataValue.json(dict(sorted(stats.rejected.items()))),
        "dagster/row_count": dg.MetadataValue.int(stats.n_out),
    }
    if stats.metrics:
        meta["metrics"] = dg.MetadataValue.json({k: v.to_dict() for k, v in sorted(stats.metrics.items())})
    if path is not None:
        meta["path"] = dg.MetadataValue.path(str(path))
    if preview is not None:
        meta["preview"] = dg.MetadataValue.md(preview_markdown(preview, preview_columns))
    for key, value in (extra or {}).items():
        meta[key] = value if isinstance(value, dg.MetadataValue) else _wrap(value)
    return meta


def _wrap(value: Any) -> dg.MetadataValue:
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, (dict, list)):
        return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
    return dg.MetadataValue.text(str(value))


def png_metadata(png: bytes) -> dg.MetadataValue:
    """Embed a PNG plot so the Dagster UI shows it inline on the materialization."""
    import base64

    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


def table_data_version(df: pl.DataFrame) -> dg.DataVersion:
    """A content hash of a table (schema, then every row in order) as the partition's Dagster data version.

    Return it as `MaterializeResult(data_version=...)`: a rerun that writes the same rows keeps the same version, so
    Dagster (and `chronoprism build`) see the downstream partitions as fresh and skip them. Row hashes come from
    polars (`hash_rows`), stable within one polars version; an upgrade changes every version once.
    """
    digest = hashlib.sha256(repr([(name, str(dtype)) for name, dtype in df.schema.items()]).encode())
    digest.update(str(df.height).encode())
    if df.height and df.width:
        digest.update(df.hash_rows(seed=0).to_numpy().tobytes())
    return dg.DataVersion(digest.hexdigest()[:32])


def file_data_version(*paths: Path) -> dg.DataVersion:
    """A content hash of files or directories (every file under them, by relative path) for outputs that are not
    one table: model checkpoints, a published dataset directory, a plot."""
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).is_dir() else [Path(root)]
        for file in files:
            digest.update(str(file.relative_to(root) if file != Path(root) else file.name).encode() + b"\0")
            digest.update(file_sha256(file).encode())
    return dg.DataVersion(digest.hexdigest()[:32])


def stage_result(
    stats: StageStats,
    df: pl.DataFrame,
    path: Path | None = None,
    preview_columns: list[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dg.MaterializeResult:
    """`MaterializeResult` with the stage metadata (previewing `df`) and `df`'s content hash as data version."""
    return dg.MaterializeResult(
        metadata=stage_metadata(stats, path, df, preview_columns, extra), data_version=table_data_version(df)
    )


PROGRESS_PREFIX = "progress "


class ProgressLog:
    """Progress lines from a long step, at most one every `every_s` seconds (plus the last one).

    Each line is `progress {json}` in the Dagster log: readable in the UI, and `chronoprism build` parses it into
    its live display (rows done, teacher calls per second). Counters: `done`, `total`, `unit`, and any extra ints
    such as `teacher_calls` (backend calls, not cache hits).
    """

    def __init__(self, context: dg.AssetExecutionContext, stage: str, total: int | None = None, every_s: float = 5.0):
        self.context = context
        self.stage = stage
        self.total = total
        self.every_s = every_s
        self._last = 0.0

    def update(self, done: int, unit: str = "rows", force: bool = False, **counters: int) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s and (self.total is None or done < self.total):
            return
        self._last = now
        payload = {"stage": self.stage, "done": done, "total": self.total, "unit": unit, **counters}
        self.context.log.info(PROGRESS_PREFIX + json.dumps(payload, sort_keys=True))


def report_teacher_progress(context: dg.AssetExecutionContext, stage: str, teacher: Teacher) -> Teacher:
    """Log a progress line after each teacher batch (calls answered, backend calls made since now), so the UI and
    `chronoprism build` show teacher calls per second for `stage`; returns `teacher` for chaining."""
    log = ProgressLog(context, stage)
    start = teacher.snapshot()

    def report(stats: TeacherStats) -> None:
        done = stats - start
        answered = done.counters.backend_calls + done.counters.cache_hits
        log.update(answered, unit="calls", teacher_calls=done.counters.backend_calls)

    teacher.on_batch = report
    return teacher
