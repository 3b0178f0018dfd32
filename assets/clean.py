"""Quality stage, part 1: `documents_clean`, one century at a time."""

import dagster as dg

from pipelines.metadata import stage_asset, stage_result
from pipelines.resources import SettingsResource
from quality.clean import clean_documents
from quality.filters import build_filters
from sources.schema import DOCUMENTS

PREVIEW_COLUMNS = ["source", "title", "year", "n_chars", "text"]


@stage_asset("quality", ["documents"], partitioned=True)
def documents_clean(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Documents of one century normalised (NFC + whitespace, historical spelling untouched), Gutenberg wrappers
    stripped, and filtered (length, licence text, boilerplate lines, non-letter lines, repetition). Each drop lands in
    rejects/clean with its reason and the measured value against the threshold."""
    config = settings.get()
    store = settings.store()
    century = context.partition_key
    result = clean_documents(store.read("documents", century, schema=DOCUMENTS), config.clean)
    path = store.write("documents_clean", result.documents, century)
    store.write_rejects("clean", result.rejects, century)
    context.log.info(f"{century}: kept {result.stats.n_out} of {result.stats.n_in}, {dict(result.stats.rejected)}")
    extra = {
        "texts_changed": dict(result.changed),
        "filters": [repr(rule) for rule in build_filters(config.clean)],
    }
    return stage_result(result.stats, result.documents, path, PREVIEW_COLUMNS, extra=extra)
