import importlib.util

import pytest

from teacher.backends.base import BackendUnavailable
from teacher.backends.vllm_offline import import_vllm, sampling_kwargs, uses_prefix
from teacher.prompts import relevance_request, vrd_request


def test_sampling_kwargs_from_a_request():
    request = vrd_request("Forgiving a debt", max_new_tokens=96)
    unconstrained = sampling_kwargs(request, constrained=False)
    assert unconstrained == {
        "max_tokens": 96,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 0,
        "stop": ["}]"],
        "include_stop_str_in_output": True,
    }
    assert uses_prefix(request, constrained=False)
    # with a schema the grammar shapes the answer: no prefix, no stop string cutting the JSON short
    assert "stop" not in sampling_kwargs(request, constrained=True) and not uses_prefix(request, constrained=True)
    assert sampling_kwargs(relevance_request("Forgiving a debt", "value", "Mercy"), True)["logprobs"] == 20


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_vllm_names_the_extra():
    with pytest.raises(BackendUnavailable, match=r"pip install chronoprism\[gpu\]"):
        import_vllm()


@pytest.mark.requires_gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs the [gpu] extra")
def test_vllm_answers_a_situation_request(models_dir):  # pragma: no cover - GPU machines only
    from teacher.backends.vllm_offline import VllmBackend
    from teacher.models import smollm2_hf_dir
    from teacher.parse import parse_vrd

    backend = VllmBackend("smollm2-135m-instruct", str(smollm2_hf_dir(models_dir)), gpu_memory_utilization=0.3)
    [response] = backend.generate([vrd_request("Forgiving a debt owed by a poor neighbour", max_new_tokens=128)])
    assert response.ok and parse_vrd(response.text).ok
