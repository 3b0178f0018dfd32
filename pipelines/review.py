"""[issue 18] The review loop's file side: `chronoprism review export` and `review import`, and reading imports.

export: a stratified sample of published VRD items (vrd_splits, with situation, source passage and document title)
-> `<out>/label_config.xml` (paste into a Label Studio project's labeling setup, or POST it as `label_config`) and
`<out>/tasks.json` (import into the project). import: a Label Studio JSON export is checked, then copied into
`<home>/review/imports/`; the next `chronoprism build` reads every import into `human_review`, drops the items judged
wrong from `vrd_splits` (reason `human_rejected`) and rebuilds only what depends on vrd_splits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from dataset.human_review import LABEL_CONFIG, read_label_studio_export, review_tasks, sample_for_review
from sources.schema import DOCUMENTS, HUMAN_REVIEW, PASSAGES, REJECTS, VRD_SPLIT, empty
from sources.stats import StageStats
from sources.storage import Store, write_text_atomic

IMPORTS = Path("review") / "imports"


def imports_dir(home: Path) -> Path:
    return Path(home) / IMPORTS


def review_rows(store: Store) -> pl.DataFrame:
    """Published VRD items with their source passage text and document title (for the annotator)."""
    rows = store.read("vrd_splits", schema=VRD_SPLIT, missing_ok=True)
    passages = store.scan("passages")
    if passages is not None:
        texts = passages.select("passage_id", pl.col("text").alias("passage")).collect()
        rows = rows.join(texts, on="passage_id", how="left")
    else:
        rows = rows.with_columns(pl.lit(None, dtype=PASSAGES["text"]).alias("passage"))
    documents = store.scan("documents")
    if documents is not None:
        wanted = rows["doc_id"].drop_nulls().unique().to_list()
        titles = (
            documents.filter(pl.col("doc_id").is_in(wanted))
            .select("doc_id", pl.concat_str(["source", "title"], separator=": ", ignore_nulls=True).alias("source"))
            .collect()
        )
        rows = rows.join(titles, on="doc_id", how="left")
    else:
        rows = rows.with_columns(pl.lit(None, dtype=DOCUMENTS["source"]).alias("source"))
    return rows


def export_review(home: Path, n: int, stratify: list[str], out: Path, seed: int = 0) -> dict:
    """Write label_config.xml and tasks.json for a stratified sample of `n` published items; returns a summary."""
    rows = review_rows(Store(home))
    unknown = [c for c in stratify if c not in rows.columns]
    if unknown:
        raise ValueError(f"cannot stratify by {unknown}; columns are {rows.columns}")
    sample = sample_for_review(rows, n, stratify, seed)
    tasks = review_tasks(sample)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "label_config.xml", LABEL_CONFIG)
    write_text_atomic(out / "tasks.json", json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")
    strata = dict(sample.group_by(stratify).len().select(pl.concat_str(stratify, separator="/"), "len").iter_rows())
    return {"tasks": len(tasks), "available": rows.height, "strata": strata, "out": str(out)}


def import_review(home: Path, export_file: Path) -> dict:
    """Check a Label Studio JSON export and copy it into the home's imports (same name: replaced)."""
    tasks = json.loads(Path(export_file).read_text(encoding="utf-8"))
    if not isinstance(tasks, list):
        raise ValueError(f"{export_file}: a Label Studio JSON export is a list of tasks, got {type(tasks).__name__}")
    review, rejects = read_label_studio_export(tasks, Path(export_file).name)
    target = imports_dir(home) / Path(export_file).name
    write_text_atomic(target, json.dumps(tasks, ensure_ascii=False))
    return {
        "reviewed": review.height,
        "judged_wrong": int((~review["accepted"]).sum()),
        "rejected_tasks": dict(rejects.group_by("reason").len().iter_rows()),
        "stored_as": str(target),
    }


@dataclass(slots=True)
class ImportResult:
    review: pl.DataFrame
    rejects: pl.DataFrame
    stats: StageStats
    files: list[str] = field(default_factory=list)


def read_imports(home: Path) -> ImportResult:
    """Every stored export, oldest name first; an item reviewed twice keeps its latest judgement."""
    files = sorted(imports_dir(home).glob("*.json")) if imports_dir(home).is_dir() else []
    reviews, rejects = [empty(HUMAN_REVIEW)], [empty(REJECTS)]
    stats = StageStats("human_review")
    for path in files:
        try:
            tasks = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            from sources.schema import Reject, frame_of

            reject = Reject.of(
                row_ref=path.name,
                source=path.name,
                stage="human_review",
                reason="unreadable_export",
                detail=str(error)[:200],
            )
            rejects.append(frame_of([reject], REJECTS))
            stats.n_in += 1
            stats.reject("unreadable_export")
            continue
        review, bad = read_label_studio_export(tasks if isinstance(tasks, list) else [], path.name)
        stats.n_in += len(tasks) if isinstance(tasks, list) else 0
        for reason in bad["reason"].to_list():
            stats.reject(reason)
        reviews.append(review)
        rejects.append(bad)
    merged = pl.concat(reviews).sort("annotated_at").unique("candidate_id", keep="last", maintain_order=True)
    # a re-review of an item in a later export supersedes the earlier one: count it as replaced, not lost
    stats.n_out = merged.height
    replaced = sum(r.height for r in reviews) - merged.height
    if replaced:
        stats.reject("superseded_by_later_review", replaced)
    return ImportResult(merged.sort("candidate_id"), pl.concat(rejects), stats.check(), [p.name for p in files])
