"""Every table chronoprism writes, declared once (DESIGN.md §2).

Per-record code uses the slotted dataclasses; frame code uses the polars schemas. `frame_of` turns a list of
records into a frame with exactly the declared columns and dtypes, so an empty stage still writes a typed table.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

SNIPPET_CHARS = 200

DOCUMENTS = {
    "doc_id": pl.String,
    "source": pl.String,
    "source_doc_id": pl.String,
    "title": pl.String,
    "author": pl.String,
    "language": pl.String,
    "text": pl.String,
    "year": pl.Int32,
    "year_min": pl.Int32,
    "year_max": pl.Int32,
    "date_method": pl.String,
    "date_confidence": pl.Float64,  # the date classifier's calibrated probability; null: dated from metadata
    "century": pl.String,
    "n_chars": pl.Int64,
    "license": pl.String,
    "provenance": pl.String,
}

REJECTS = {
    "row_ref": pl.String,
    "source": pl.String,
    "stage": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "snippet": pl.String,
}

PASSAGES = {
    "passage_id": pl.String,
    "doc_id": pl.String,
    "century": pl.String,
    "char_start": pl.Int64,
    "char_end": pl.Int64,
    "text": pl.String,
}

SITUATIONS = {
    "situation_id": pl.String,
    "passage_id": pl.String,
    "century": pl.String,
    "situation": pl.String,
    "teacher_call_id": pl.String,
}

VRD_CANDIDATES = {
    "candidate_id": pl.String,
    "situation_id": pl.String,
    "kind": pl.String,
    "text": pl.String,
    "valence": pl.String,
    "explanation": pl.String,
    "relevance": pl.Float64,
    "teacher_call_id": pl.String,
}

VRD = {**VRD_CANDIDATES, "dedup_group": pl.String, "keep_reason": pl.String}

TEACHER_CALLS = {
    "call_id": pl.String,
    "backend": pl.String,
    "model": pl.String,
    "request": pl.String,
    "response": pl.String,
    "status": pl.String,
    "attempts": pl.Int32,
    "latency_s": pl.Float64,
    "created_at": pl.Datetime("us"),
}

# date_method and date_confidence travel into the published pretrain tables so users can drop rows dated by the
# classifier ("estimated") or keep only those it placed with a confidence they trust
PRETRAIN = {
    "text": pl.String,
    "doc_id": pl.String,
    "year": pl.Int32,
    "source": pl.String,
    "date_method": pl.String,
    "date_confidence": pl.Float64,
}

VRD_KINDS = ("value", "right", "duty")
VRD_KIND_PLURALS = {"value": "values", "right": "rights", "duty": "duties"}
VALENCES = ("supports", "opposes", "either")


@dataclass(slots=True)
class Document:
    """One dated text travelling through ingest and cleaning; columns match DOCUMENTS."""

    doc_id: str
    source: str
    source_doc_id: str
    title: str | None
    author: str | None
    language: str
    text: str
    year: int
    year_min: int
    year_max: int
    date_method: str
    century: str
    n_chars: int
    license: str
    provenance: str
    date_confidence: float | None = None  # last: the one column with a default (set only for estimated dates)


@dataclass(slots=True)
class Reject:
    """A row that did not make it through a stage, with the reason it did not."""

    row_ref: str
    source: str
    stage: str
    reason: str
    detail: str
    snippet: str

    @classmethod
    def of(cls, *, row_ref: str, source: str, stage: str, reason: str, detail: str = "", text: str = "") -> Reject:
        return cls(row_ref=row_ref, source=source, stage=stage, reason=reason, detail=detail, snippet=snippet_of(text))

    @classmethod
    def of_document(cls, row: Mapping[str, Any], *, stage: str, reason: str, detail: str = "") -> Reject:
        """A document row (doc_id, source, text: DOCUMENTS, PRETRAIN) dropped by `stage`."""
        return cls.of(
            row_ref=row["doc_id"], source=row["source"], stage=stage, reason=reason, detail=detail, text=row["text"]
        )


def snippet_of(text: str | bytes | None) -> str:
    """At most SNIPPET_CHARS of escaped, printable text: safe to show in a UI or a log."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text[: SNIPPET_CHARS * 4].decode("utf-8", errors="backslashreplace")
    cut = text[:SNIPPET_CHARS]
    return cut.encode("unicode_escape").decode("ascii")[:SNIPPET_CHARS]


def stable_id(*parts: object) -> str:
    """sha256 over the parts joined by a unit separator: the id scheme for every table."""
    joined = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def doc_id_of(source: str, source_doc_id: str) -> str:
    return stable_id(source, source_doc_id)


def century_of(year: int) -> str:
    """ProgressGym's bucketing: 1221 -> C013, 1299 -> C013, 1300 -> C014."""
    return f"C{year // 100 + 1:03d}"


def century_bounds(century: str) -> tuple[int, int]:
    """C017 -> (1600, 1699): the years `century_of` maps into that bucket."""
    number = int(century.lstrip("C"))
    return (number - 1) * 100, number * 100 - 1


def frame_of(rows: Iterable[object | Mapping], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Build a frame with exactly `schema`'s columns from dataclass records or dicts.

    [issue 14] Records are read column by column (`getattr`), not through `dataclasses.asdict`, which deep-copies
    every value: a batch of ingested documents would copy all its text once more."""
    rows = list(rows)
    if not rows:
        return empty(schema)
    if all(dataclasses.is_dataclass(row) for row in rows):
        columns = {name: [getattr(row, name) for row in rows] for name in schema}
        return pl.DataFrame(columns, schema=dict(schema), strict=False)
    dicts = [dataclasses.asdict(row) if dataclasses.is_dataclass(row) else dict(row) for row in rows]
    return pl.DataFrame(dicts, schema=dict(schema), strict=False).select(list(schema))


def empty(schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=dict(schema))


def conform(df: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Select and cast to `schema`, raising with the missing column names when a frame lacks some."""
    missing = [name for name in schema if name not in df.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}; has {df.columns}")
    return df.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


# published split tables (DESIGN.md §5); every row keeps situation_id (and doc_id where it has one) for lineage
VRD_SPLIT = {
    "candidate_id": pl.String,
    "situation_id": pl.String,
    "century": pl.String,
    "doc_id": pl.String,
    "passage_id": pl.String,
    "situation": pl.String,
    "kind": pl.String,
    "text": pl.String,
    "valence": pl.String,
    "explanation": pl.String,
    "relevance": pl.Float64,
    "split": pl.String,
}

MIXTURE = {
    "example_id": pl.String,
    "task": pl.String,
    "input": pl.String,
    "output": pl.String,
    "situation_id": pl.String,
    "century": pl.String,
    "split": pl.String,
}

PREFERENCE = {
    "pair_id": pl.String,
    "prompt": pl.String,
    "chosen": pl.String,
    "rejected": pl.String,
    "rejected_reason": pl.String,
    "situation_id": pl.String,
    "century": pl.String,
    "chosen_id": pl.String,
    "rejected_id": pl.String,
}

BENCHMARK = {
    "candidate_id": pl.String,
    "situation_id": pl.String,
    "century": pl.String,
    "doc_id": pl.String,
    "situation": pl.String,
    "kind": pl.String,
    "text": pl.String,
    "valence": pl.String,
    "explanation": pl.String,
}

VALUE_TREND = {
    "century": pl.String,
    "kind": pl.String,
    "item": pl.String,
    "rank": pl.Int32,
    "n": pl.Int64,
    "share_of_situations": pl.Float64,
    "supports": pl.Float64,
    "opposes": pl.Float64,
    "either": pl.Float64,
}

SPLITS = ("train", "validation", "test")
MIXTURE_TASKS = ("generate", "relevance", "valence", "explanation")

# one row per document dropped by the global dedup step (exact or MinHash near-duplicate), naming the copy kept
DUPLICATES = {
    "doc_id": pl.String,
    "century": pl.String,
    "kept_doc_id": pl.String,
    "kept_century": pl.String,
    "kept_year": pl.Int32,
    "reason": pl.String,
    "similarity": pl.Float64,
}

# --- date estimation (issue 9) ---
# Rows a reader rejected only for a missing or unparseable date, kept whole (with `keep_undated`) for the
# century classifier: `undated_<source>` tables. `reason`/`detail` are the ingest rejection.
UNDATED = {
    "row_ref": pl.String,
    **{name: DOCUMENTS[name] for name in ("source", "source_doc_id", "title", "author", "language", "text")},
    "reason": pl.String,
    "detail": pl.String,
    **{name: DOCUMENTS[name] for name in ("license", "provenance")},
}

# Undated rows placed in a century by the classifier: DOCUMENTS (date_method "estimated", date_confidence its
# calibrated probability) plus the model version; `documents` takes the DOCUMENTS columns of each century.
ESTIMATED_DOCUMENTS = {**DOCUMENTS, "date_model": pl.String}

# [issue 7] value_eval: one century's finetuned model scoring every benchmark item (partition = the model's century;
# `century` stays the item's own), with the base model's answer beside it
VALUE_EVAL = {
    **BENCHMARK,
    "model_century": pl.String,
    "logp_supports": pl.Float64,
    "logp_opposes": pl.Float64,
    "logp_either": pl.Float64,
    "p_supports": pl.Float64,  # softmax over the three choices
    "predicted": pl.String,
    "base_predicted": pl.String,
}

# [issue 7] value_trend: per model century and frequent benchmark item, the model's valence shares beside the data's
# (value_trend_data of the same century; null when the item is not among that century's top items)
VALUE_TREND_MODEL = {
    "century": pl.String,
    "kind": pl.String,
    "item": pl.String,
    "n": pl.Int64,  # benchmark items with this (normalised) text
    "model_supports": pl.Float64,
    "model_opposes": pl.Float64,
    "model_either": pl.Float64,
    "model_mean_p_supports": pl.Float64,
    "data_n": pl.Int64,
    "data_supports": pl.Float64,
    "data_opposes": pl.Float64,
    "data_either": pl.Float64,
}

# [issue 17] value_vectors: one vector per model century ('model'), the base model ('base', century null) and per
# century of data ('data'), over training/value_vectors.py: DIMENSIONS; score in [-1, 1], n = items behind it
VALUE_VECTORS = {
    "side": pl.String,
    "century": pl.String,
    "dimension": pl.String,
    "score": pl.Float64,
    "n": pl.Int64,
}

# [issue 17] progress_scores: ProgressGym-style Follow (model of c vs data of c) and Predict (vs data of the next
# century) per evaluated century, with the base model's scores as the baseline; null where a side lacks a vector
PROGRESS_SCORES = {
    "century": pl.String,
    "next_century": pl.String,
    "follow": pl.Float64,
    "predict": pl.Float64,
    "base_follow": pl.Float64,
    "base_predict": pl.Float64,
}

# failed Dagster runs, recorded by the run-failure sensor (pipelines/sensors.py) into the `run_failures` table
RUN_FAILURES = {
    "failed_at": pl.String,
    "run_id": pl.String,
    "job": pl.String,
    "partition": pl.String,
    "assets": pl.String,
    "error": pl.String,
    "build_id": pl.String,
}

# [issue 18] near_duplicate_cluster_report: one row per near-duplicate cluster (the kept document plus every copy
# DUPLICATES names for it), largest first; `largest_century` holds most members (the oversized-cluster check's share)
CLUSTER_REPORT = {
    "cluster_id": pl.String,  # the kept doc_id
    "size": pl.Int64,  # members, kept one included
    "kept_century": pl.String,
    "n_centuries": pl.Int64,
    "centuries": pl.String,  # comma-joined, sorted
    "sources": pl.String,  # comma-joined, sorted
    "min_similarity": pl.Float64,  # lowest Jaccard of a dropped member to its kept copy (1.0: exact copies only)
    "largest_century": pl.String,
    "largest_century_members": pl.Int64,
}

# [issue 18] human_review: one row per published VRD item judged in Label Studio (the latest judgement counts)
HUMAN_REVIEW = {
    "candidate_id": pl.String,
    "century": pl.String,
    "kind": pl.String,
    "relevant": pl.Boolean,
    "valence_right": pl.Boolean,
    "explanation_right": pl.Boolean,
    "accepted": pl.Boolean,  # all three yes; an item not accepted is dropped from the next build (human_rejected)
    "annotator": pl.String,
    "annotated_at": pl.String,
    "label_studio_task": pl.Int64,
    "origin": pl.String,  # the export file it came from
}
