"""ValuePrism-style generation: passages -> situations -> value/right/duty candidates, through the Teacher.

Both stages count per input row (a passage, a situation): it either yields output rows or is rejected with a
reason: the teacher quarantines (`malformed_output`, `backend_error`, rows with stage `teacher` and the raw answer
in `detail`), or `situation_cap` (the century's situation budget was spent on earlier passages) and
`no_valence` (every item came back without a valence the valence prompt could settle).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import polars as pl

from sources.schema import REJECTS, SITUATIONS, VRD_CANDIDATES, VRD_KINDS, Reject, frame_of, stable_id
from sources.settings import Settings, config_from
from sources.stats import StageStats
from teacher.client import Job, JobResult, Teacher, TeacherStats
from teacher.parse import VrdItem, parse_situations, parse_vrd
from teacher.prompts import situation_examples, situation_request, vrd_examples, vrd_request
from teacher.scoring import choose_valence

logger = logging.getLogger(__name__)

REJECT_STAGE = "teacher"
REJECT_SOURCE = "teacher"


@dataclass(slots=True)
class GenerationConfig:
    situation_max_new_tokens: int = 40  # two or three short phrases
    vrd_max_new_tokens: int = 64  # per kind: about two items with one-sentence explanations
    situations_per_passage: int = 2
    max_situations: int | None = 6  # per century (partition); None = no cap
    temperature: float = 0.0  # greedy: a rebuild reproduces the same answers
    seed: int = 0
    # [issue 19] overgeneration (KaleidoSys): several answers per (situation, kind), relevance + dedup choose.
    # Sample 1 keeps `temperature` / `seed` (so 1 sample = the single greedy answer, unchanged); samples 2..n
    # sample at `sample_temperature` with seeds `sample_seeds` (default seed+1, seed+2, ...). Each sample is its
    # own request, so its own cache entry: a rebuild makes no calls.
    vrd_samples: int = 1
    sample_temperature: float = 0.8
    sample_seeds: list[int] | None = None


@dataclass(slots=True)
class StageResult:
    frame: pl.DataFrame
    rejects: pl.DataFrame
    stats: StageStats
    teacher: TeacherStats
    sample_markdown: str = ""
    extra: dict = field(default_factory=dict)


def extract_situations(passages: pl.DataFrame, teacher: Teacher, cfg: GenerationConfig) -> StageResult:
    """PASSAGES -> SITUATIONS: one to `situations_per_passage` situations per passage, in passage order."""
    before = teacher.snapshot()
    stats = StageStats("situations")
    stats.n_in = passages.height
    parse = functools.partial(parse_situations, examples=situation_examples(), max_items=cfg.situations_per_passage)
    rows = list(passages.iter_rows(named=True))
    jobs = [
        Job(
            situation_request(
                row["text"],
                row["century"],
                max_new_tokens=cfg.situation_max_new_tokens,
                temperature=cfg.temperature,
                seed=cfg.seed,
            ),
            parse=parse,
            ref=row["passage_id"],
        )
        for row in rows
    ]
    situations, rejects = [], []
    for row, result in zip(rows, teacher.run(jobs), strict=True):
        if not result.ok:
            rejects.append(_quarantine(row["passage_id"], result, row["text"]))
            continue
        room = None if cfg.max_situations is None else cfg.max_situations - len(situations)
        if room is not None and room <= 0:
            detail = f"max_situations={cfg.max_situations} reached"
            rejects.append(_reject(row["passage_id"], "situation_cap", detail, row["text"]))
            continue
        for text in result.value[:room]:
            situations.append(
                {
                    "situation_id": stable_id(row["passage_id"], text),
                    "passage_id": row["passage_id"],
                    "century": row["century"],
                    "situation": text,
                    "teacher_call_id": result.call_id,
                }
            )
        stats.n_out += 1
    frame = frame_of(situations, SITUATIONS).unique("situation_id", keep="first", maintain_order=True)
    return _finish(stats, frame, rejects, teacher.snapshot() - before, _situations_markdown(frame, passages))


def generate_vrd(situations: pl.DataFrame, teacher: Teacher, cfg: GenerationConfig) -> StageResult:
    """SITUATIONS -> VRD_CANDIDATES: values, rights and duties with valence and explanation per situation, one
    teacher call per (situation, kind).

    A situation is kept when any of its calls gave an item with a valence; it is rejected (the first quarantine
    reason) only when all its calls were quarantined, else `no_valence`. `relevance` stays null here:
    `vrd_relevant` scores it (teacher.scoring.score_relevance) and filters.
    """
    before = teacher.snapshot()
    stats = StageStats("vrd_candidates")
    stats.n_in = situations.height
    rows = list(situations.iter_rows(named=True))
    samples = vrd_sampling(cfg)
    asked = [(row, kind, sample) for row in rows for kind in VRD_KINDS for sample in samples]
    parsers = {kind: functools.partial(parse_vrd, examples=vrd_examples(), kind=kind) for kind in VRD_KINDS}
    jobs = [
        Job(
            vrd_request(
                row["situation"],
                kind=kind,
                max_new_tokens=cfg.vrd_max_new_tokens,
                temperature=temperature,
                seed=seed,
            ),
            parse=parsers[kind],
            ref=row["situation_id"],
        )
        for row, kind, (temperature, seed) in asked
    ]
    answered = [(row, result) for (row, _, _), result in zip(asked, teacher.run(jobs), strict=True)]
    valences = _fill_valences(teacher, answered)
    candidates, rejects = [], []
    no_valence = 0
    by_situation: dict[str, list[JobResult]] = {}
    for row, result in answered:
        by_situation.setdefault(row["situation_id"], []).append(result)
        for item in result.value if result.ok else []:
            valence = item.valence or valences.get((row["situation_id"], item.kind, item.text))
            if valence is None:
                no_valence += 1
                continue
            candidates.append(_candidate(row["situation_id"], item, valence, result.call_id))
    with_items = {candidate["situation_id"] for candidate in candidates}
    for row in rows:
        results = by_situation[row["situation_id"]]
        failed = [result for result in results if not result.ok]
        if row["situation_id"] in with_items:
            stats.n_out += 1
        elif len(failed) == len(results):
            rejects.append(_quarantine(row["situation_id"], failed[0], row["situation"]))
        else:
            detail = " | ".join(result.response.text for result in results if result.ok and result.response)
            rejects.append(_reject(row["situation_id"], "no_valence", detail, row["situation"]))
    stats.measure("items_without_valence", no_valence)
    stats.measure("kind_calls_quarantined", sum(not result.ok for _, result in answered))
    frame = frame_of(candidates, VRD_CANDIDATES).unique("candidate_id", keep="first", maintain_order=True)
    stats.measure("sample_repeats", len(candidates) - frame.height)  # the same item from two samples: kept once
    return _finish(stats, frame, rejects, teacher.snapshot() - before, _vrd_markdown(situations, frame))


def vrd_sampling(cfg: GenerationConfig) -> list[tuple[float, int]]:
    """(temperature, seed) of each VRD sample: the configured decoding first, then `vrd_samples - 1` samples at
    `sample_temperature`, each with its own seed."""
    n = max(1, cfg.vrd_samples)
    given = list(cfg.sample_seeds or [])
    seeds = given[:n] + [cfg.seed + i for i in range(len(given), n)]
    return [(cfg.temperature if i == 0 else cfg.sample_temperature, seed) for i, seed in enumerate(seeds)]


def generation_config(settings: Settings) -> GenerationConfig:
    """The generation config from the `teacher` settings (the asset and `teacher-compare` share it)."""
    t = settings.teacher
    return config_from(
        GenerationConfig, t, vrd_max_new_tokens=t.max_new_tokens, max_situations=t.max_situations_per_century
    )


def _fill_valences(teacher: Teacher, answered: list[tuple[dict, JobResult]]) -> dict[tuple[str, str, str], str]:
    """(d) ask the valence prompt for every generated item that came without a usable valence."""
    missing = [
        (row["situation_id"], row["situation"], item)
        for row, result in answered
        if result.ok
        for item in result.value
        if item.valence is None
    ]
    if not missing:
        return {}
    answers = choose_valence(teacher, [(situation, item.kind, item.text) for _, situation, item in missing])
    return {
        (situation_id, item.kind, item.text): valence
        for (situation_id, _, item), (valence, _) in zip(missing, answers, strict=True)
        if valence is not None
    }


def _candidate(situation_id: str, item: VrdItem, valence: str, call_id: str | None) -> dict:
    return {
        "candidate_id": stable_id(situation_id, item.kind, item.text),
        "situation_id": situation_id,
        "kind": item.kind,
        "text": item.text,
        "valence": valence,
        "explanation": item.explanation,
        "relevance": None,
        "teacher_call_id": call_id,
    }


def _quarantine(row_ref: str, result: JobResult, text: str) -> Reject:
    """A rejects row for a job the teacher gave up on; `detail` keeps the raw answer (or the backend error)."""
    detail = f"attempts={result.attempts} call_id={result.call_id} {result.detail}"
    return _reject(row_ref, result.quarantine or "", detail, text)


def _reject(row_ref: str, reason: str, detail: str, text: str) -> Reject:
    return Reject.of(
        row_ref=row_ref, source=REJECT_SOURCE, stage=REJECT_STAGE, reason=reason, detail=detail, text=text
    )


def _finish(
    stats: StageStats, frame: pl.DataFrame, rejects: list[Reject], teacher: TeacherStats, markdown: str
) -> StageResult:
    for reject in rejects:
        stats.reject(reject.reason)
    stats.check()
    return StageResult(frame, frame_of(rejects, REJECTS), stats, teacher, markdown)


def _situations_markdown(situations: pl.DataFrame, passages: pl.DataFrame, limit: int = 4) -> str:
    text_of = dict(zip(passages["passage_id"], passages["text"], strict=True))
    lines = []
    for passage_id, group in situations.group_by("passage_id", maintain_order=True):
        if len(lines) >= limit * 3:
            break
        excerpt = " ".join(text_of.get(passage_id[0], "").split())[:160]
        lines.append(f"> {excerpt}…")
        lines.extend(f"- {s}" for s in group["situation"])
        lines.append("")
    return "\n".join(lines) or "_(no situations)_"


def _vrd_markdown(situations: pl.DataFrame, candidates: pl.DataFrame, limit: int = 3) -> str:
    lines = []
    for row in situations.head(limit).iter_rows(named=True):
        lines.append(f"**{row['situation']}**")
        for c in candidates.filter(pl.col("situation_id") == row["situation_id"]).iter_rows(named=True):
            lines.append(f"- {c['kind']}: {c['text']} ({c['valence']}): {c['explanation']}")
        lines.append("")
    return "\n".join(lines) or "_(no candidates)_"
