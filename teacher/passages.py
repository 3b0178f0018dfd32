"""Cut a century's texts into passages on sentence / verse boundaries and pick the ones worth a teacher call.

A passage's `text` is exactly `document.text[char_start:char_end]`, so every situation traces back to a span.
The teacher budget is small (a few passages per century in the demo), so passages are ranked by how much moral
vocabulary they carry (laws, duties, debts, mercy, war...: a genealogy or a stage direction yields no situation)
and picked round-robin over sources, then documents, so one long Bible does not crowd out the plays.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from sources.schema import PASSAGES, REJECTS, Reject, frame_of, stable_id
from sources.stats import StageStats

logger = logging.getLogger(__name__)

STAGE = "passages"

# sentence ends (with closing quotes/brackets), verse / line breaks, and clause breaks as a last resort
_SENTENCE_END = re.compile(r"[.!?][\"'\u2019\u201d)\]]*\s+|\n\s*")
_CLAUSE_END = re.compile(r"[;:,]\s+")
_WORD = re.compile(r"[A-Za-z\u00c0-\u024f']+")

_MORAL_VOCABULARY = """
    ought should must shall duty duties right rights wrong law laws lawful unlawful justice unjust just judge judged
    judgment judgement sin sins sinned sinner mercy merciful forgive forgave forgiven forgiveness steal stole theft
    thief kill killed slay slew murder murderer lie lied liar lying false truth true honest honesty faith faithful
    loyal loyalty betray betrayed treason promise promised oath oaths vow swear sworn honour honor honourable shame
    punish punished punishment reward poor poverty rich riches wealth slave slaves slavery servant servants bond free
    freedom liberty war wars peace charity alms give gave help helped protect protection obey obedience disobey
    serve rebel rebellion debt debts owe pay paid tax taxes wages labour labor work workers marriage marry married
    wife husband neighbour neighbor stranger strangers widow widows orphan fatherless
    revenge vengeance kind kindness cruel cruelty good evil wicked wickedness righteous righteousness virtue vice
    greed covetous pride proud humble envy love hate hatred trust deceive deceit sacrifice conscience equal equality
    citizen citizens government vote educate education welfare fair unfair crime crimes prison guilty innocent
    innocence blame mercy pity spare deserve hunger hungry feed sick heal care duty obligation responsibility
    nation sacred oppress oppression oppressed tyranny tyrant rights suffer suffering
"""
MORAL_WORDS = frozenset(_MORAL_VOCABULARY.split())


@dataclass(slots=True)
class PassageConfig:
    target_chars: int = 500  # ~120 tokens: long enough for a situation, short enough for a fast prompt
    max_chars: int = 900  # hard cut (at whitespace) for a sentence longer than this
    min_chars: int = 150  # shorter chunks (headings, a lone verse number) are not worth a call
    per_century: int | None = 6  # None: keep every passage
    seed: int = 0  # tie-break order among equally salient passages


@dataclass(slots=True)
class Span:
    start: int
    end: int


def split_spans(text: str, cfg: PassageConfig) -> Iterator[Span]:
    """Greedy packing of whole sentences into chunks of about `target_chars`; spans index into `text`."""
    cuts = sorted({m.end() for m in _SENTENCE_END.finditer(text)} | {len(text)})
    start = _skip_space(text, 0)
    i = 0
    while start < len(text):
        while i < len(cuts) and cuts[i] <= start:
            i += 1
        # furthest sentence end within target, else the first one after start
        j = i
        while j + 1 < len(cuts) and cuts[j + 1] - start <= cfg.target_chars:
            j += 1
        end = cuts[j] if j < len(cuts) else len(text)
        if end - start > cfg.max_chars:
            end = _hard_cut(text, start, cfg.max_chars)
        stripped_end = len(text[:end].rstrip())
        if stripped_end > start:
            yield Span(start, stripped_end)
        start = _skip_space(text, end)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _hard_cut(text: str, start: int, max_chars: int) -> int:
    window = text[start : start + max_chars]
    clause = [m.end() for m in _CLAUSE_END.finditer(window)]
    if clause and clause[-1] > max_chars // 2:
        return start + clause[-1]
    space = window.rfind(" ")
    return start + (space if space > max_chars // 2 else max_chars)


def moral_salience(text: str) -> float:
    """Distinct MORAL_WORDS per word, a cheap proxy for 'a person could judge something here' (repeats count once,
    so a genealogy cannot win)."""
    words = _WORD.findall(text.lower())
    if not words:
        return 0.0
    return len(MORAL_WORDS.intersection(words)) / max(len(words), 40)


@dataclass(slots=True, order=True)
class Candidate:
    """A chunk competing for the budget; sorts best-first (most salient, then a seeded stable order)."""

    neg_salience: float
    order: str
    doc_id: str
    span: Span
    passage_id: str


def select_passages(
    pretrain: pl.DataFrame, century: str, cfg: PassageConfig
) -> tuple[pl.DataFrame, pl.DataFrame, StageStats]:
    """PRETRAIN rows of one century -> (PASSAGES, REJECTS, stats); the unit of accounting is the document.

    A document either contributes passages (n_out) or is rejected: `too_short` (no chunk of `min_chars`) or
    `not_selected` (its passages lost the salience ranking to other documents').
    """
    stats = StageStats(STAGE)
    stats.n_in = pretrain.height
    by_source: dict[str, list[list[Candidate]]] = defaultdict(list)
    rejects: list[Reject] = []
    rows = list(pretrain.iter_rows(named=True))
    for row in rows:
        text, doc_id = row["text"] or "", row["doc_id"]
        chunks = []
        for span in split_spans(text, cfg):
            if span.end - span.start < cfg.min_chars:
                continue
            passage_id = stable_id(doc_id, span.start, span.end)
            salience = moral_salience(text[span.start : span.end])
            chunks.append(Candidate(-salience, stable_id(cfg.seed, passage_id), doc_id, span, passage_id))
        if not chunks:
            rejects.append(
                Reject.of_document(
                    row, stage=STAGE, reason="too_short", detail=f"no chunk of >= {cfg.min_chars} chars"
                )
            )
            continue
        stats.measure("chunks_per_doc", len(chunks))
        by_source[row["source"]].append(sorted(chunks))
    picked = _round_robin(by_source, cfg.per_century)
    texts = {row["doc_id"]: row["text"] for row in rows}
    passages = []
    for cand in picked:
        stats.measure("salience", -cand.neg_salience)
        passages.append(
            {
                "passage_id": cand.passage_id,
                "doc_id": cand.doc_id,
                "century": century,
                "char_start": cand.span.start,
                "char_end": cand.span.end,
                "text": texts[cand.doc_id][cand.span.start : cand.span.end],
            }
        )
    used = {cand.doc_id for cand in picked}
    rejected = {r.row_ref for r in rejects}
    for row in rows:
        if row["doc_id"] not in used and row["doc_id"] not in rejected:
            rejects.append(
                Reject.of_document(
                    row,
                    stage=STAGE,
                    reason="not_selected",
                    detail=f"the {cfg.per_century} passages of {century} went to other documents",
                )
            )
    for reject in rejects:
        stats.reject(reject.reason)
    stats.n_out = len(used)
    stats.check()
    return frame_of(passages, PASSAGES), frame_of(rejects, REJECTS), stats


def _round_robin(by_source: dict[str, list[list[Candidate]]], limit: int | None) -> list[Candidate]:
    """Sources take turns (in name order). Within a source a document's k-th best passage counts its salience
    / (k + 1), so documents share the budget but a salient document's second passage still beats a genealogy."""
    queues = {}
    for source, docs in sorted(by_source.items()):
        ranked = [(c.neg_salience / (k + 1), c.order, c) for chunks in docs for k, c in enumerate(chunks)]
        queues[source] = [c for _, _, c in sorted(ranked, key=lambda r: (r[0], r[1]))]
    picked: list[Candidate] = []
    total = sum(len(q) for q in queues.values())
    depth = 0
    while len(picked) < total and (limit is None or len(picked) < limit):
        for queue in queues.values():
            if depth < len(queue) and (limit is None or len(picked) < limit):
                picked.append(queue[depth])
        depth += 1
    return picked
