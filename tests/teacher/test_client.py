import json

from teacher.backends.base import TeacherRequest, TeacherResponse
from teacher.backends.scripted import ScriptedBackend
from teacher.cache import TeacherCache
from teacher.client import BACKEND_ERROR, MALFORMED_OUTPUT, Job, Teacher
from teacher.parse import parse_situations
from teacher.prompts import REPAIR_VERSION, SITUATIONS_VERSION, situation_request, vrd_request

GOOD = json.dumps({"situations": ["Forgiving a debt owed by a poor neighbour"]})


def job(passage: str = "The debt was forgiven.") -> Job:
    return Job(situation_request(passage, "C017", max_new_tokens=32), parse=parse_situations, ref=passage)


def test_a_malformed_answer_gets_a_repair_turn(tmp_path):
    backend = ScriptedBackend(answers=["Sure, here are some situations!", GOOD])
    teacher = Teacher(backend, TeacherCache(tmp_path / "c.duckdb"), max_retries=2)
    [result] = teacher.run([job()])
    assert result.ok and result.value == ["Forgiving a debt owed by a poor neighbour"]
    assert result.attempts == 2
    repair = backend.requests[1]
    assert repair.prompt_version == f"{SITUATIONS_VERSION}+{REPAIR_VERSION}"
    assert repair.messages[-2] == {"role": "assistant", "content": "Sure, here are some situations!"}
    assert "malformed_json" in repair.messages[-1]["content"]
    assert (teacher.stats.counters.parse_failures, teacher.stats.repairs, teacher.stats.answers) == (1, 1, 2)
    assert teacher.stats.parse_rate == 0.5


def test_still_malformed_after_the_retries_is_quarantined_with_its_raw_text():
    teacher = Teacher(ScriptedBackend(answers=["nope", "still nope", "{}"]), None, max_retries=2)
    [result] = teacher.run([job()])
    assert result.quarantine == MALFORMED_OUTPUT and result.attempts == 3
    detail = json.loads(result.detail)
    assert detail["raw"] == "{}" and detail["parse"] == "schema_mismatch"
    assert teacher.stats.counters.quarantined == 1 and teacher.stats.counters.parse_failures == 3


class FlakyBackend(ScriptedBackend):
    """Raises for the first `raises` batches, then answers every request with an error once, then works."""

    def __init__(self, raises: int, errors: int):
        super().__init__(responder=lambda r: GOOD)
        self.raises, self.errors = raises, errors

    def generate(self, requests):
        if self.raises:
            self.raises -= 1
            raise RuntimeError("CUDA out of memory")
        if self.errors:
            self.errors -= 1
            return [TeacherResponse.failed("HTTP 503") for _ in requests]
        return super().generate(requests)


def test_backend_errors_are_retried_then_quarantined():
    teacher = Teacher(FlakyBackend(raises=1, errors=1), None, max_retries=2)
    results = teacher.run([job("a passage"), job("another passage")])
    assert all(r.ok and r.attempts == 3 for r in results)
    assert teacher.stats.counters.backend_errors == 4 and teacher.stats.counters.backend_calls == 6
    teacher = Teacher(FlakyBackend(raises=3, errors=0), None, max_retries=2)
    [result] = teacher.run([job()])
    assert result.quarantine == BACKEND_ERROR and "CUDA out of memory" in result.detail


def test_unchanged_rebuild_makes_no_backend_call_and_identical_requests_are_asked_once(tmp_path):
    cache_file = tmp_path / "c.duckdb"
    first = Teacher(ScriptedBackend(), TeacherCache(cache_file), batch_size=2, build_id="one")
    jobs = [job(f"passage {i} about a debt forgiven") for i in range(5)] + [job("passage 0 about a debt forgiven")]
    before = first.run(jobs)
    assert first.stats.counters.backend_calls == 5  # the repeated request went out once
    backend = ScriptedBackend()
    second = Teacher(backend, TeacherCache(cache_file), batch_size=2, build_id="two")
    after = second.run(jobs)
    assert backend.requests == [] and second.stats.counters.backend_calls == 0
    assert second.stats.counters.cache_hits == 6
    assert [r.value for r in after] == [r.value for r in before]
    assert [r.call_id for r in after] == [r.call_id for r in before]
    cache = TeacherCache(cache_file)
    assert cache.build_counters("one").backend_calls == 5 and cache.build_counters("two").cache_hits == 6


class BatchRecorder(ScriptedBackend):
    def __init__(self):
        super().__init__()
        self.batches: list[list[TeacherRequest]] = []

    def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        self.batches.append(requests)
        return super().generate(requests)


def test_a_batch_holds_one_prompt_kind_so_the_backend_can_share_its_prefix():
    # lengths interleave across kinds: batching by length alone would mix them
    situations = ["A debt", "Forgiving a long debt", "Breaking a solemn oath to a king at war"]
    jobs = [Job(vrd_request(s, kind=k, max_new_tokens=8)) for s in situations for k in ("value", "right", "duty")]
    backend = BatchRecorder()
    Teacher(backend, None, batch_size=3).run(jobs)
    assert [len(b) for b in backend.batches] == [3, 3, 3]
    for batch in backend.batches:
        assert len({r.messages[0]["content"] for r in batch}) == 1
        chars = [len(r.messages[-1]["content"]) for r in batch]
        assert chars == sorted(chars)


def test_jobs_without_a_parser_get_the_raw_response():
    request = TeacherRequest(
        messages=[{"role": "user", "content": "Is mercy relevant?"}], task="relevance", top_logprobs=5
    )
    teacher = Teacher(ScriptedBackend(answers=["Yes"]), None)
    [result] = teacher.run([Job(request)])
    assert result.ok and result.value.text == "Yes" and result.value.first_token_logprobs
