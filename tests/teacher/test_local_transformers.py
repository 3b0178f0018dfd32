"""The default teacher on the packaged SmolLM2-135M (loaded once for the module)."""

import pytest
import torch

import teacher.backends.local_transformers as lt
from teacher.client import Teacher
from teacher.parse import parse_situations
from teacher.prompts import SITUATIONS_PREFIX, situation_request, vrd_request
from teacher.scoring import LOGPROBS, score_relevance
from tests.helpers import ADDRESS, SERMON

pytestmark = pytest.mark.slow

PASSAGES = [SERMON, ADDRESS, SERMON[:180], "Thou shalt not kill. Honour thy father and thy mother."]


@pytest.fixture(scope="module")
def backend(models_dir):
    return lt.TransformersBackend("smollm2-135m-instruct", models_dir, threads=1)


def test_batched_generation_prefills_the_prefix_and_is_reproducible(backend):
    requests = [situation_request(p, "C017", max_new_tokens=32) for p in PASSAGES]
    first = backend.generate(requests)
    assert len(first) == 4 and all(r.ok for r in first)
    assert all(r.text.startswith(SITUATIONS_PREFIX) and r.completion_tokens > 0 for r in first)
    assert {r.finish_reason for r in first} <= {"stop", "length"}
    again = backend.generate(requests[::-1])  # other order, other padding: same greedy answers
    assert [r.text for r in again] == [r.text for r in first][::-1]
    parsed = [parse_situations(r.text) for r in first]
    assert sum(p.ok for p in parsed) >= 2, [r.text for r in first]


def test_the_shared_prefix_cache_changes_no_answer(backend, monkeypatch):
    requests = [vrd_request(s, max_new_tokens=16) for s in ("Forgiving a debt", "Breaking an oath to a king")]
    cached = backend.generate(requests)
    assert backend._prefixes  # the few-shot prefix was computed once and kept
    monkeypatch.setattr(lt, "MIN_SHARED_PREFIX", 10**6)  # plain left-padded batch
    plain = backend.generate(requests)
    assert [r.text for r in plain] == [r.text for r in cached]


def test_the_decode_friendly_weight_layout_changes_no_answer(backend):
    requests = [vrd_request(s, max_new_tokens=16) for s in ("Forgiving a debt", "Breaking an oath to a king")]
    laid_out = backend.generate(requests)
    linears = [m for m in backend._lm.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.t().is_contiguous() for m in linears)  # (in, out) storage, read as (out, in)
    for module in linears:
        module.weight.data = module.weight.data.contiguous()  # the plain layout transformers loads
    try:
        backend._prefixes.clear()
        plain = backend.generate(requests)
    finally:
        lt.decode_friendly_layout(backend._lm)
    assert [r.text for r in plain] == [r.text for r in laid_out]


def test_relevance_is_scored_from_first_token_logprobs(backend):
    teacher = Teacher(backend, None)
    scores = score_relevance(teacher, [("Forgiving a debt owed by a poor neighbour", "value", "Mercy")])
    [(p_yes, score)] = scores
    assert score.method == LOGPROBS and 0.0 <= p_yes <= 1.0
    assert sum(score.probabilities.values()) == pytest.approx(1.0)
