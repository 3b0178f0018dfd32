import math

import polars as pl
import pytest

from quality.relevance import filter_relevance
from sources.schema import VRD_CANDIDATES, frame_of
from teacher.backends.base import TeacherResponse
from teacher.backends.scripted import ScriptedBackend
from teacher.client import Teacher
from teacher.scoring import (
    GENERATED,
    LOGPROBS,
    UNPARSED,
    choose_valence,
    option_probabilities,
    read_choice,
    relevance_scorer,
    score_relevance,
)
from tests.helpers import situations_frame


def test_option_probabilities_pool_token_variants():
    logprobs = {" Yes": math.log(0.5), "yes": math.log(0.1), "No": math.log(0.2), "Maybe": math.log(0.2)}
    probs = option_probabilities(logprobs, ("yes", "no"))
    assert probs["yes"] == pytest.approx(0.75) and probs["no"] == pytest.approx(0.25)
    assert option_probabilities({"Maybe": 0.0}, ("yes", "no")) is None
    assert option_probabilities(None, ("yes", "no")) is None
    # "e" is a prefix of "either" only; "s" of "supports" only; "o" of "opposes"
    probs = option_probabilities(
        {"sup": math.log(0.6), "opp": math.log(0.3), "e": math.log(0.1)}, ("supports", "opposes", "either")
    )
    assert max(probs, key=probs.get) == "supports"


def test_read_choice_falls_back_to_the_words():
    with_logprobs = TeacherResponse(text="No", first_token_logprobs={"Yes": math.log(0.7), "No": math.log(0.3)})
    assert read_choice(with_logprobs, ("yes", "no"), use_logprobs=True).method == LOGPROBS
    words = read_choice(with_logprobs, ("yes", "no"), use_logprobs=False)
    assert (words.method, words.probabilities) == (GENERATED, {"yes": 0.0, "no": 1.0})
    assert read_choice(TeacherResponse(text="Hmm."), ("yes", "no"), use_logprobs=True).method == UNPARSED
    assert read_choice(TeacherResponse.failed("timeout"), ("yes", "no"), use_logprobs=True).probabilities is None


def test_score_relevance_and_valence_through_a_teacher():
    items = [("Forgiving a debt", "value", "Mercy"), ("Forgiving a debt", "right", "Right to property")]
    with_logprobs = Teacher(ScriptedBackend(answers=["Yes", "No"]), None)
    scores = score_relevance(with_logprobs, items)
    assert scores[0][0] == pytest.approx(0.8 / (0.8 + 0.05)) and scores[0][1].method == LOGPROBS
    assert scores[1][0] < 0.5 and scores[1][1].call_id
    words_only = Teacher(ScriptedBackend(answers=["Yes.", "Opposes, since..."], logprobs=False), None)
    assert score_relevance(words_only, items[:1])[0][0] == 1.0
    assert choose_valence(words_only, items[1:])[0][0] == "opposes"


def test_relevance_scorer_plugs_into_the_relevance_filter():
    situations = situations_frame(["Forgiving a debt"])
    candidates = frame_of(
        [
            {
                "candidate_id": f"c{i}",
                "situation_id": situations["situation_id"][0],
                "kind": "value",
                "text": text,
                "valence": "supports",
                "explanation": "",
                "relevance": None,
                "teacher_call_id": "c",
            }
            for i, text in enumerate(["Mercy", "Thrift"])
        ],
        VRD_CANDIDATES,
    )
    scorer = relevance_scorer(Teacher(ScriptedBackend(answers=["Yes", "No"]), None))
    result = filter_relevance(candidates, 0.5, situations, scorer)
    assert result.kept["text"].to_list() == ["Mercy"]
    assert result.rejects.filter(pl.col("reason") == "irrelevant").height == 1
