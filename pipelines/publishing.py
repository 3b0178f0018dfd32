"""`chronoprism publish`: materialize `hf_publish` through Dagster (so the UI records it) and print the outcome.

Pushes when `publish.repo_id` and the token env var (HF_TOKEN) are set, else writes the dry-run plan. The dataset
directory must exist: `chronoprism build` (or `--select hf_dataset`) makes it.
"""

from __future__ import annotations

import argparse
import json

from pipelines.build import root_cause
from pipelines.tags import SOURCE_TAG


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", help="Hub dataset repo (user/name); default: settings publish.repo_id")
    parser.add_argument("--dry-run", action="store_true", help="only write the publish plan, even with a token")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="settings override (JSON values)")
    parser.set_defaults(corpus=None, no_bundled=False)


def overrides_of(args: argparse.Namespace) -> list[str]:
    """The CLI flags as `--set` items, so the settings resource sees them like any other override."""
    extra = list(args.set or [])
    if args.repo_id:
        extra.append(f"publish.repo_id={json.dumps(args.repo_id)}")
    if args.dry_run:
        extra.append("publish.dry_run=true")
    return extra


def run_publish(settings_resource) -> int:
    import dagster as dg

    from dataset.publish import publish_files
    from pipelines.definitions import make_definitions

    defs = make_definitions({"settings": settings_resource})
    job = defs.resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey("hf_publish")],
            raise_on_error=False,
            tags={SOURCE_TAG: "cli"},
        )
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        error = failure.step_failure_data.error if failure and failure.step_failure_data else None
        print(f"publish failed: {root_cause(error) if error else 'see the Dagster run ' + result.run_id}")
        return 1
    outcome = json.loads(publish_files(settings_resource.get())["outcome_path"].read_text(encoding="utf-8"))
    if outcome["action"] == "dry_run":
        print(f"{outcome['message']}\nplan: {outcome['plan_path']}")
    elif outcome["action"] == "unchanged":
        print(f"unchanged since the last push to {outcome['target']} (content {outcome['content_hash'][:12]})")
    else:
        print(f"pushed {len(outcome['added'])} files to {outcome['target']} (commit {outcome['commit']})")
    return 0
