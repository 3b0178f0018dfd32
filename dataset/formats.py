"""The field's formats in the published dataset: ValuePrism and KaleidoSys configs, ProgressGym's HistText tree and
Alpaca SFT files, and an lm-evaluation-harness task (dataset/lm_eval_task.py). The dataset writer calls
`field_configs` for the two extra configs and `write_field_formats` for the extra files; nothing else changes.

```
data/valueprism/{train,validation,test}.parquet   situation, vrd, text, explanation, valence (+ lineage ids)
data/kaleidosys/{train,validation,test}.parquet   action, vrd, text, relevant, supports, opposes, either, label, ...
histtext/dataset_text_sequence/C0xx/Y0xxxx.json   pretrain text at each document's own year (ProgressGym layout)
histtext/chronoprism_sft_{train,validation}.json  the SFT mixture in Alpaca form (instruction, input, output)
histtext/abstractions_config.json                 the `data_search_paths` entry ProgressGym needs
lm_eval/chronoprism_*.yaml, lm_eval/utils.py      `lm_eval --include_path <dir>/lm_eval --tasks chronoprism`
```
ValuePrism (allenai/ValuePrism): `vrd` is Value / Right / Duty, `valence` Supports / Opposes / Either. KaleidoSys
(tsor13/kaleido, `KaleidoSys.py`) names the situation `action` and gives relevance and valence probabilities; our
teacher gives a relevance probability and a valence label, so `supports` / `opposes` / `either` stay null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from sources.histtext import TREE_DIR, write_year_file, year_file_path
from sources.jsonlist import write_json_list
from sources.storage import Store

VRD_SPELLING = {"value": "Value", "right": "Right", "duty": "Duty"}
VALENCE_SPELLING = {"supports": "Supports", "opposes": "Opposes", "either": "Either"}
LINEAGE = ["century", "situation_id", "candidate_id"]
VALUEPRISM_COLUMNS = ["situation", "vrd", "text", "explanation", "valence", *LINEAGE]
KALEIDOSYS_COLUMNS = ["action", "vrd", "text", "relevant", "supports", "opposes", "either", "label", "explanation"]
HISTTEXT_DIR = "histtext"
SFT_NAME = "chronoprism_sft"
HISTTEXT_RECORD_KEYS = (  # written after content / creation_year / source_dataset; our reader reads them back
    "source_doc_id",
    "doc_id",
    "title",
    "author",
    "language",
    "year_min",
    "year_max",
    "date_method",
    "date_confidence",
    "license",
    "provenance",
)
PRETRAIN_KEYS = ("doc_id", "date_method", "date_confidence")  # record keys the pretrain row itself carries

# (our column in the vrd config, ValuePrism's, KaleidoSys's): the card's mapping table
COLUMN_MAP = (
    ("situation", "situation", "action"),
    ("kind (value / right / duty)", "vrd (Value / Right / Duty)", "vrd"),
    ("text", "text", "text"),
    ("valence (supports / opposes / either)", "valence (Supports / Opposes / Either)", "label"),
    ("explanation", "explanation", "explanation"),
    ("relevance (teacher P(yes))", "-", "relevant"),
    ("-", "-", "supports, opposes, either (null: the teacher gave a label, not probabilities)"),
    ("century, situation_id, candidate_id", "(kept beside, for lineage)", "(kept beside, for lineage)"),
)


def trace_columns(frame: pl.DataFrame) -> list[str]:
    """The lineage columns (dataset/lineage.py) a frame carries beyond `LINEAGE`, so these configs trace back too."""
    from dataset.lineage import LINEAGE as TRACE

    return [name for name in TRACE if name in frame.columns and name not in LINEAGE]


def valueprism_rows(vrd: pl.DataFrame) -> pl.DataFrame:
    """One row per item with ValuePrism's column names and spellings."""
    return vrd.select(
        "situation",
        pl.col("kind").replace_strict(VRD_SPELLING, default=pl.col("kind")).alias("vrd"),
        "text",
        pl.col("explanation").fill_null(""),
        pl.col("valence").replace_strict(VALENCE_SPELLING, default=pl.col("valence")).alias("valence"),
        *LINEAGE,
        *trace_columns(vrd),
    )


def kaleidosys_rows(vrd: pl.DataFrame) -> pl.DataFrame:
    """One row per kept candidate in KaleidoSys's output columns; probabilities only where the teacher gave them."""
    return vrd.select(
        pl.col("situation").alias("action"),
        pl.col("kind").replace_strict(VRD_SPELLING, default=pl.col("kind")).alias("vrd"),
        "text",
        pl.col("relevance").alias("relevant"),
        *(pl.lit(None, dtype=pl.Float64).alias(name) for name in ("supports", "opposes", "either")),
        pl.col("valence").replace_strict(VALENCE_SPELLING, default=pl.col("valence")).alias("label"),
        pl.col("explanation").fill_null(""),
        *LINEAGE,
        *trace_columns(vrd),
    )


def field_configs(tables: Mapping[str, Mapping[str, pl.DataFrame]]) -> dict[str, dict[str, pl.DataFrame]]:
    """The `valueprism` and `kaleidosys` configs, split as the `vrd` config is."""
    vrd = tables.get("vrd", {})
    if not any(not frame.is_empty() for frame in vrd.values()):
        return {}
    return {
        "valueprism": {split: valueprism_rows(frame) for split, frame in vrd.items()},
        "kaleidosys": {split: kaleidosys_rows(frame) for split, frame in vrd.items()},
    }


def document_metadata(store: Store) -> pl.DataFrame | None:
    """The `documents` columns HistText records carry besides the pretrain row (no text: that comes from pretrain)."""
    documents = store.scan("documents")
    if documents is None:
        return None
    return documents.select(["doc_id", *(c for c in HISTTEXT_RECORD_KEYS if c not in PRETRAIN_KEYS)]).collect()


def histtext_records(pretrain: pl.DataFrame, documents: pl.DataFrame | None = None) -> pl.DataFrame:
    """Pretrain rows as HistText records: content, creation_year, source_dataset, then our document columns (from
    `documents` where it has the row) so that reading the tree back gives the same documents."""
    records = pretrain.select(
        pl.col("text").alias("content"),
        pl.col("year").alias("creation_year"),
        pl.col("source").alias("source_dataset"),
        *PRETRAIN_KEYS,
    )
    if documents is not None and not documents.is_empty():
        extra = [c for c in HISTTEXT_RECORD_KEYS if c in documents.columns and c not in PRETRAIN_KEYS]
        records = records.join(documents.select("doc_id", *extra).unique("doc_id"), on="doc_id", how="left")
    keys = [c for c in HISTTEXT_RECORD_KEYS if c in records.columns]
    return records.select("content", "creation_year", "source_dataset", *keys).sort("creation_year", "doc_id")


def write_histtext(root: Path, pretrain: Mapping[str, pl.DataFrame], documents: pl.DataFrame | None = None) -> int:
    """`root/dataset_text_sequence/C0xx/Y0xxxx.json`, one file per year, in ProgressGym's writer layout."""
    frames = [frame for frame in pretrain.values() if not frame.is_empty()]
    if not frames:
        return 0
    records = histtext_records(pl.concat(frames), documents)
    written = 0
    for (year,), rows in records.group_by(["creation_year"], maintain_order=True):
        clean = ({k: v for k, v in row.items() if v is not None} for row in rows.iter_rows(named=True))
        written += write_year_file(year_file_path(root / TREE_DIR, int(year)), clean)
    return written


def alpaca_rows(mixture: pl.DataFrame) -> list[dict]:
    """Our task rows in Alpaca form (ProgressGym's SFT data): the prompt is the instruction, `input` stays empty."""
    return [
        {
            "instruction": row["input"],
            "input": "",
            "output": row["output"],
            "task": row["task"],
            "century": row["century"],
            "example_id": row["example_id"],
        }
        for row in mixture.sort("example_id").iter_rows(named=True)
    ]


def abstractions_config_entry(dataset_dir: str = "<this dataset>") -> dict:
    """What ProgressGym's `src/abstractions/configs/abstractions_config.json` needs to find our data by name."""
    return {"data_search_paths": [f"{dataset_dir}/{HISTTEXT_DIR}/"]}


def write_field_formats(
    root: Path, tables: Mapping[str, Mapping[str, pl.DataFrame]], documents: pl.DataFrame | None = None
) -> dict[str, int]:
    """Write the HistText tree, the Alpaca files, the ProgressGym config entry and the lm-eval task under `root`
    (the dataset's staging directory); returns counts for the card."""
    from dataset.lm_eval_task import write_lm_eval_task

    counts = {"histtext_records": write_histtext(root / HISTTEXT_DIR, tables.get("pretrain", {}), documents)}
    for split, frame in sorted(tables.get("sft_mixture", {}).items()):
        path = root / HISTTEXT_DIR / f"{SFT_NAME}_{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            counts[f"alpaca_{split}"] = write_json_list(handle, alpaca_rows(frame))
    if counts["histtext_records"] or any(k.startswith("alpaca") for k in counts):
        entry = json.dumps(abstractions_config_entry(), indent=4) + "\n"
        (root / HISTTEXT_DIR / "abstractions_config.json").write_text(entry, encoding="utf-8")
    counts["lm_eval_items"] = write_lm_eval_task(root, tables.get("benchmark", {}).get("test"))
    return counts


def field_formats_markdown(counts: Mapping[str, int] | None = None) -> str:
    """The card section: which file serves which project, and how our columns map to theirs."""
    counts = counts or {}
    mapping = ["| chronoprism `vrd` | `valueprism` | `kaleidosys` |", "|---|---|---|"]
    mapping += [f"| {ours} | {prism} | {kaleido} |" for ours, prism, kaleido in COLUMN_MAP]
    entry = json.dumps(abstractions_config_entry("/path/to/this/dataset"))
    return (
        "## The field's formats\n\n"
        "- **ValuePrism** (allenai): config `valueprism`, one row per item with ValuePrism's columns and spellings, "
        'split as `vrd` (`load_dataset(dir, "valueprism")`).\n'
        "- **KaleidoSys**: config `kaleidosys`, one row per kept candidate in KaleidoSys's output columns.\n"
        f"- **ProgressGym**: `{HISTTEXT_DIR}/{TREE_DIR}/C0xx/Y0xxxx.json` holds the pretrain text at each document's "
        f"own year in ProgressGym's HistText layout ({counts.get('histtext_records', 0)} records); "
        f"`{HISTTEXT_DIR}/{SFT_NAME}_train.json` / `_validation.json` hold the SFT mixture in Alpaca form. Add "
        f"`{entry}` to `src/abstractions/configs/abstractions_config.json`, then "
        f'`DataFileCollection("{TREE_DIR}", "pretrain")` and `Data("{SFT_NAME}_train", "sft")` find them.\n'
        "- **lm-evaluation-harness**: `lm_eval --model hf --model_args pretrained=MODEL --include_path "
        "<this dataset>/lm_eval --tasks chronoprism` scores valence (`chronoprism_valence`) and relevance "
        f"(`chronoprism_relevance`) on the benchmark ({counts.get('lm_eval_items', 0)} items).\n\n"
        + "\n".join(mapping)
    )
