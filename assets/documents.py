"""Ingest: one raw asset per source (from one factory), then `documents` partitioned by century."""

import dagster as dg
import polars as pl

from pipelines.metadata import stage_asset, stage_result
from pipelines.resources import SettingsResource
from sources.documents import assemble_documents
from sources.registry import SOURCES, SourceSpec, read_source
from sources.schema import DOCUMENTS
from sources.stats import counts_by

PREVIEW_COLUMNS = ["source", "title", "year", "century", "date_method", "n_chars", "text"]


def raw_table(spec: SourceSpec) -> str:
    return f"raw_{spec.name}"


def undated_table(spec: SourceSpec) -> str:
    """[issue 9] Rows of `spec` rejected only for their date, kept whole for the date estimator."""
    return f"undated_{spec.name}"


ESTIMATED_DOCUMENTS = "estimated_documents"  # [issue 9] undated rows placed by the classifier (assets/dating.py)


def _per_source_breakdown(documents: pl.DataFrame) -> dict:
    return {
        "rows_per_century": counts_by(documents, "century"),
        "chars_per_century": dict(
            documents.group_by("century").agg(pl.col("n_chars").sum()).sort("century").iter_rows()
        ),
    }


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
        result = read_source(spec, config)
        path = store.write(raw_table(spec), result.documents)
        store.write_rejects("ingest", result.rejects, spec.name)
        if result.undated.height or store.exists(undated_table(spec)):  # [issue 9] only with corpus.estimate_dates
            store.write(undated_table(spec), result.undated)
        context.log.info(f"{spec.name}: {result.stats.n_out} documents, {result.stats.n_rejected} rejected")
        return stage_result(
            result.stats, result.documents, path, PREVIEW_COLUMNS, extra=_per_source_breakdown(result.documents)
        )

    return _raw


raw_assets = [build_raw_asset(spec) for spec in SOURCES]


# [issue 9] ESTIMATED_DOCUMENTS: undated user rows placed by the date estimator
@stage_asset("sources", [*(raw_table(spec) for spec in SOURCES), ESTIMATED_DOCUMENTS], partitioned=True)
def documents(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    """Dated documents of one century (C013…C021) from every source, in the DESIGN.md §2 schema."""
    store = settings.store()
    century = context.partition_key
    raw = [store.read(raw_table(spec), schema=DOCUMENTS) for spec in SOURCES]
    raw.append(store.read(ESTIMATED_DOCUMENTS, schema=DOCUMENTS, missing_ok=True))  # [issue 9] empty unless opted in
    docs, rejects, stats = assemble_documents(raw, century)
    path = store.write("documents", docs, century)
    store.write_rejects("documents", rejects, century)
    rows_per_source = counts_by(docs, "source")
    chars_per_source = dict(docs.group_by("source").agg(pl.col("n_chars").sum()).sort("source").iter_rows())
    extra = {"rows_per_source": rows_per_source, "chars_per_source": chars_per_source}
    return stage_result(stats, docs, path, PREVIEW_COLUMNS, extra=extra)
