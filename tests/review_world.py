"""A small published world for the review loop tests (and for regenerating the Label Studio fixture).

seed_world's documents, passages, situations and candidates (no teacher needed), then the real relevance, VRD
dedup, split and dataset stages. Everything is deterministic, so `chronoprism review export --n 24` over it gives
the same tasks every time, and tests/fixtures/label_studio/export.json (made from those tasks by a real Label
Studio server, scripts/label_studio_roundtrip.py) matches it:

    python -m tests.review_world /tmp/review-world
    CHRONOPRISM_HOME=/tmp/review-world python -m pipelines.cli review export --n 24 --out /tmp/review-world/export
    python scripts/label_studio_roundtrip.py --tasks /tmp/review-world/export/tasks.json \
        --config /tmp/review-world/export/label_config.xml --out tests/fixtures/label_studio/export.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dagster as dg

SETTINGS = {"filter.relevance_scorer": "given", "publish.test_fraction": 0.25, "publish.validation_fraction": 0.15}
EXPORT_FIXTURE = Path(__file__).parent / "fixtures" / "label_studio" / "export.json"
REVIEW_N = 24


def resources() -> dict:
    from pipelines.resources import SettingsResource, TeacherResource

    return {"settings": SettingsResource(overrides_json=json.dumps(SETTINGS)), "teacher": TeacherResource()}


def published_assets() -> list:
    from assets.publish import hf_dataset
    from assets.review import human_review
    from assets.splits import benchmark, preference_pairs, sft_mixture, value_trend_data, vrd_splits

    return [human_review, vrd_splits, sft_mixture, preference_pairs, benchmark, value_trend_data, hf_dataset]


def build(home: Path, instance: dg.DagsterInstance | None = None) -> None:
    """Write the seed world under `home` (CHRONOPRISM_HOME must point there) and materialize relevance -> vrd ->
    splits -> hf_dataset. Callers swap `assets.splits.embedder` for `tests.vrd_helpers.hashed_embed` first."""
    from assets.splits import vrd, vrd_relevant
    from sources.storage import Store
    from tests.vrd_helpers import seed_world

    seed_world(Store(home), situations_per_century=8)
    for century in ("C017", "C019"):
        result = dg.materialize([vrd_relevant, vrd], partition_key=century, resources=resources(), instance=instance)
        assert result.success
    assert dg.materialize(published_assets(), resources=resources(), instance=instance).success


if __name__ == "__main__":
    import assets.splits as split_assets
    from tests.vrd_helpers import hashed_embed

    target = Path(sys.argv[1]).resolve()
    target.mkdir(parents=True, exist_ok=True)
    os.environ["CHRONOPRISM_HOME"] = str(target)
    split_assets.embedder = lambda: hashed_embed
    build(target)
    print(f"built {target}")
