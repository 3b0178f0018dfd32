"""[issue 18] Human review: Label Studio exports (`chronoprism review import`) as the `human_review` table."""

import dagster as dg

from pipelines.metadata import stage_asset, stage_result
from pipelines.resources import SettingsResource
from pipelines.review import read_imports


@stage_asset("review", [], ("labelstudio", "parquet"))
def human_review(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Every Label Studio export under `<home>/review/imports/` read into one row per reviewed item (relevant?
    valence right? explanation right?; the latest judgement counts). `vrd_splits` drops the items judged wrong
    (rejects/human_review, reason human_rejected); the card reports agreement per kind and century."""
    store = settings.store()
    result = read_imports(store.home)
    path = store.write("human_review", result.review)
    store.write_rejects("review_import", result.rejects)
    extra = {"files": result.files, "accepted": int(result.review["accepted"].sum())}
    return stage_result(result.stats, result.review, path, ["century", "kind", "accepted", "candidate_id"], extra)
