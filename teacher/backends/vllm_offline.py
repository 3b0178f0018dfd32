"""The offline vLLM engine (`vllm.LLM`) on a GPU: continuous batching, logprobs, JSON-schema constrained decoding.

Install with `pip install chronoprism[gpu]`. vLLM is imported when the backend is built, never at module import,
so everything else runs without it. Prompts are rendered with the model's chat template here (as in the
transformers backend), so the assistant prefix is prefilled; when the request carries a JSON schema and
constrained decoding is on, the schema replaces the prefix (the grammar must see the whole answer).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from teacher.backends.base import INSTALL_HINT_GPU, BackendUnavailable, TeacherRequest, TeacherResponse

logger = logging.getLogger(__name__)


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise BackendUnavailable(f"the vllm backend needs vLLM and a CUDA GPU: {INSTALL_HINT_GPU}") from exc
    return vllm


def sampling_kwargs(request: TeacherRequest, constrained: bool) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams` (structured output added by `sampling_params`)."""
    kwargs: dict[str, Any] = {
        "max_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p if request.temperature > 0 else 1.0,
        "seed": request.seed,
    }
    if request.stop and not (constrained and request.json_schema):
        kwargs["stop"] = list(request.stop)
        kwargs["include_stop_str_in_output"] = True
    if request.top_logprobs:
        kwargs["logprobs"] = request.top_logprobs
    return kwargs


def uses_prefix(request: TeacherRequest, constrained: bool) -> bool:
    return bool(request.assistant_prefix) and not (constrained and request.json_schema)


class VllmBackend:
    """`vllm.LLM` over a local model dir or hub id already in the local cache (nothing downloads at run time)."""

    name = "vllm"
    supports_logprobs = True
    supports_prefix = True

    def __init__(self, model: str, model_path: str, *, constrained_decoding: bool = True, **engine_kwargs: Any):
        vllm = import_vllm()
        self.model = model
        self.constrained = constrained_decoding
        self._vllm = vllm
        self._llm = vllm.LLM(model=model_path, **engine_kwargs)
        self._tokenizer = self._llm.get_tokenizer()

    def render(self, request: TeacherRequest) -> str:
        prompt = self._tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        return prompt + (request.assistant_prefix if uses_prefix(request, self.constrained) else "")

    def sampling_params(self, request: TeacherRequest) -> Any:
        kwargs = sampling_kwargs(request, self.constrained)
        if self.constrained and request.json_schema:
            kwargs.update(_structured_output(self._vllm, request.json_schema))
        return self._vllm.SamplingParams(**kwargs)

    def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        prompts = [self.render(r) for r in requests]
        params = [self.sampling_params(r) for r in requests]
        started = time.perf_counter()
        outputs = self._llm.generate(prompts, params, use_tqdm=False)
        latency = (time.perf_counter() - started) / max(1, len(requests))
        responses = []
        for request, output in zip(requests, outputs, strict=True):
            completion = output.outputs[0]
            prefix = request.assistant_prefix if uses_prefix(request, self.constrained) else ""
            logprobs = None
            if request.top_logprobs and completion.logprobs:
                logprobs = {lp.decoded_token: lp.logprob for lp in completion.logprobs[0].values()}
            responses.append(
                TeacherResponse(
                    text=prefix + completion.text,
                    completion_tokens=len(completion.token_ids),
                    prompt_tokens=len(output.prompt_token_ids or []),
                    finish_reason=completion.finish_reason or "",
                    first_token_logprobs=logprobs,
                    latency_s=latency,
                )
            )
        return responses

    def close(self) -> None:
        pass


def _structured_output(vllm: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """JSON-schema constrained decoding across vLLM versions (`structured_outputs`, or `guided_decoding` before)."""
    sampling = vllm.sampling_params
    if hasattr(sampling, "StructuredOutputsParams"):
        return {"structured_outputs": sampling.StructuredOutputsParams(json=schema)}
    if hasattr(sampling, "GuidedDecodingParams"):
        return {"guided_decoding": sampling.GuidedDecodingParams(json=schema)}
    logger.warning("this vLLM has no structured output API; decoding unconstrained")
    return {}
