"""The teacher-collapse checks run through Dagster on crafted tables: which fire, at which severity, what blocks,
and how `chronoprism status` lists them."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from pipelines.build import blocks
from pipelines.check_status import check_outcomes, print_checks
from pipelines.collapse_checks import collapse_check
from pipelines.freshness import FreshnessJudge
from pipelines.home import activate
from pipelines.partitions import century_partitions
from pipelines.resources import SettingsResource
from sources.settings import Settings
from sources.storage import Store
from tests.quality.generated_tables import collapsed_table, healthy_table, situations


def graph(frame: pl.DataFrame, century: str = "C019") -> list:
    """A stand-in `vrd_candidates` writing `frame`, its collapse check, and one asset downstream of it."""

    @dg.asset(name="vrd_candidates", partitions_def=century_partitions)
    def candidates_stub(settings: SettingsResource) -> None:
        settings.store().write("vrd_candidates", frame, century)

    @dg.asset(deps=["vrd_candidates"], partitions_def=century_partitions)
    def downstream(settings: SettingsResource) -> None:
        settings.store().write("downstream_ran", pl.DataFrame({"ok": [True]}), century)

    return [candidates_stub, downstream, collapse_check("vrd_candidates")]


def run(home, frame: pl.DataFrame, **overrides) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    activate()
    Store(home).write("situations", situations(6), "C019")
    instance = dg.DagsterInstance.get()
    resources = {"settings": SettingsResource(overrides_json=json.dumps(overrides))}
    result = dg.materialize(
        graph(frame), partition_key="C019", resources=resources, instance=instance, raise_on_error=False
    )
    return result, instance


def evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (only,) = result.get_asset_check_evaluations()
    return only


def test_healthy_candidates_pass(home):
    result, _ = run(home, healthy_table())
    check = evaluation(result)
    assert check.passed and check.check_name == "vrd_candidates_collapse"
    assert check.metadata["generation_stats"].value["kinds"]["value"]["distinct_text_ratio"] == 1.0


@pytest.mark.parametrize("blocking", [False, True])
def test_collapsed_candidates_warn_or_block_and_status_names_them(home, capsys, blocking):
    result, instance = run(home, collapsed_table(), **{"collapse.blocking": blocking})
    check = evaluation(result)
    assert not check.passed
    assert check.description.startswith("one text ('Justice') is 67 % of values in C019")
    assert "rights: one valence only (either) in C019" in check.description
    rules = {(f["rule"], f["kind"]) for f in check.metadata["findings"].value}
    assert rules == {("max_top_text_share", "value"), ("min_distinct_text_ratio", "value"),
                     ("min_valences", "right"), ("max_copied_share", "duty")}  # fmt: skip
    expected = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN
    assert check.severity == expected and blocks(check) is blocking
    assert Store(home).exists("downstream_ran", "C019") is not blocking  # only an ERROR stops downstream

    defs = dg.Definitions(
        assets=graph(collapsed_table())[:2],
        asset_checks=[collapse_check("vrd_candidates")],
        resources={"settings": SettingsResource()},
    )
    judge = FreshnessJudge(instance, defs.resolve_asset_graph(), Settings.load())
    stale = judge.stale([dg.AssetKey("vrd_candidates")], "C019")  # a warning never re-runs the teacher stage
    assert stale == (
        {dg.AssetKey("vrd_candidates"): "blocking check vrd_candidates_collapse failed"} if blocking else {}
    )

    outcome = check_outcomes(instance)
    listed = outcome["failed" if blocking else "warned"]
    assert [(row["check"], row["partition"]) for row in listed] == [("vrd_candidates_collapse", "C019")]
    assert outcome["failed" if not blocking else "warned"] == [] and outcome["passed"] == 0
    print_checks(outcome)
    out = capsys.readouterr().out
    label = "FAILED" if blocking else "WARNED"
    assert f"{label} vrd_candidates_collapse [C019]: one text ('Justice') is 67 % of values in C019" in out


def test_status_keeps_only_the_latest_evaluation_per_partition(home):
    _, instance = run(home, collapsed_table())
    run(home, healthy_table())  # the same check and partition again, now healthy
    outcome = check_outcomes(instance)
    assert outcome == {"passed": 1, "failed": [], "warned": []}
