"""Ingest: one raw asset per source (from one factory), then `documents` partitioned by century."""

import dagster as dg

from pipelines.metadata import stage_asset, throughput_progress, written_result
from pipelines.resources import SettingsResource
from sources.documents import write_documents
from sources.ingest import ingest_source
from sources.registry import SOURCES, SourceSpec
from sources.schema import DOCUMENTS
from sources.storage import batch_bytes_for

PREVIEW_COLUMNS = ["source", "title", "year", "century", "date_method", "n_chars", "text"]


def raw_table(spec: SourceSpec) -> str:
    return f"raw_{spec.name}"


def undated_table(spec: SourceSpec) -> str:
    """[issue 9] Rows of `spec` rejected only for their date, kept whole for the date estimator."""
    return f"undated_{spec.name}"


ESTIMATED_DOCUMENTS = "estimated_documents"  # [issue 9] undated rows placed by the classifier (assets/dating.py)


def build_raw_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    @stage_asset(
        "sources",
        [],
        ("python", "parquet"),
        name=raw_table(spec),
        description=f"Raw documents from {spec.description}. Rejected rows land in rejects/ingest/{spec.name}.",
        tags={"source": spec.name},
    )
    def _raw(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
        config = settings.get()
        store = settings.store()
        progress = throughput_progress(context, raw_table(spec))
        # [issue 14] streamed, never the whole source; row groups by century so each `documents` partition
        # decompresses only its own century's text (years are random in a corpus, so a plain order would not do)
        with store.writer(raw_table(spec), DOCUMENTS, cluster_by="century") as out:
            result = ingest_source(spec, config, out, batch_bytes_for(config.memory_budget_gb), progress)
        store.write_rejects("ingest", result.rejects, spec.name)
        if result.undated.height or store.exists(undated_table(spec)):  # [issue 9] only with corpus.estimate_dates
            store.write(undated_table(spec), result.undated)
        context.log.info(f"{spec.name}: {result.stats.n_out} documents, {result.stats.n_rejected} rejected")
        extra = {
            "rows_per_century": dict(sorted(result.rows_per_century.items())),
            "chars_per_century": dict(sorted(result.chars_per_century.items())),
        }
        return written_result(result.stats, out, PREVIEW_COLUMNS, extra=extra)

    return _raw


raw_assets = [build_raw_asset(spec) for spec in SOURCES]


# [issue 9] ESTIMATED_DOCUMENTS: undated user rows placed by the date estimator
@stage_asset("sources", [*(raw_table(spec) for spec in SOURCES), ESTIMATED_DOCUMENTS], partitioned=True)
def documents(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Dated documents of one century (C013…C021) from every source, in the DESIGN.md §2 schema."""
    config = settings.get()
    store = settings.store()
    century = context.partition_key
    raw = [store.table_path(raw_table(spec)) for spec in SOURCES]
    for spec, path in zip(SOURCES, raw, strict=True):
        if not path.is_file():
            raise FileNotFoundError(f"table {raw_table(spec)!r} has not been materialized ({path})")
    raw.append(store.table_path(ESTIMATED_DOCUMENTS))  # [issue 9] absent unless opted in
    batch_bytes = batch_bytes_for(config.memory_budget_gb)  # [issue 14] sorted by doc_id range, a batch at a time
    with store.writer("documents", DOCUMENTS, century) as out:
        result = write_documents(raw, century, out, batch_bytes, store.home / "tmp" / f"documents-{century}")
    store.write_rejects("documents", result.rejects, century)
    extra = {"rows_per_source": result.rows_per_source, "chars_per_source": result.chars_per_source}
    return written_result(result.stats, out, PREVIEW_COLUMNS, extra=extra)
