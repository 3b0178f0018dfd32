import polars as pl
import pytest

from quality.relevance import filter_relevance
from sources.schema import SITUATIONS, frame_of
from tests.vrd_helpers import candidate, candidates_frame


def test_threshold_keeps_at_or_above_and_rejects_below_with_the_score():
    frame = candidates_frame(
        [
            candidate("s1", "value", "Mercy", relevance=0.9),
            candidate("s1", "value", "Justice", relevance=0.5),
            candidate("s1", "value", "Astronomy", relevance=0.4999),
        ]
    )
    result = filter_relevance(frame, threshold=0.5)
    assert result.kept["text"].to_list() == ["Mercy", "Justice"]
    (reject,) = result.rejects.to_dicts()
    assert reject["reason"] == "irrelevant" and reject["stage"] == "relevance"
    assert reject["detail"] == "relevance=0.4999 < threshold=0.5"
    assert reject["row_ref"] == frame["candidate_id"][2] and reject["snippet"] == "Astronomy"
    assert (result.stats.n_in, result.stats.n_out, result.stats.n_rejected) == (3, 2, 1)


def test_unscored_rows_are_scored_by_the_scorer_or_rejected():
    frame = candidates_frame(
        [candidate("s1", "value", "Mercy", relevance=None), candidate("s2", "duty", "Pay tithes", relevance=None)]
    )
    situations = frame_of([{"situation_id": "s1", "situation": "Forgiving a debt", "passage_id": "p"}], SITUATIONS)
    asked = []

    def scorer(queries):
        asked.extend(queries)
        return [0.8 for _ in queries]

    result = filter_relevance(frame, 0.5, situations, scorer)
    assert asked == [("Forgiving a debt", "value", "Mercy")]  # s2 has no situation text: nothing to ask
    assert result.kept["relevance"].to_list() == [0.8]
    assert result.rejects["reason"].to_list() == ["unscored"]
    assert dict(result.stats.rejected) == {"unscored": 1}

    without = filter_relevance(frame, 0.5)
    assert without.kept.is_empty() and without.rejects["reason"].to_list() == ["unscored", "unscored"]


def test_scorer_none_answers_become_unscored_and_a_wrong_length_raises():
    frame = candidates_frame([candidate("s1", "value", "Mercy", relevance=float("nan"))])
    situations = frame_of([{"situation_id": "s1", "situation": "x"}], SITUATIONS)
    assert filter_relevance(frame, 0.5, situations, lambda q: [None]).rejects["reason"].to_list() == ["unscored"]
    with pytest.raises(ValueError, match="returned 0 scores for 1"):
        filter_relevance(frame, 0.5, situations, lambda q: [])


def test_empty_input():
    result = filter_relevance(candidates_frame([]), 0.5)
    assert result.kept.is_empty() and result.rejects.is_empty() and result.stats.n_in == 0
    assert isinstance(result.kept, pl.DataFrame)


def test_teacher_scorer_reads_p_yes_from_logprobs_or_falls_back_to_the_answer():
    from quality.relevance import TeacherRelevanceScorer
    from teacher.backends.scripted import ScriptedBackend
    from teacher.client import Teacher

    frame = candidates_frame(
        [candidate("s1", "value", t, relevance=None) for t in ("Mercy", "Astronomy", "Thrift")]
        + [candidate("s1", "value", "Justice", relevance=0.7)]  # already scored: not asked again
    )
    situations = frame_of([{"situation_id": "s1", "situation": "Forgiving a debt"}], SITUATIONS)
    opened = []
    answers = {"Mercy": "Yes", "Astronomy": "No", "Thrift": "Maybe so"}

    def answer(request):
        return next(a for item, a in answers.items() if f"'{item}'" in request.messages[-1]["content"])

    def make(logprobs: bool):
        def open_teacher():
            backend = ScriptedBackend(responder=answer, logprobs=logprobs)
            opened.append(backend)
            return Teacher(backend, None)

        return TeacherRelevanceScorer(open_teacher, calibrate=False)

    with_logprobs = make(logprobs=True)
    result = filter_relevance(frame, 0.5, situations, with_logprobs)
    assert len(opened[0].requests) == 3 and all(r.task == "relevance" for r in opened[0].requests)
    assert dict(with_logprobs.methods) == {"logprobs": 3}  # the top tokens always name yes or no
    scores = dict(zip(result.kept["text"], result.kept["relevance"], strict=True))
    assert scores["Mercy"] == pytest.approx(0.8 / 0.85) and scores["Justice"] == 0.7
    assert with_logprobs.teacher_stats()["jobs"] == 3

    generated = make(logprobs=False)
    result = filter_relevance(frame, 0.5, situations, generated)
    assert dict(generated.methods) == {"generated": 2, "unparsed": 1}
    assert sorted(result.kept["text"]) == ["Justice", "Mercy"]
    assert dict(zip(result.rejects["snippet"], result.rejects["reason"], strict=True)) == {
        "Astronomy": "irrelevant",
        "Thrift": "unscored",
    }

    untouched = make(logprobs=True)
    filter_relevance(frame.filter(pl.col("text") == "Justice"), 0.5, situations, untouched)
    assert untouched.teacher is None and untouched.teacher_stats() == {}  # no unscored rows: no model opened


def test_contextual_calibration_divides_out_the_teachers_prior():
    from quality.relevance import TeacherRelevanceScorer, calibrated
    from teacher.backends.scripted import ScriptedBackend
    from teacher.client import Teacher

    assert calibrated(0.3, 0.5) == pytest.approx(0.3)  # a balanced teacher is left alone
    assert calibrated(0.25, 0.16) == pytest.approx(0.636, abs=1e-3)  # above a "no"-leaning prior: relevant
    assert calibrated(0.14, 0.16) < 0.5
    frame = candidates_frame([candidate("s1", "value", t, relevance=None) for t in ("Mercy", "Astronomy")])
    situations = frame_of([{"situation_id": "s1", "situation": "Forgiving a debt"}], SITUATIONS)
    backend = ScriptedBackend(responder=lambda request: "Yes" if "Mercy" in request.messages[-1]["content"] else "No")
    scorer = TeacherRelevanceScorer(lambda: Teacher(backend, None))
    result = filter_relevance(frame, 0.6, situations, scorer)
    assert sum("'N/A'" in r.messages[-1]["content"] for r in backend.requests) == 1
    assert scorer.prior["value"] == pytest.approx(0.05 / 0.85)
    scores = dict(zip(result.kept["text"], result.kept["relevance"], strict=True))
    assert list(scores) == ["Mercy"] and scores["Mercy"] > 0.99
    assert result.rejects["detail"].to_list() == ["relevance=0.5000 < threshold=0.6"]  # no better than the prior
    filter_relevance(frame, 0.6, situations, scorer)
    assert len(backend.requests) == 3 + 2  # the prior is asked once per kind per scorer
