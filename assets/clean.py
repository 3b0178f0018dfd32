"""Quality stage, part 1: `documents_clean`, one century at a time."""

from collections import Counter

import dagster as dg
import polars as pl

from pipelines.metadata import stage_asset, throughput_progress, written_result
from pipelines.resources import SettingsResource
from quality.clean import STAGE, clean_batches
from quality.filters import build_filters
from sources.parallel import batch_map_of
from sources.schema import DOCUMENTS
from sources.stats import StageStats
from sources.storage import batch_bytes_for

PREVIEW_COLUMNS = ["source", "title", "year", "n_chars", "text"]


@stage_asset("quality", ["documents"], partitioned=True)
def documents_clean(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Documents of one century normalised (NFC + whitespace, historical spelling untouched), Gutenberg wrappers
    stripped, and filtered (length, licence text, boilerplate lines, non-letter lines, repetition). Each drop lands in
    rejects/clean with its reason and the measured value against the threshold."""
    config = settings.get()
    store = settings.store()
    century = context.partition_key
    batch_bytes = batch_bytes_for(config.memory_budget_gb)  # [issue 14] the century in batches, written as it goes
    batches = store.batches("documents", century, schema=DOCUMENTS, batch_bytes=batch_bytes)
    progress = throughput_progress(context, "documents_clean", store.num_rows("documents", century))
    stats, rejects, changed = StageStats(STAGE), [], Counter()
    with store.writer("documents_clean", DOCUMENTS, century) as out:
        for result in clean_batches(batches, config.clean, progress, batch_map_of(config)):
            out.write(result.documents)
            stats, changed = stats + result.stats, changed + result.changed
            rejects.append(result.rejects)
    store.write_rejects("clean", pl.concat(rejects), century)
    context.log.info(f"{century}: kept {stats.n_out} of {stats.n_in}, {dict(stats.rejected)}")
    extra = {"texts_changed": dict(changed), "filters": [repr(rule) for rule in build_filters(config.clean)]}
    return written_result(stats.check(), out, PREVIEW_COLUMNS, extra=extra)
