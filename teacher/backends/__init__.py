"""Teacher backends behind one protocol (base.py), and the one place that builds them from settings."""

from __future__ import annotations

from pathlib import Path

from sources.settings import TeacherSettings
from teacher.backends.base import (
    BackendError,
    BackendUnavailable,
    TeacherBackend,
    TeacherRequest,
    TeacherResponse,
)

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "TeacherBackend",
    "TeacherRequest",
    "TeacherResponse",
    "build_backend",
    "models_dir_of",
    "truncation_retry_of",
    "vllm_engine_kwargs",
]


def models_dir_of(settings: TeacherSettings, home: Path) -> Path:
    return Path(settings.models_dir).expanduser() if settings.models_dir else Path(home) / "models"


def vllm_engine_kwargs(settings: TeacherSettings) -> dict:
    """`vllm.LLM` engine arguments from the `teacher.vllm_*` settings; max_model_len and data_parallel_size only
    when set (older vLLMs have no offline data parallelism and refuse the argument)."""
    kwargs: dict = {
        "tensor_parallel_size": settings.vllm_tensor_parallel_size,
        "gpu_memory_utilization": settings.vllm_gpu_memory_utilization,
        "dtype": settings.vllm_dtype,
    }
    if settings.vllm_data_parallel_size > 1:
        kwargs["data_parallel_size"] = settings.vllm_data_parallel_size
    if settings.vllm_max_model_len:
        kwargs["max_model_len"] = settings.vllm_max_model_len
    return kwargs


def truncation_retry_of(settings: TeacherSettings) -> bool:
    """`teacher.truncation_retry`, where None means on for server and vLLM teachers and off for the CPU demo
    model, whose short budgets are deliberate (a doubled budget would double the demo's time)."""
    if settings.truncation_retry is not None:
        return settings.truncation_retry
    return settings.backend in ("openai", "vllm")


def build_backend(settings: TeacherSettings, home: Path) -> TeacherBackend:
    """The backend `settings.backend` names, wrapped in fault injection when `fault_share` > 0."""
    backend: TeacherBackend
    if settings.backend == "transformers":
        from teacher.backends.local_transformers import TransformersBackend

        backend = TransformersBackend(settings.model, models_dir_of(settings, home), threads=settings.torch_threads)
    elif settings.backend == "openai":
        from teacher.backends.openai_http import OpenAIBackend

        backend = OpenAIBackend(
            settings.base_url or "",
            settings.model,
            api_key_env=settings.api_key_env,
            timeout_s=settings.timeout_s,
            http_retries=settings.http_retries,
            backoff_s=settings.retry_backoff_s,
            max_in_flight=settings.max_in_flight,
            requests_per_minute=settings.requests_per_minute,
            tokens_per_minute=settings.tokens_per_minute,
            adaptive_window=settings.adaptive_window,
            logprobs=settings.logprobs,
            constrained_decoding=settings.constrained_decoding,
        )
    elif settings.backend == "vllm":
        from teacher.backends.vllm_offline import VllmBackend
        from teacher.models import SMOLLM2, resolve_model_dir

        path = settings.model
        if settings.model == SMOLLM2 or Path(settings.model).expanduser().is_dir():
            path = str(resolve_model_dir(settings.model, models_dir_of(settings, home)))
        backend = VllmBackend(
            settings.model, path, constrained_decoding=settings.constrained_decoding, **vllm_engine_kwargs(settings)
        )
    elif settings.backend == "scripted":
        from teacher.backends.scripted import ScriptedBackend

        backend = ScriptedBackend()
    else:  # pragma: no cover - the settings Literal forbids it
        raise ValueError(f"unknown teacher backend {settings.backend!r}")
    if settings.fault_share > 0:
        from teacher.backends.faults import FaultInjectingBackend

        backend = FaultInjectingBackend(backend, share=settings.fault_share, seed=settings.fault_seed)
    return backend
