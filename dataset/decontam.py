"""Benchmark decontamination: exact matches and shared 13-word n-grams against training text.

A benchmark row (a held-out situation and one gold item) is contaminated when any of its text fields (situation,
item text, explanation: `ROW_FIELDS`) [issue 13: not just situation and item]
  - `exact_<ref>`: equals, after normalisation, a whole text unit of a reference set (a training row's field, a
    training situation, a pretrain text), or
  - `ngram_<ref>`: shares a word n-gram (n = 13, the GPT-3 paper's decontamination length) with any reference text.
Normalisation (for comparing only): NFKC (the long s folds to s), lower case, words = runs of letters/digits;
historical spelling is not modernised.
A situation hit removes every row of that situation; an item or explanation hit removes that row, and the removed
row records the field that matched (`field`). The benchmark is always the side that is dropped: training data is
never thinned to save a benchmark row. Recurring teacher output, decided deliberately:
  - an item label (or explanation) of at most GENERIC_ITEM_WORDS words ("Honesty", "Right to property",
    "Mercy matters here") recurs across situations by design (ValuePrism: one value applies to many
    situations); it is not contamination by itself and is not matched (the benchmark tests the new situation ->
    label pairing; the row's situation and longer fields are still checked). Dropping them emptied the benchmark
    whenever the teacher repeats its vocabulary;
  - a longer item equal to a training text (exact), and boilerplate explanations sharing 13+ words with any
    training text (n-gram), remove the benchmark row.
The reference side is streamed, so the pretrain corpus never sits in memory as n-grams.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

log = logging.getLogger(__name__)

DEFAULT_NGRAM = 13


@dataclass(slots=True)
class DecontamResult:
    clean: pl.DataFrame  # the benchmark rows that survive
    removed: pl.DataFrame  # removed rows with a `rule` column
    report: dict[str, int]  # rule -> rows removed (first rule that fired per row)


class _Probe:
    """The benchmark side: exact strings and n-grams, each mapped to the benchmark rows it would remove.

    Reference texts are tokenised by polars in batches, each word hashed, and every n-gram of a batch gets a
    rolling 64-bit hash (numpy, Horner's rule with wrap-around); only hash hits are compared word by word. This
    keeps a scan of the whole pretrain corpus (~64M chars in the demo) to seconds."""

    def __init__(self, situations: list[str], fields: dict[str, list[str | None]], situation_keys: list[str], n: int):
        self.n = n
        self.exact: dict[str, set[tuple[int, str]]] = {}
        self.grams: dict[int, dict[tuple[str, ...], set[tuple[int, str]]]] = {}
        rows_of_situation: dict[str, list[tuple[int, str]]] = {}
        for row, key in enumerate(situation_keys):
            rows_of_situation.setdefault(key, []).append((row, "situation"))
        texts = list(situations)
        targets = [rows_of_situation[key] for key in situation_keys]
        for field, values in fields.items():
            texts += values
            targets += [[(row, field)] for row in range(len(values))]
        for tokens, rows in zip(token_lists(texts), targets, strict=True):
            tokens = tokens.to_list()
            if not tokens:
                continue
            if not (rows[0][1] != "situation" and len(tokens) <= GENERIC_ITEM_WORDS):  # a label: see docstring
                self.exact.setdefault(" ".join(tokens), set()).update(rows)
            if len(tokens) >= n:
                for i, value in enumerate(gram_hashes(word_hashes(pl.Series(tokens, dtype=pl.String)), n).tolist()):
                    self.grams.setdefault(value, {}).setdefault(tuple(tokens[i : i + n]), set()).update(rows)
        self.gram_keys = np.fromiter(self.grams, dtype=np.uint64, count=len(self.grams))
        # a text can share a gram only if it contains the gram's longest word, and can equal a benchmark text only
        # if it is not much longer than the longest one: two cheap filters before the (slow) tokenisation
        self.anchors = sorted({max(gram, key=len) for by_hash in self.grams.values() for gram in by_hash})
        self.max_exact_chars = EXACT_SLACK * max((len(t) for t in self.exact), default=0) + 64

    def scan(self, texts: Iterable[str | None]) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
        """(row, field) hit by an exact match and by a shared n-gram, over a stream of reference texts."""
        exact_hits: set[tuple[int, str]] = set()
        gram_hits: set[tuple[int, str]] = set()
        for batch in _batches(texts, TOKEN_BATCH):
            raw = pl.Series("text", batch, dtype=pl.String).fill_null("")
            short = raw.filter(raw.str.len_chars() <= self.max_exact_chars)
            if self.exact and short.len():
                joined = token_lists(short).list.join(" ")
                for text in joined.filter(joined.is_in(list(self.exact))).to_list():
                    exact_hits |= self.exact[text]
            if self.grams:
                folded = _fold(raw)
                candidates = raw.filter(folded.str.contains_any(self.anchors))
                if candidates.len():
                    gram_hits |= self._gram_hits(token_lists(candidates))
        return exact_hits, gram_hits

    def _gram_hits(self, tokens: pl.Series) -> set[tuple[int, str]]:
        n = self.n
        lengths = tokens.list.len().to_numpy()
        words = tokens.explode().drop_nulls()
        if words.len() < n:
            return set()
        hashes = gram_hashes(word_hashes(words), n)
        doc = np.repeat(np.arange(len(lengths)), lengths)
        inside_one_text = doc[: len(hashes)] == doc[n - 1 :]
        hits: set[tuple[int, str]] = set()
        for i in np.nonzero(inside_one_text & np.isin(hashes, self.gram_keys))[0].tolist():
            rows = self.grams[int(hashes[i])].get(tuple(words.slice(i, n).to_list()))
            if rows:
                hits |= rows
        return hits


TOKEN_BATCH = 256  # reference texts per polars call: bounded memory, few Python round trips
HASH_SEED = 20240613
HASH_BASE = np.uint64(1_000_003)


EXACT_SLACK = 4  # a reference text this many times longer than every benchmark text cannot normalise to one


def token_lists(texts: list[str | None] | pl.Series) -> pl.Series:
    """One list of words per text: NFKC, lower case, runs of word characters."""
    return _fold(pl.Series("text", texts, dtype=pl.String).fill_null("")).str.extract_all(r"\w+")


def _fold(texts: pl.Series) -> pl.Series:
    """NFKC then lower case; NFKC only where a text has non-ASCII characters (it is the identity elsewhere)."""
    non_ascii = texts.str.contains(r"[^\x00-\x7F]")
    if not non_ascii.any():
        return texts.str.to_lowercase()
    folded = texts.to_frame().with_row_index("i")
    wide = folded.filter(non_ascii).with_columns(pl.col("text").str.normalize("NFKC"))
    return pl.concat([folded.filter(~non_ascii), wide]).sort("i")["text"].str.to_lowercase()


def word_hashes(words: pl.Series) -> np.ndarray:
    return words.hash(seed=HASH_SEED).to_numpy()


def gram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every window of n consecutive word hashes (uint64 arithmetic wraps, which is what we want)."""
    count = len(hashes) - n + 1
    out = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            out = out * HASH_BASE + hashes[k : k + count]
    return out


def _batches(texts: Iterable[str | None], size: int):
    batch: list[str | None] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


ROW_FIELDS = ("text", "explanation")  # per-row text fields probed besides the situation
GENERIC_ITEM_WORDS = 3  # an item or explanation this short is a label ("Honesty", "Right to property")


def find_contamination(
    benchmark: pl.DataFrame, references: Mapping[str, Iterable[str | None]], n: int = DEFAULT_NGRAM
) -> list[str | None]:
    """The first rule that fires for each benchmark row (None = clean), references checked in the given order.

    `benchmark` needs `situation_id`, `situation` and `text` (the item); `explanation` is probed when present."""
    return contamination_with_fields(benchmark, references, n)[0]


def contamination_with_fields(
    benchmark: pl.DataFrame, references: Mapping[str, Iterable[str | None]], n: int = DEFAULT_NGRAM
) -> tuple[list[str | None], list[str | None]]:
    """(rule, field) of the first hit per benchmark row; field is the benchmark field that matched."""
    fields = {name: benchmark[name].to_list() for name in ROW_FIELDS if name in benchmark.columns}
    probe = _Probe(benchmark["situation"].to_list(), fields, benchmark["situation_id"].to_list(), n)
    rule_of: list[str | None] = [None] * benchmark.height
    field_of: list[str | None] = [None] * benchmark.height
    for name, texts in references.items():
        exact_hits, gram_hits = probe.scan(texts)
        for rule, hits in ((f"exact_{name}", exact_hits), (f"ngram_{name}", gram_hits)):
            for row, field in sorted(hits):
                if rule_of[row] is None:
                    rule_of[row], field_of[row] = rule, field
    return rule_of, field_of


def decontaminate(
    benchmark: pl.DataFrame, references: Mapping[str, Iterable[str | None]], n: int = DEFAULT_NGRAM
) -> DecontamResult:
    """Drop every benchmark row that a reference set contaminates; report rows removed by rule."""
    rules, fields = contamination_with_fields(benchmark, references, n)
    flagged = benchmark.with_columns(
        pl.Series("rule", rules, dtype=pl.String), pl.Series("field", fields, dtype=pl.String)
    )
    clean = flagged.filter(pl.col("rule").is_null()).drop("rule", "field")
    removed = flagged.filter(pl.col("rule").is_not_null())
    report = dict(sorted(Counter(r for r in rules if r is not None).items()))
    log.info("decontamination: %d benchmark rows, %d removed %s", benchmark.height, removed.height, report)
    return DecontamResult(clean, removed, report)
