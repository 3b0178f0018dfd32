"""The review loop: export tasks -> Label Studio (a real server, fixture made by scripts/label_studio_roundtrip.py)
-> import -> rebuild drops the items judged wrong and the card reports agreement; only vrd_splits' side reruns."""

import json

import dagster as dg
import polars as pl
import pytest

import assets.splits as split_assets
from pipelines.cli import main
from pipelines.definitions import defs
from sources.storage import Store
from tests.review_world import EXPORT_FIXTURE, REVIEW_N, build, published_assets, resources
from tests.vrd_helpers import hashed_embed


@pytest.fixture
def world(home, monkeypatch):
    monkeypatch.setattr(split_assets, "embedder", lambda: hashed_embed)
    instance = dg.DagsterInstance.ephemeral()
    build(home, instance)
    return home, instance


def test_review_round_trip_drops_judged_wrong_items_and_reports_agreement(world, tmp_path, capsys):
    home, instance = world
    store = Store(home)
    out = tmp_path / "export"
    assert main(["review", "export", "--n", str(REVIEW_N), "--stratify", "century,kind", "--out", str(out)]) == 0
    tasks = json.loads((out / "tasks.json").read_text())
    assert '<Choices name="relevant"' in (out / "label_config.xml").read_text()
    assert len(tasks) == REVIEW_N and {t["data"]["kind"] for t in tasks} == {"value", "right", "duty"}
    exported = json.loads(EXPORT_FIXTURE.read_text())
    # the fixture was annotated on exactly these tasks (regenerate it with scripts/label_studio_roundtrip.py)
    assert sorted(t["data"]["candidate_id"] for t in exported) == sorted(t["data"]["candidate_id"] for t in tasks)
    card_before = (home / "publish" / "chronoprism" / "README.md").read_text()
    assert "## Human review" not in card_before

    capsys.readouterr()
    assert main(["review", "import", str(EXPORT_FIXTURE)]) == 0
    summary = json.loads(capsys.readouterr().out.split("\nrun `chronoprism build`")[0])
    assert summary["reviewed"] == REVIEW_N and summary["judged_wrong"] > 0

    before = store.read("vrd_splits")
    result = dg.materialize(published_assets(), resources=resources(), instance=instance)
    assert result.success
    review = store.read("human_review")
    wrong = set(review.filter(~pl.col("accepted"))["candidate_id"])
    assert len(wrong) == summary["judged_wrong"]
    after = store.read("vrd_splits")
    assert after.height == before.height - len(wrong) and not wrong & set(after["candidate_id"])
    rejects = store.read("rejects/human_review")
    assert set(rejects["row_ref"]) == wrong and set(rejects["reason"]) == {"human_rejected"}
    assert not wrong & set(store.read("benchmark")["candidate_id"])
    assert not wrong & set(store.read("preference_pairs")["chosen_id"])
    card = (home / "publish" / "chronoprism" / "README.md").read_text()
    assert "## Human review" in card and "| all | all | 24 |" in card and "91%" in card


def test_only_what_reads_vrd_splits_depends_on_the_review():
    """A new review reaches vrd_splits and its downstream, never the teacher or the VRD stages."""
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey("human_review")
    downstream = graph.get(key).child_keys
    assert downstream == {dg.AssetKey("vrd_splits")}
    upstream_of_splits = graph.get(dg.AssetKey("vrd_splits")).parent_keys
    for stage in ("vrd", "vrd_relevant", "vrd_candidates", "situations", "passages"):
        assert key not in graph.get(dg.AssetKey(stage)).parent_keys
    assert dg.AssetKey("vrd") in upstream_of_splits


def test_import_refuses_what_is_not_a_label_studio_export(home, tmp_path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text('{"tasks": "not a list"}')
    assert main(["review", "import", str(bad)]) == 2
    assert "a list of tasks" in capsys.readouterr().err
    assert not (home / "review" / "imports" / "notes.json").exists()
