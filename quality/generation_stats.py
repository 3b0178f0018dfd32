"""Distribution statistics of teacher-generated data, and the rules that say when the teacher collapsed.

A weak or broken teacher does not fail loudly: its answers parse, so every schema check passes, but it repeats one
value for every situation, gives every right the same valence, copies the prompt's few-shot examples or restates
the passage as its "situation". These statistics, per century and kind, make that visible (asset metadata, the
dataset card, `chronoprism status`), and `collapse_findings` turns them into named findings for the asset checks
("one text ('Justice') is 33 % of values in C019", "rights: one valence only (either) in C019").

What good looks like (ValuePrism, Sorensen et al. 2024): 218k items over 31k situations, about 7 per situation
(~2.3 per kind), most texts distinct, all three valences used for every kind, 91 % rated high quality by people.
The default thresholds (`CollapseThresholds`) sit far below that, so they flag a collapse, not a merely weak teacher:

| rule                         | default | fires when (per century and kind, with at least `min_items` items)       |
|------------------------------|---------|---------------------------------------------------------------------------|
| max_top_text_share           | 0.25    | one text is above this share of the kind's items (and >= min_top_count)  |
| min_distinct_text_ratio      | 0.5     | distinct texts / items is below this                                      |
| min_valences                 | 2       | fewer distinct valences than this among the kind's items                 |
| max_copied_share             | 0.1     | above this share of explanations near-copy a few-shot example            |
| min_items_per_situation      | 0.5     | fewer items of the kind per situation than this (any item count)         |
| min_explanation_words        | 3       | mean explanation length in words is below this                           |
| max_verbatim_situation_share | 0.5     | above this share of situations restate their passage verbatim            |
| max_copied_share             | 0.1     | (situations) above this share near-copy a few-shot situation             |

Near-copy: word-set Jaccard >= `copy_jaccard` (0.7) against any example (explanations are ~10 words, too short
for the 13-gram overlap used for benchmark decontamination). Verbatim: at least `verbatim_share` (0.8) of the
situation's word `verbatim_ngram`-grams (5) occur in its passage (a shorter situation: all its words in a row).
Each rule is a `min_*` / `max_*` keyword; `None` turns it off.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from sources.schema import PASSAGES, SITUATIONS, VALENCES, VRD, VRD_CANDIDATES, VRD_KIND_PLURALS, VRD_KINDS
from sources.settings import Settings, config_from
from sources.storage import Store
from teacher.prompts import situation_examples, vrd_examples

WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


@dataclass(frozen=True, slots=True)
class CollapseThresholds:
    """The collapse rules (see the module docstring's table); `None` turns a rule off."""

    min_items: int = 5  # a kind with fewer items in a century is too small to judge its distribution
    max_top_text_share: float | None = 0.25
    min_top_count: int = 3  # ... and the top text must repeat at least this often (2 of 6 is chance)
    min_distinct_text_ratio: float | None = 0.5
    min_valences: int | None = 2
    max_copied_share: float | None = 0.1
    min_items_per_situation: float | None = 0.5
    min_explanation_words: float | None = 3.0
    max_verbatim_situation_share: float | None = 0.5
    copy_jaccard: float = 0.7  # word-set Jaccard at/above which a text near-copies an example
    verbatim_ngram: int = 5
    verbatim_share: float = 0.8


@dataclass(slots=True)
class KindStats:
    """One kind's distribution in one century."""

    kind: str
    n_items: int = 0
    n_situations: int = 0  # situations asked (the denominator of items_per_situation)
    items_per_situation: float = 0.0
    distinct_texts: int = 0
    distinct_text_ratio: float = 0.0
    top_text: str = ""
    top_text_count: int = 0
    top_text_share: float = 0.0
    valences: dict[str, int] = field(default_factory=dict)
    valence_entropy: float = 0.0  # bits; log2(3) = 1.585 when all three valences are equally used
    explanation_words: float = 0.0  # mean
    example_text_share: float = 0.0  # item text is one of the few-shot examples' texts (informative only)
    copied_explanation_share: float = 0.0  # explanation near-copies a few-shot example's explanation


@dataclass(slots=True)
class SituationStats:
    n_situations: int = 0
    n_passages: int = 0
    distinct_ratio: float = 0.0
    copied_share: float = 0.0  # near-copies of the situation examples
    verbatim_share: float = 0.0  # restate their passage verbatim (None of the passages known: 0)


@dataclass(slots=True)
class GenerationStats:
    """Statistics of one century's generated table: situations, kinds, or both."""

    century: str
    situations: SituationStats | None = None
    kinds: dict[str, KindStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _rounded(asdict(self))


@dataclass(frozen=True, slots=True)
class Finding:
    """One collapse rule that fired: `message` names what collapsed, where, and by how much."""

    rule: str
    century: str
    kind: str  # value / right / duty, or "situation"
    value: float
    threshold: float
    message: str


# ------------------------------------------------------------------ text helpers


def words(text: str | None) -> list[str]:
    """Lowercased word tokens (letters and digits, inner apostrophes kept)."""
    return WORD.findall((text or "").lower())


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def near_copy(text: str | None, examples: Sequence[set[str]], threshold: float) -> bool:
    """True when `text`'s word set reaches `threshold` Jaccard against any example's."""
    tokens = set(words(text))
    return bool(tokens) and any(jaccard(tokens, example) >= threshold for example in examples)


def restates(situation: str, passage: str, n: int, share: float) -> bool:
    """True when `situation` is lifted from `passage`: >= `share` of its word n-grams occur there."""
    s, p = words(situation), words(passage)
    if not s or not p:
        return False
    n = min(n, len(s))
    grams = [tuple(s[i : i + n]) for i in range(len(s) - n + 1)]
    in_passage = {tuple(p[i : i + n]) for i in range(len(p) - n + 1)}
    return sum(g in in_passage for g in grams) / len(grams) >= share


def entropy_bits(counts: Iterable[int]) -> float:
    counts = [c for c in counts if c]
    total = sum(counts)
    return max(0.0, -sum(c / total * math.log2(c / total) for c in counts)) if total else 0.0  # never -0.0


def text_key(text: str | None) -> str:
    """Case and spacing folded, so 'Justice' and 'justice ' count as one text."""
    return " ".join(words(text))


# ------------------------------------------------------------------ statistics


def kind_stats(
    candidates: pl.DataFrame, kind: str, n_situations: int, thresholds: CollapseThresholds | None = None
) -> KindStats:
    """The distribution of one kind's items (VRD_CANDIDATES or VRD rows of that kind)."""
    th = thresholds or CollapseThresholds()
    rows = candidates.filter(pl.col("kind") == kind)
    stats = KindStats(kind=kind, n_items=rows.height, n_situations=n_situations)
    stats.items_per_situation = rows.height / n_situations if n_situations else 0.0
    if rows.is_empty():
        return stats
    texts = Counter(text_key(t) for t in rows["text"].to_list())
    originals = {text_key(t): t for t in reversed(rows["text"].to_list())}  # first spelling seen
    (top, top_count), *_ = texts.most_common(1)
    stats.distinct_texts = len(texts)
    stats.distinct_text_ratio = len(texts) / rows.height
    stats.top_text, stats.top_text_count = originals[top], top_count
    stats.top_text_share = top_count / rows.height
    valence_counts = Counter(v for v in rows["valence"].to_list() if v)
    stats.valences = {v: valence_counts[v] for v in VALENCES if valence_counts[v]}
    stats.valence_entropy = entropy_bits(valence_counts.values())
    explanations = rows["explanation"].to_list()
    stats.explanation_words = sum(len(words(e)) for e in explanations) / rows.height
    example_texts = {text_key(t) for t, _ in vrd_examples()}
    example_explanations = [set(words(e)) for _, e in vrd_examples()]
    stats.example_text_share = sum(texts[t] for t in texts if t in example_texts) / rows.height
    copied = sum(near_copy(e, example_explanations, th.copy_jaccard) for e in explanations)
    stats.copied_explanation_share = copied / rows.height
    return stats


def situation_stats(
    situations: pl.DataFrame, passages: pl.DataFrame | None = None, thresholds: CollapseThresholds | None = None
) -> SituationStats:
    """Distinct, copied and verbatim-restated situations (SITUATIONS rows, PASSAGES for their text)."""
    th = thresholds or CollapseThresholds()
    stats = SituationStats(n_situations=situations.height, n_passages=situations["passage_id"].n_unique())
    if situations.is_empty():
        return stats
    texts = situations["situation"].to_list()
    stats.distinct_ratio = len({text_key(t) for t in texts}) / len(texts)
    examples = [set(words(e)) for e in situation_examples()]
    stats.copied_share = sum(near_copy(t, examples, th.copy_jaccard) for t in texts) / len(texts)
    if passages is not None and not passages.is_empty():
        passage_of = dict(zip(passages["passage_id"].to_list(), passages["text"].to_list(), strict=True))
        verbatim = sum(
            restates(text, passage_of.get(pid) or "", th.verbatim_ngram, th.verbatim_share)
            for text, pid in zip(texts, situations["passage_id"].to_list(), strict=True)
        )
        stats.verbatim_share = verbatim / len(texts)
    return stats


def generation_stats(
    century: str,
    candidates: pl.DataFrame | None = None,
    situations: pl.DataFrame | None = None,
    passages: pl.DataFrame | None = None,
    thresholds: CollapseThresholds | None = None,
) -> GenerationStats:
    """One century's statistics: per kind from `candidates` (VRD_CANDIDATES or VRD), situations from `situations`
    (+ `passages` for verbatim restatement). Items per situation count every situation asked, when known."""
    stats = GenerationStats(century)
    if situations is not None:
        stats.situations = situation_stats(situations, passages, thresholds)
    if candidates is not None:
        asked = situations.height if situations is not None else candidates["situation_id"].n_unique()
        stats.kinds = {kind: kind_stats(candidates, kind, asked, thresholds) for kind in VRD_KINDS}
    return stats


# ------------------------------------------------------------------ collapse rules


def collapse_findings(stats: GenerationStats, thresholds: CollapseThresholds | None = None) -> list[Finding]:
    """Every rule that fires on `stats`, each with a message naming what collapsed."""
    th = thresholds or CollapseThresholds()
    c = stats.century
    found: list[Finding] = []

    def fire(rule: str, kind: str, value: float, threshold: float, message: str) -> None:
        found.append(Finding(rule, c, kind, round(value, 4), threshold, message))

    for kind, k in stats.kinds.items():
        plural = VRD_KIND_PLURALS[kind]
        if (
            th.min_items_per_situation is not None
            and k.n_situations
            and k.items_per_situation < th.min_items_per_situation
        ):
            fire(
                "min_items_per_situation", kind, k.items_per_situation, th.min_items_per_situation,
                f"{plural}: {k.items_per_situation:.2f} per situation in {c} (< {th.min_items_per_situation})",
            )  # fmt: skip
        if k.n_items < th.min_items:
            continue
        if (
            th.max_top_text_share is not None
            and k.top_text_share > th.max_top_text_share
            and k.top_text_count >= th.min_top_count
        ):
            fire(
                "max_top_text_share", kind, k.top_text_share, th.max_top_text_share,
                f"one text ({k.top_text!r}) is {_pct(k.top_text_share)} of {plural} in {c} "
                f"({k.top_text_count} of {k.n_items}; > {_pct(th.max_top_text_share)})",
            )  # fmt: skip
        if th.min_distinct_text_ratio is not None and k.distinct_text_ratio < th.min_distinct_text_ratio:
            fire(
                "min_distinct_text_ratio", kind, k.distinct_text_ratio, th.min_distinct_text_ratio,
                f"{plural}: only {k.distinct_texts} distinct texts in {k.n_items} items in {c} "
                f"({_pct(k.distinct_text_ratio)} < {_pct(th.min_distinct_text_ratio)})",
            )  # fmt: skip
        if th.min_valences is not None and len(k.valences) < th.min_valences:
            only = ", ".join(k.valences) or "none"
            label = "one valence only" if len(k.valences) == 1 else f"{len(k.valences)} valences"
            fire(
                "min_valences", kind, len(k.valences), th.min_valences,
                f"{plural}: {label} ({only}) in {c}",
            )  # fmt: skip
        if th.max_copied_share is not None and k.copied_explanation_share > th.max_copied_share:
            fire(
                "max_copied_share", kind, k.copied_explanation_share, th.max_copied_share,
                f"{plural}: {_pct(k.copied_explanation_share)} of explanations copy a prompt example in {c}",
            )  # fmt: skip
        if th.min_explanation_words is not None and k.explanation_words < th.min_explanation_words:
            fire(
                "min_explanation_words", kind, k.explanation_words, th.min_explanation_words,
                f"{plural}: explanations average {k.explanation_words:.1f} words in {c}",
            )  # fmt: skip
    s = stats.situations
    if s is not None and s.n_situations >= th.min_items:
        if th.max_verbatim_situation_share is not None and s.verbatim_share > th.max_verbatim_situation_share:
            fire(
                "max_verbatim_situation_share", "situation", s.verbatim_share, th.max_verbatim_situation_share,
                f"situations: {_pct(s.verbatim_share)} restate their passage verbatim in {c}",
            )  # fmt: skip
        if th.max_copied_share is not None and s.copied_share > th.max_copied_share:
            fire(
                "max_copied_share", "situation", s.copied_share, th.max_copied_share,
                f"situations: {_pct(s.copied_share)} copy a prompt example in {c}",
            )  # fmt: skip
    return found


# ------------------------------------------------------------------ from the store (assets, checks, the card)

GENERATED_TABLES = {"situations": SITUATIONS, "vrd_candidates": VRD_CANDIDATES, "vrd": VRD}


def thresholds_of(settings: Settings) -> CollapseThresholds:
    return config_from(CollapseThresholds, settings.collapse)


def century_stats(
    store: Store, table: str, century: str, thresholds: CollapseThresholds | None = None
) -> GenerationStats | None:
    """Statistics of one written partition of `table` (situations / vrd_candidates / vrd); None when absent.
    Item tables are described per kind; `situations` with its passages, and so is `vrd`, the published table,
    so its check alone can gate publishing (for `vrd_candidates` situations are only the denominator)."""
    if not store.exists(table, century):
        return None
    schemas = {**GENERATED_TABLES, "passages": PASSAGES}

    def read(name: str) -> pl.DataFrame:
        return store.read(name, century, schema=schemas[name], missing_ok=True)

    if table == "situations":
        return generation_stats(
            century, situations=read("situations"), passages=read("passages"), thresholds=thresholds
        )
    passages = read("passages") if table == "vrd" else None
    stats = generation_stats(century, read(table), read("situations"), passages, thresholds)
    if table != "vrd":
        stats.situations = None
    return stats


def all_century_stats(store: Store, table: str, thresholds: CollapseThresholds | None = None) -> list[GenerationStats]:
    """`century_stats` of every written partition of `table`, in century order."""
    found = (century_stats(store, table, century, thresholds) for century in store.partitions(table))
    return [stats for stats in found if stats is not None]


def card_markdown(store: Store, thresholds: CollapseThresholds | None = None) -> str:
    """The dataset card's section: the kept `vrd` items per century and kind, the situations, and every collapse
    warning, so a reader sees what the teacher gave before using the data; "" when nothing was generated."""
    kept = {s.century: s for s in all_century_stats(store, "vrd", thresholds)}
    situations = {s.century: s for s in all_century_stats(store, "situations", thresholds)}
    if not kept and not situations:
        return ""
    merged = [
        GenerationStats(
            century,
            situations.get(century, GenerationStats(century)).situations,
            kept.get(century, GenerationStats(century)).kinds,
        )
        for century in sorted(set(kept) | set(situations))
    ]
    findings = [f for stats in merged for f in collapse_findings(stats, thresholds)]
    intro = (
        "Distribution of the teacher's output per century and kind (kept `vrd` items; situations before the "
        "relevance filter): items per situation, distinct texts, the most frequent text, valences and their "
        "entropy (log2 3 = 1.58 bits when all three are equally used), explanation length, and explanations "
        "near-copying the prompt's few-shot examples. For scale, ValuePrism has ~7 items per situation, most "
        "distinct, with all three valences for every kind. "
        + (
            f"**{len(findings)} collapse warnings**: this teacher's output is not a dataset to train on as is."
            if findings
            else "No collapse rule fired."
        )
    )
    return intro + "\n\n" + stats_markdown(merged, findings)


def stats_metadata(stats: GenerationStats, thresholds: CollapseThresholds | None = None) -> dict[str, Any]:
    """Asset metadata: the statistics (JSON), the collapse warnings (messages) and a markdown table."""
    findings = collapse_findings(stats, thresholds)
    return {
        "generation_stats": stats.to_dict(),
        "collapse_warnings": [f.message for f in findings],
        "generation_stats_table": stats_markdown([stats], findings),
    }


# ------------------------------------------------------------------ comparing two teachers


@dataclass(slots=True)
class Agreement:
    """How far two teachers' items for the same situations agree (texts compared case- and space-folded)."""

    items_a: int = 0
    items_b: int = 0
    shared: int = 0  # (situation, kind, text) produced by both
    item_jaccard: float = 0.0  # shared / union
    same_valence: int = 0  # of the shared items, how many carry the same valence
    valence_agreement: float = 0.0  # same_valence / shared


def agreement(a: pl.DataFrame, b: pl.DataFrame) -> Agreement:
    """Same items (situation, kind, text) and, for those, the same valence, between two candidate tables."""

    def keyed(df: pl.DataFrame) -> dict[tuple[str, str, str], str]:
        return {
            (sid, kind, text_key(text)): valence
            for sid, kind, text, valence in df.select("situation_id", "kind", "text", "valence").iter_rows()
        }

    ka, kb = keyed(a), keyed(b)
    shared = set(ka) & set(kb)
    result = Agreement(items_a=len(ka), items_b=len(kb), shared=len(shared))
    union = len(set(ka) | set(kb))
    result.item_jaccard = len(shared) / union if union else 0.0
    result.same_valence = sum(ka[k] == kb[k] for k in shared)
    result.valence_agreement = result.same_valence / len(shared) if shared else 0.0
    return result


# ------------------------------------------------------------------ rendering


def stats_markdown(all_stats: Sequence[GenerationStats], findings: Sequence[Finding] = ()) -> str:
    """A markdown table per century and kind (the dataset card's section and the asset pages), then the findings."""
    lines = [
        "| century | kind | items | per situation | distinct | top text (share) | valences | entropy (bits) "
        "| expl. words | copied expl. |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stats in all_stats:
        for k in stats.kinds.values():
            valences = ", ".join(f"{v} {n}" for v, n in k.valences.items()) or "-"
            top = f"{k.top_text} ({_pct(k.top_text_share)})" if k.n_items else "-"
            lines.append(
                f"| {stats.century} | {k.kind} | {k.n_items} | {k.items_per_situation:.2f} "
                f"| {_pct(k.distinct_text_ratio)} | {_cell(top)} | {valences} | {k.valence_entropy:.2f} "
                f"| {k.explanation_words:.1f} | {_pct(k.copied_explanation_share)} |"
            )
    situation_rows = [
        f"| {stats.century} | {s.n_situations} | {s.n_passages} | {_pct(s.distinct_ratio)} "
        f"| {_pct(s.copied_share)} | {_pct(s.verbatim_share)} |"
        for stats in all_stats
        if (s := stats.situations) is not None
    ]
    if situation_rows:
        lines += ["", "| century | situations | passages | distinct | copied from examples | restate the passage |"]
        lines += ["|---|---|---|---|---|---|", *situation_rows]
    if findings:
        lines += ["", "Collapse warnings:", "", *(f"- {f.message}" for f in findings)]
    return "\n".join(lines)


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:60]


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
