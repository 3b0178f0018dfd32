"""`chronoprism publish` in-process: dry-run plan without a token, a clear failure (no token shown) with one."""

import json

from dataset.hf_dataset import CardInfo, write_dataset
from pipelines.cli import main
from sources.schema import PRETRAIN, frame_of

FAKE_TOKEN = "hf_FAKEcliTOKEN0123456789abcdef"


def test_publish_dry_run_then_offline_push_fails_without_leaking_the_token(home, monkeypatch, capfd):
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    row = {"text": "old", "doc_id": "d", "year": 1650, "source": "bible", "date_method": "field:year"}
    pretrain = frame_of([row], PRETRAIN)
    write_dataset(home / "publish" / "chronoprism", {"pretrain": {"C017": pretrain}}, CardInfo(name="chronoprism"))

    assert main(["publish"]) == 0
    out = capfd.readouterr().out
    assert "dry run: publish.repo_id, HF_TOKEN not set" in out and "chronoprism.publish_plan.json" in out
    plan = json.loads((home / "publish" / "chronoprism.publish_plan.json").read_text())
    assert {f["path"] for f in plan["files"]} == {"README.md", "data/pretrain/C017.parquet"}

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert main(["publish", "--repo-id", "me/demo", "--dry-run"]) == 0
    assert "publish.dry_run is set" in capfd.readouterr().out

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["publish", "--repo-id", "me/demo"]) == 1
    captured = capfd.readouterr()
    assert "HF_HUB_OFFLINE=1" in captured.out
    assert FAKE_TOKEN not in captured.out + captured.err
    for path in home.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path
