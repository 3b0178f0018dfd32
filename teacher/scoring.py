"""Scores read from the teacher: relevance P(yes) and a valence label for one value/right/duty.

With logprobs (transformers, vllm, `vllm serve`): the probability mass of the first answer token is split between
the options (" yes", "Yes", "y"... all count for yes) and normalised, so `P(yes)` is a real number in [0, 1] as in
Kaleido's relevance head. Without logprobs (`transformers serve`, most hosted APIs): the model answers in words
and the answer maps to 1.0 / 0.0; an answer naming neither option gives `None`, and the caller decides (the
relevance filter keeps or drops by its own rule). `method` says which way each score was made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from teacher.backends.base import TeacherResponse
from teacher.client import Job, Teacher
from teacher.parse import parse_choice
from teacher.prompts import relevance_request, valence_request

LOGPROBS, GENERATED, UNPARSED, FAILED = "logprobs", "generated", "unparsed", "failed"
VALENCE_OPTIONS = ("supports", "opposes", "either")


@dataclass(slots=True)
class Score:
    """P(option) per option (None when nothing could be read), how it was made, and the call it came from."""

    probabilities: dict[str, float] | None
    method: str
    call_id: str | None

    def best(self) -> str | None:
        if not self.probabilities:
            return None
        return max(self.probabilities, key=self.probabilities.get)


def option_probabilities(logprobs: dict[str, float] | None, options: Sequence[str]) -> dict[str, float] | None:
    """Normalised first-token probability of each option; a token counts for an option it is a prefix of (and
    only if it is a prefix of no other). None when no top token points at any option."""
    if not logprobs:
        return None
    mass = dict.fromkeys(options, 0.0)
    for token, logprob in logprobs.items():
        word = token.strip().lower()
        if not word:
            continue
        matches = [opt for opt in options if opt.startswith(word)]
        if len(matches) == 1:
            mass[matches[0]] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return {opt: p / total for opt, p in mass.items()}


def read_choice(response: TeacherResponse | None, options: Sequence[str], use_logprobs: bool) -> Score:
    if response is None or not response.ok:
        return Score(None, FAILED, None)
    if use_logprobs:
        probabilities = option_probabilities(response.first_token_logprobs, options)
        if probabilities is not None:
            return Score(probabilities, LOGPROBS, None)
    choice = parse_choice(response.text, options)
    if choice is None:
        return Score(None, UNPARSED, None)
    return Score({opt: float(opt == choice) for opt in options}, GENERATED, None)


def _score(teacher: Teacher, jobs: list[Job], options: Sequence[str]) -> list[Score]:
    scores = []
    for result in teacher.run(jobs):
        score = read_choice(result.response if result.ok else None, options, teacher.supports_logprobs)
        score.call_id = result.call_id
        scores.append(score)
    return scores


def score_relevance(teacher: Teacher, items: Sequence[tuple[str, str, str]]) -> list[tuple[float | None, Score]]:
    """P(yes) that each (situation, kind, text) value/right/duty is relevant to its situation (Kaleido's task)."""
    jobs = [Job(relevance_request(situation, kind, text), ref=text) for situation, kind, text in items]
    scores = _score(teacher, jobs, ("yes", "no"))
    return [(s.probabilities["yes"] if s.probabilities else None, s) for s in scores]


def choose_valence(teacher: Teacher, items: Sequence[tuple[str, str, str]]) -> list[tuple[str | None, Score]]:
    """supports / opposes / either for each (situation, kind, text), for items generated without a valence."""
    jobs = [Job(valence_request(situation, kind, text), ref=text) for situation, kind, text in items]
    scores = _score(teacher, jobs, VALENCE_OPTIONS)
    return [(s.best(), s) for s in scores]


def relevance_scorer(teacher: Teacher) -> Callable[[Sequence[tuple[str, str, str]]], list[float | None]]:
    """`score_relevance` in the shape quality.relevance.filter_relevance takes: items in, P(yes) (or None) out."""

    def score(items: Sequence[tuple[str, str, str]]) -> list[float | None]:
        return [p_yes for p_yes, _ in score_relevance(teacher, items)]

    return score
