import json

import polars as pl

from sources.schema import PASSAGES, frame_of
from teacher.backends.scripted import ScriptedBackend, default_answer
from teacher.client import Teacher
from teacher.generate import GenerationConfig, extract_situations, generate_vrd
from tests.helpers import situations_frame


def passages(n: int) -> pl.DataFrame:
    rows = [
        {
            "passage_id": f"p{i}",
            "doc_id": "d",
            "century": "C017",
            "char_start": 0,
            "char_end": 10,
            "text": f"Passage {i}: the steward forgave his neighbour the debt of the harvest.",
        }
        for i in range(n)
    ]
    return frame_of(rows, PASSAGES)


def test_situations_cap_quarantine_and_accounting():
    answers = {"p1": "gibberish"}  # p1 never parses: quarantined after the repair turn

    def respond(request):
        passage = request.messages[-1]["content"] if request.task == "situations" else ""
        for pid, answer in answers.items():
            if f"Passage {pid[1:]}:" in passage or (
                request.prompt_version.endswith("repair/v1") and "Passage 1:" in request.messages[-3]["content"]
            ):
                return answer
        return default_answer(request)

    teacher = Teacher(ScriptedBackend(responder=respond), None, max_retries=1)
    result = extract_situations(passages(5), teacher, GenerationConfig(situations_per_passage=2, max_situations=5))
    stats = result.stats
    assert stats.n_in == 5 and stats.n_out + stats.n_rejected == 5
    assert dict(stats.rejected) == {"malformed_output": 1, "situation_cap": 1}
    assert result.frame.height == 5  # 2 + 2 + 1 (the cap cut the third passage's second situation)
    quarantined = result.rejects.filter(pl.col("reason") == "malformed_output").row(0, named=True)
    assert quarantined["stage"] == "teacher" and quarantined["row_ref"] == "p1"
    assert '"raw": "gibberish"' in quarantined["detail"]
    assert result.frame["teacher_call_id"].null_count() == 0
    assert result.teacher.counters.quarantined == 1 and result.teacher.counters.parse_failures == 2
    assert "Passage 0" in result.sample_markdown


def test_vrd_candidates_fill_missing_valences_and_trace_their_calls():
    situations = situations_frame([f"Forgiving debt number {i}" for i in range(6)])
    backend = ScriptedBackend()
    teacher = Teacher(backend, None, batch_size=4)
    result = generate_vrd(situations, teacher, GenerationConfig())
    frame = result.frame
    assert result.stats.n_in == 6 and result.stats.n_out == 6 and result.rejects.is_empty()
    assert frame.height == 18 and set(frame["kind"]) == {"value", "right", "duty"}
    assert frame["valence"].is_in(["supports", "opposes", "either"]).all()
    assert frame["relevance"].null_count() == frame.height  # vrd_relevant scores it
    asked = [r for r in backend.requests if r.task == "valence"]
    missing = sum(1 for r in backend.requests if r.task == "vrd" and '"valence": null' in default_answer(r))
    assert len(asked) == missing > 0
    assert frame["candidate_id"].n_unique() == 18
    assert "Forgiving debt number 0" in result.sample_markdown


def test_a_situation_whose_items_all_lack_a_valence_is_rejected():
    situations = situations_frame(["Forgiving a debt"])

    def respond(request):  # every kind answers without a valence; the valence question gets no usable answer
        if request.task == "vrd":
            kind = "duty" if '"kind": "duty"' in request.assistant_prefix else "value"
            return json.dumps({"items": [{"kind": kind, "text": f"Some {kind}", "explanation": "x"}]})
        return "I cannot say."

    teacher = Teacher(ScriptedBackend(responder=respond, logprobs=False), None)
    result = generate_vrd(situations, teacher, GenerationConfig())
    assert result.frame.is_empty() and dict(result.stats.rejected) == {"no_valence": 1}


def test_vrd_asks_each_kind_once_and_drops_items_of_another_kind():
    situations = situations_frame(["Forgiving a debt", "Breaking an oath"])

    def respond(request):
        kind = next(k for k in ("value", "right", "duty") if f'"kind": "{k}"' in request.assistant_prefix)
        if kind == "right":  # a drifting answer: a value labelled as such, where rights were asked for
            return json.dumps({"items": [{"kind": "value", "text": "Mercy", "valence": "supports"}]})
        if kind == "duty" and any("oath" in message["content"] for message in request.messages):
            return "not json at all"  # quarantined: the other kinds still keep the situation
        return json.dumps({"items": [{"text": f"A {kind}", "valence": "either", "explanation": "e"}]})

    backend = ScriptedBackend(responder=respond)
    result = generate_vrd(situations, Teacher(backend, None), GenerationConfig())
    vrd_requests = [r for r in backend.requests if r.task == "vrd" and "repair" not in r.prompt_version]
    assert len(vrd_requests) == 6 and all("Which" in r.messages[-1]["content"] for r in vrd_requests)
    assert {r.json_schema["properties"]["items"]["items"]["properties"]["kind"]["enum"][0] for r in vrd_requests} == {
        "value",
        "right",
        "duty",
    }
    frame = result.frame.sort("situation_id", "kind")
    assert frame["kind"].to_list().count("right") == 0  # the mislabelled answer dropped, not relabelled
    assert frame.group_by("situation_id").len()["len"].sort().to_list() == [1, 2]  # oath: value only
    assert result.stats.n_out == 2 and result.rejects.is_empty()
    # both rights calls left no item (quarantined after repair), and the oath's duty call never parsed
    assert result.stats.metrics["kind_calls_quarantined"].total == 3
