"""`chronoprism teacher-compare A B`: two teacher configurations on the same situations, side by side.

A and B are each a TOML settings file (any sections; `[teacher]` is what matters) or a string of `KEY=VALUE`
overrides (JSON values; a key without a section is a `teacher.` key), e.g.
`chronoprism teacher-compare "backend=transformers" examples/strong_teacher.toml`. Both run `generate_vrd` on one
sample of the home's `situations` (any backends; the generation cache is shared, so a rerun costs no calls) and the
command prints the distribution statistics of quality/generation_stats.py per kind for both, plus their agreement:
items both produced for the same situation and kind, and of those, how many got the same valence. It shows what a
stronger model (or a prompt change) buys before paying for a full run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from quality.generation_stats import (
    Agreement,
    GenerationStats,
    agreement,
    collapse_findings,
    generation_stats,
    thresholds_of,
)
from sources.schema import SITUATIONS
from sources.settings import Settings
from sources.storage import Store

DEFAULT_SAMPLE = 12


@dataclass(slots=True)
class TeacherRun:
    """One configuration's answers on the sample, with their statistics and cost."""

    label: str
    teacher: str  # backend:model
    candidates: pl.DataFrame
    stats: GenerationStats
    warnings: list[str] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Comparison:
    situations: int
    centuries: dict[str, int]
    a: TeacherRun
    b: TeacherRun
    agreement: Agreement

    def to_dict(self) -> dict[str, Any]:
        def run(r: TeacherRun) -> dict[str, Any]:
            return {"label": r.label, "teacher": r.teacher, "stats": r.stats.to_dict(), "warnings": r.warnings,
                    "cost": r.cost}  # fmt: skip

        return {
            "situations": self.situations,
            "centuries": self.centuries,
            "a": run(self.a),
            "b": run(self.b),
            "agreement": {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self.agreement).items()},
        }


def overrides_of(spec: str) -> dict[str, Any]:
    """A TOML file's content, or `KEY=VALUE` pairs (spaces or commas between; bare keys are `teacher.` keys)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return tomllib.loads(path.read_text(encoding="utf-8"))
    overrides: dict[str, Any] = {}
    for item in spec.replace(",", " ").split():
        if "=" not in item:
            raise ValueError(f"{spec!r} is neither a TOML file nor KEY=VALUE overrides (at {item!r})")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[key if "." in key else f"teacher.{key}"] = value
    return overrides


def sample_situations(situations: pl.DataFrame, n: int | None, seed: int = 0) -> pl.DataFrame:
    """`n` situations drawn with `seed` (all when n is None or larger), in century then id order."""
    if n is not None and situations.height > n:
        situations = situations.sample(n, seed=seed)
    return situations.sort("century", "situation_id")


def run_teacher(label: str, settings: Settings, situations: pl.DataFrame) -> TeacherRun:
    """`generate_vrd` for `situations` with the teacher `settings` configures (cache shared with builds)."""
    from teacher import open_teacher
    from teacher.generate import generate_vrd, generation_config

    started = time.monotonic()
    teacher = open_teacher(settings)
    try:
        result = generate_vrd(situations, teacher, generation_config(settings))
    finally:
        teacher.close()
    thresholds = thresholds_of(settings)
    stats = generation_stats("sample", candidates=result.frame, situations=situations, thresholds=thresholds)
    stats.situations = None
    s = result.teacher
    cost = {
        "backend_calls": s.counters.backend_calls,
        "cache_hits": s.counters.cache_hits,
        "parse_rate": round(s.parse_rate, 4),
        "quarantined": s.counters.quarantined,
        "seconds": round(time.monotonic() - started, 1),
    }
    backend = f"{teacher.backend.name}:{teacher.backend.model}"
    warnings = [f.message for f in collapse_findings(stats, thresholds)]
    return TeacherRun(label, backend, result.frame, stats, warnings, cost)


def compare_teachers(situations: pl.DataFrame, a: tuple[str, Settings], b: tuple[str, Settings]) -> Comparison:
    """Both configurations on the same `situations`, then their statistics and agreement."""
    run_a = run_teacher(a[0], a[1], situations)
    run_b = run_teacher(b[0], b[1], situations)
    centuries = dict(situations.group_by("century").len().sort("century").iter_rows())
    return Comparison(situations.height, centuries, run_a, run_b, agreement(run_a.candidates, run_b.candidates))


def render(comparison: Comparison) -> str:
    """The statistics per kind as two columns, then the agreement and any collapse warnings."""
    a, b = comparison.a, comparison.b
    rows: list[tuple[str, str, str]] = [("teacher", a.teacher, b.teacher)]
    for kind in a.stats.kinds:
        ka, kb = a.stats.kinds[kind], b.stats.kinds[kind]
        for name, show in (
            ("items", lambda k: str(k.n_items)),
            ("per situation", lambda k: f"{k.items_per_situation:.2f}"),
            ("distinct texts", lambda k: f"{k.distinct_texts} ({k.distinct_text_ratio:.0%})"),
            ("top text", lambda k: f"{k.top_text[:24]} {k.top_text_share:.0%}" if k.n_items else "-"),
            ("valences", lambda k: " ".join(f"{v[0]}{n}" for v, n in k.valences.items()) or "-"),
            ("valence entropy", lambda k: f"{k.valence_entropy:.2f} bits"),
            ("explanation words", lambda k: f"{k.explanation_words:.1f}"),
            ("copied explanations", lambda k: f"{k.copied_explanation_share:.0%}"),
        ):
            rows.append((f"{kind} {name}", show(ka), show(kb)))
    for name in ("backend_calls", "cache_hits", "parse_rate", "seconds"):
        rows.append((name, str(a.cost.get(name, "")), str(b.cost.get(name, ""))))
    first = max(len(r[0]) for r in rows) + 2
    width = max(len(r[1]) for r in rows) + 2
    centuries = ", ".join(f"{c} {n}" for c, n in comparison.centuries.items())
    lines = [
        f"{comparison.situations} situations ({centuries})",
        f"{'':<{first}}{'A: ' + a.label:<{width}}B: {b.label}",
    ]
    lines += [f"{name:<{first}}{left:<{width}}{right}" for name, left, right in rows]
    g = comparison.agreement
    lines.append(
        f"agreement: {g.shared} items in both (A {g.items_a}, B {g.items_b}; jaccard {g.item_jaccard:.2f}), "
        f"same valence {g.same_valence} of {g.shared} ({g.valence_agreement:.0%})"
    )
    for run in (a, b):
        lines += [f"collapse ({run.label}): {message}" for message in run.warnings]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", help="configuration A: a TOML file or 'KEY=VALUE ...' (bare keys are teacher.KEY)")
    parser.add_argument("b", help="configuration B, the same way")
    parser.add_argument("--situations", type=int, default=DEFAULT_SAMPLE, help="sample size (0 = all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the situation sample")
    parser.add_argument("--partition", action="append", help="only situations of these centuries (repeatable)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    base = Settings.load()
    store = Store(base.home_path)
    situations = store.read_all("situations", SITUATIONS)
    if args.partition:
        situations = situations.filter(pl.col("century").is_in(args.partition))
    if situations.is_empty():
        print("no situations to compare on: run `chronoprism build --select situations` first", file=sys.stderr)
        return 2
    try:
        configs = [(spec if len(spec) <= 40 else spec[:37] + "...", overrides_of(spec)) for spec in (args.a, args.b)]
        settings = [(label, Settings.load(overrides)) for label, overrides in configs]
    except (ValueError, tomllib.TOMLDecodeError) as error:
        print(f"bad configuration: {error}", file=sys.stderr)
        return 2
    sample = sample_situations(situations, args.situations or None, args.seed)
    comparison = compare_teachers(sample, settings[0], settings[1])
    print(json.dumps(comparison.to_dict(), indent=2) if args.json else render(comparison))
    return 0
