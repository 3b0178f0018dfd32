"""The local Hugging Face dataset directory (DESIGN.md §5) and its dataset card.

```
README.md                                   card: YAML `configs:` so `datasets.load_dataset(dir, name)` works
data/pretrain/C013.parquet ...              {text, doc_id, year, source, date_method, date_confidence}
data/vrd/{train,validation,test}.parquet    ValuePrism-like rows
data/mixture/{train,validation}.parquet     Kaleido task rows
data/preference/train.parquet               {prompt, chosen, rejected}
data/benchmark/test.parquet                 held-out situations with gold items (decontaminated)
data/value_trend/trend.parquet              the data-side value trend
```
The directory is built beside the old one and swapped in, so a reader never sees half a dataset. Nothing in it
depends on the clock: the same tables give byte-identical files, which is what makes publishing idempotent.

The card's YAML also carries the Hub's `dataset_info` per config (rows and bytes per split, file and data sizes).
`datasets` keys its cache of a local directory on that metadata, not on the files: without it, a rebuilt dataset in
a directory of the same name would load the previous build's rows from the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from dataset.formats import field_configs, field_formats_markdown, write_field_formats
from dataset.lineage import add_lineage
from dataset.trend import trend_markdown
from quality.generation_stats import card_markdown, thresholds_of
from sources.schema import (
    BENCHMARK,
    DOCUMENTS,
    MIXTURE,
    PREFERENCE,
    PRETRAIN,
    VALUE_TREND,
    VRD_KIND_PLURALS,
    VRD_SPLIT,
)
from sources.settings import Settings
from sources.storage import Store

# config name -> data/<folder>
CONFIG_FOLDERS = {
    "vrd": "vrd",
    "sft_mixture": "mixture",
    "preference_pairs": "preference",
    "benchmark": "benchmark",
    "pretrain": "pretrain",
    "value_trend": "value_trend",
}

Tables = Mapping[str, Mapping[str, pl.DataFrame]]  # config -> split -> rows


@dataclass(slots=True)
class SourceNote:
    source: str
    documents: int
    provenance: list[str]
    licenses: list[str]


@dataclass(slots=True)
class CardInfo:
    name: str
    license: str = "other"
    sources: list[SourceNote] = field(default_factory=list)
    teacher: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    code_version: str = "unknown"
    repo_id: str | None = None
    extra_sections: list[str] = field(default_factory=list)  # [issue 18] lineage columns, human review
    generation: str = ""  # [issue 19] teacher output statistics and collapse warnings (markdown); "" = no section
    languages: list[str] = field(default_factory=lambda: ["en"])  # [issue 13] from the documents, not assumed


def code_version(repo_root: Path | None = None) -> str:
    """`git describe --always --dirty --tags` of the checkout, else the installed package version."""
    root = repo_root or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"chronoprism {version('chronoprism')}"
        except PackageNotFoundError:
            return "unknown"


def write_dataset(out_dir: Path, tables: Tables, info: CardInfo, documents: pl.DataFrame | None = None) -> list[Path]:
    """Write every non-empty config's parquet files and the card into `out_dir` (replaced whole). [issue 16] Also
    the field's formats (dataset/formats.py); `documents` gives HistText records their document columns."""
    tables = {**tables, **field_configs(tables)}  # [issue 16] valueprism + kaleidosys, split as vrd
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        written: dict[str, dict[str, str]] = {}
        for config, splits in tables.items():
            for split, frame in sorted(splits.items()):
                if frame.is_empty():  # `datasets` refuses a split without rows: leave it out of the card too
                    continue
                relative = f"data/{CONFIG_FOLDERS.get(config, config)}/{split}.parquet"
                path = staging / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                frame.write_parquet(path, compression="zstd", statistics=True)
                written.setdefault(config, {})[split] = relative
        infos = [dataset_info(staging, config, splits, tables[config]) for config, splits in written.items()]
        formats = write_field_formats(staging, tables, documents)  # [issue 16] HistText, Alpaca, lm-eval task
        card = render_card(tables, written, info, infos) + "\n" + field_formats_markdown(formats) + "\n"
        (staging / "README.md").write_text(card, encoding="utf-8")
        _swap(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def _swap(new: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)


def dataset_info(
    root: Path, config: str, files: Mapping[str, str], splits: Mapping[str, pl.DataFrame]
) -> dict[str, Any]:
    """One config's `dataset_info` card entry with the Hub's standard keys only (its YAML validation may refuse
    others): rows and Arrow bytes per split, the parquet bytes (`download_size`) and Arrow bytes (`dataset_size`).
    A rebuild that changes rows changes these numbers, and with them the key `datasets` caches the config by."""
    split_sizes, download_size = [], 0
    for split, relative in sorted(files.items()):
        download_size += (root / relative).stat().st_size
        frame = splits[split]
        split_sizes.append({"name": split, "num_bytes": frame.to_arrow().nbytes, "num_examples": frame.height})
    return {
        "config_name": config,
        "splits": split_sizes,
        "download_size": download_size,
        "dataset_size": sum(split["num_bytes"] for split in split_sizes),
    }


def render_card(
    tables: Tables,
    files: Mapping[str, Mapping[str, str]],
    info: CardInfo,
    infos: list[dict[str, Any]] | None = None,
) -> str:
    """The dataset card: YAML header with `configs:` (and `dataset_info`), then what is in it and how it was
    built."""
    header = {
        "license": info.license,
        "language": info.languages,
        "pretty_name": info.name,
        "tags": ["values", "history", "progress-alignment", "valueprism", "progressgym"],
        "configs": [
            {"config_name": config, "data_files": [{"split": s, "path": p} for s, p in sorted(splits.items())]}
            for config, splits in files.items()
        ],
    }
    if infos:
        header["dataset_info"] = infos
    sections = [
        "---\n" + yaml.safe_dump(header, sort_keys=False) + "---",
        f"# {info.name}",
        "Time-stamped, value-annotated text for progress alignment: historical passages bucketed by century "
        "(ProgressGym's convention, C013 = 1200-1299), situations drawn from them and ValuePrism-style values, "
        "rights and duties with valence and explanation, written by a teacher model and filtered by relevance "
        "and near-duplicate removal (KaleidoSys's procedure). Built by chronoprism.",
        "## Configs\n\n"
        + _configs_table(tables, files)
        + "\n\n```python\nfrom datasets import load_dataset\n"
        + 'vrd = load_dataset("<this repo or directory>", "vrd")\n```',
        "## Per-century statistics\n\n" + _century_table(tables) + "\n\n`estimated dates` counts documents whose "
        "century was estimated by chronoprism's date classifier (opt-in) rather than read from metadata. Every "
        "config with one row per text (all but `value_trend`) carries `date_method` and `date_confidence` of the "
        "document its row came from: estimated rows have `date_method` 'estimated' and the classifier's "
        "calibrated probability (null for dates read from metadata), so `ds.filter(lambda r: r['date_method'] != "
        "'estimated')` excludes them and `r['date_confidence'] is None or r['date_confidence'] >= 0.95` keeps only "
        "confident ones.",
        "## Data-side value trend\n\nThe most frequent values, rights and duties per century in the data itself "
        "(before any model is trained), with the share of that century's situations naming them and their valence "
        "shares. Full table: the `value_trend` config.\n\n"
        + trend_markdown(
            tables.get("value_trend", {}).get(
                "trend", pl.DataFrame(schema={"century": pl.String, "kind": pl.String, "rank": pl.Int32})
            )
        ),
        *(["## Teacher output statistics\n\n" + info.generation] if info.generation else []),  # [issue 19]
        "## How it was built\n\n" + _build_section(info),
        "## Sources and licenses\n\n"
        + _sources_table(info.sources)
        + "\n\nEach row keeps `doc_id` / `situation_id` so it traces back to its source document. Check each "
        "source's license before redistribution; the notes above come from the readers' metadata.",
        "## Limitations\n\nThe teacher's annotations reflect the teacher model, not people of the period; a small "
        "teacher writes weak items (the relevance filter removes many). Early centuries are thin: no English text "
        "before 1382 is bundled. Benchmark rows sharing an exact text or a 13-word n-gram with training rows or "
        "the pretrain corpus were removed.",
    ]
    sections[-1:-1] = [section for section in info.extra_sections if section]  # [issue 18] before Limitations
    return "\n\n".join(sections) + "\n"


def _configs_table(tables: Tables, files: Mapping[str, Mapping[str, str]]) -> str:
    lines = ["| config | split | rows | file |", "|---|---|---|---|"]
    for config, splits in tables.items():
        for split, frame in sorted(splits.items()):
            path = files.get(config, {}).get(split)
            lines.append(f"| {config} | {split} | {frame.height} | {f'`{path}`' if path else '(empty: omitted)'} |")
    return "\n".join(lines)


def _century_table(tables: Tables) -> str:
    stats: dict[str, dict[str, int]] = {}
    for century, frame in tables.get("pretrain", {}).items():
        row = stats.setdefault(century, {})
        row["pretrain docs"] = frame.height
        row["pretrain chars"] = int(frame["text"].str.len_chars().sum() or 0)
        row["estimated dates"] = int((frame["date_method"] == "estimated").sum())
    vrd = [f for f in tables.get("vrd", {}).values()]
    if vrd:
        rows = pl.concat(vrd)
        for century, n in rows.group_by("century").agg(pl.col("situation_id").n_unique()).iter_rows():
            stats.setdefault(century, {})["situations"] = n
        for century, kind, n in rows.group_by("century", "kind").len().iter_rows():
            stats.setdefault(century, {})[VRD_KIND_PLURALS.get(kind, kind)] = n
    bench = tables.get("benchmark", {}).get("test")
    if bench is not None:
        for century, n in bench.group_by("century").len().iter_rows():
            stats.setdefault(century, {})["benchmark rows"] = n
    columns = [
        "pretrain docs",
        "pretrain chars",
        "estimated dates",
        "situations",
        "values",
        "rights",
        "duties",
        "benchmark rows",
    ]
    lines = ["| century | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for century in sorted(stats):
        lines.append(f"| {century} | " + " | ".join(str(stats[century].get(c, 0)) for c in columns) + " |")
    return "\n".join(lines) if stats else "_No rows yet._"


def _build_section(info: CardInfo) -> str:
    teacher = ", ".join(f"{k}: `{v}`" for k, v in info.teacher.items()) or "unknown"
    thresholds = "\n".join(f"- `{k}` = {v}" for k, v in info.thresholds.items())
    return f"- code version: `{info.code_version}`\n- teacher: {teacher}\n- thresholds:\n" + "\n".join(
        "  " + line for line in thresholds.splitlines()
    )


def _sources_table(sources: list[SourceNote]) -> str:
    if not sources:
        return "_No source documents recorded._"
    lines = ["| source | documents | versions / provenance | license |", "|---|---|---|---|"]
    for note in sources:
        provenance = ", ".join(sorted(note.provenance))
        lines.append(f"| {note.source} | {note.documents} | {provenance} | {'; '.join(sorted(note.licenses))} |")
    return "\n".join(lines)


def source_notes(documents: pl.DataFrame) -> list[SourceNote]:
    """Sources with their document counts, provenance strings (package@version or URL) and licenses."""
    if documents.is_empty():
        return []
    grouped = documents.group_by("source").agg(
        pl.len().alias("documents"),
        pl.col("provenance").unique().sort().alias("provenance"),
        pl.col("license").unique().sort().alias("licenses"),
    )
    return [
        SourceNote(r["source"], r["documents"], [p for p in r["provenance"] if p], [x for x in r["licenses"] if x])
        for r in grouped.sort("source").iter_rows(named=True)
    ]


def gather_tables(store: Store) -> dict[str, dict[str, pl.DataFrame]]:
    """config -> split -> rows, from the split tables (one file each, `split` column where there are several)."""

    def by_split(table: str, schema: dict) -> dict[str, pl.DataFrame]:
        rows = store.read(table, schema=schema, missing_ok=True)
        return {split: rows.filter(pl.col("split") == split) for split in sorted(set(rows["split"]))}

    centuries = store.partitions("pretrain_corpus")
    tables = {
        "vrd": by_split("vrd_splits", VRD_SPLIT),
        "sft_mixture": by_split("sft_mixture", MIXTURE),
        "preference_pairs": {"train": store.read("preference_pairs", schema=PREFERENCE, missing_ok=True)},
        "benchmark": {"test": store.read("benchmark", schema=BENCHMARK, missing_ok=True)},
        "pretrain": {c: store.read("pretrain_corpus", c, schema=PRETRAIN) for c in centuries},
        "value_trend": {"trend": store.read("value_trend_data", schema=VALUE_TREND, missing_ok=True)},
    }
    tables = {config: splits for config, splits in tables.items() if any(not df.is_empty() for df in splits.values())}
    return add_lineage(tables, store)  # [issue 18] every row traces back to its source and teacher call


def card_info(settings: Settings, store: Store) -> CardInfo:
    documents = store.scan("documents")
    columns = ["source", "license", "provenance", "language"]
    docs = (
        documents.select(columns).collect()
        if documents is not None
        else pl.DataFrame(schema={c: DOCUMENTS[c] for c in columns})
    )
    return CardInfo(
        name=settings.publish.name,
        license=settings.publish.license,
        sources=source_notes(docs),
        teacher={"backend": settings.teacher.backend, "model": settings.teacher.model},
        thresholds={
            "filter.relevance_threshold": settings.filter.relevance_threshold,
            "filter.relevance_scorer": settings.filter.relevance_scorer,
            "filter.rouge_threshold": settings.filter.rouge_threshold,
            "filter.cosine_threshold": settings.filter.cosine_threshold,
            "filter.decontam_ngram": settings.filter.decontam_ngram,
            "publish.validation_fraction": settings.publish.validation_fraction,
            "publish.test_fraction": settings.publish.test_fraction,
            "publish.split_salt": settings.publish.split_salt,
        },
        code_version=code_version(),
        repo_id=settings.publish.repo_id,
        extra_sections=lineage_and_review_sections(store),  # [issue 18]
        generation=card_markdown(store, thresholds_of(settings)),
        languages=sorted(set(docs["language"].drop_nulls().to_list())) or ["en"],
    )


def lineage_and_review_sections(store: Store) -> list[str]:
    """[issue 18] The card's lineage-column table and, once items were reviewed, the human agreement table."""
    from dataset.human_review import agreement_markdown
    from dataset.lineage import lineage_markdown
    from sources.schema import HUMAN_REVIEW

    review = store.read("human_review", schema=HUMAN_REVIEW, missing_ok=True)
    return [lineage_markdown(), agreement_markdown(review)]
