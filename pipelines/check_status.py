"""[issue 19] Asset check outcomes for `chronoprism status`: the failed and warned checks by name, from the Dagster
instance's event log (the same evaluations the UI shows), so a collapse warning is visible from the CLI too."""

from __future__ import annotations

from typing import Any


def check_outcomes(instance, limit: int = 5000) -> dict[str, Any]:
    """[issue 19] The latest evaluation of every asset check (per partition) from the instance's event log: the
    failed ones (ERROR) and the warned ones (WARN) by check name, with what the check said; passed ones counted."""
    import dagster as dg

    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), limit=limit, ascending=False
    )
    latest: dict[tuple[str, str, str | None], Any] = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        key = (evaluation.asset_key.to_user_string(), evaluation.check_name, evaluation.partition)
        latest.setdefault(key, evaluation)
    outcome: dict[str, Any] = {"passed": 0, "failed": [], "warned": []}
    for (asset, check, partition), evaluation in sorted(
        latest.items(), key=lambda item: (item[0][1], item[0][2] or "")
    ):
        if evaluation.passed:
            outcome["passed"] += 1
            continue
        level = "failed" if evaluation.severity == dg.AssetCheckSeverity.ERROR else "warned"
        outcome[level].append(
            {"check": check, "asset": asset, "partition": partition, "description": evaluation.description or ""}
        )
    return outcome


def print_checks(checks: dict[str, Any], width: int = 160) -> None:
    """[issue 19] One line per failed / warned check and partition, what it found cut to `width` characters."""
    if not checks:
        return
    failed, warned = checks.get("failed", []), checks.get("warned", [])
    print(f"checks: {checks.get('passed', 0)} passed, {len(failed)} failed, {len(warned)} warned")
    for label, rows in (("FAILED", failed), ("WARNED", warned)):
        for row in rows:
            where = f" [{row['partition']}]" if row["partition"] else ""
            said = " ".join(row["description"].split())
            print(f"  {label} {row['check']}{where}: {said[:width] + ('…' if len(said) > width else '')}")
