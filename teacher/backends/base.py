"""The teacher backend contract: a batch of chat requests in, one response per request out.

A backend never raises for one bad request: a per-request failure comes back as a response with `error` set (the
HTTP backend does this after its own bounded retries). It may raise `BackendError` (or anything else) for a whole
batch, e.g. a local model running out of memory; the `Teacher` turns that into per-request errors and retries.

`TeacherRequest.payload()` is the canonical, JSON-able form of a request: the cache hashes it (with the backend
name and model) into the call id, so every field that changes the output must be in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

INSTALL_HINT_GPU = "pip install chronoprism[gpu]"


class BackendError(RuntimeError):
    """A whole batch failed inside a backend."""


class BackendUnavailable(RuntimeError):
    """A backend's optional dependency or model is missing; the message says how to install it."""


@dataclass(slots=True)
class TeacherRequest:
    """One chat completion to run.

    `assistant_prefix` is text the answer must start with: backends that build the prompt text themselves
    (transformers, vllm) prefill it, which steers a weak model into the JSON shape; the others ignore it and the
    parser copes. Responses always contain the full answer, prefix included when it was prefilled.
    `top_logprobs` > 0 asks for the top-k log-probabilities of the first generated token (relevance scoring).
    """

    messages: list[dict[str, str]]
    max_new_tokens: int = 192
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    assistant_prefix: str = ""
    stop: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None
    top_logprobs: int = 0
    task: str = ""  # situations / vrd / relevance / valence / repair: for logs and stats
    prompt_version: str = ""

    def payload(self) -> dict[str, Any]:
        """The fields as a dict, not deep-copied (`asdict` deep-copies every message: the hot path at scale)."""
        return {name: getattr(self, name) for name in _REQUEST_FIELDS}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> TeacherRequest:
        return cls(**payload)


@dataclass(slots=True)
class TeacherResponse:
    """What came back for one request; `error` set means the call failed and `text` is meaningless."""

    text: str = ""
    completion_tokens: int = 0
    prompt_tokens: int = 0
    finish_reason: str = ""
    # first generated token: token text -> logprob, top-k; None when not asked for or not available
    first_token_logprobs: dict[str, float] | None = None
    error: str | None = None
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def payload(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RESPONSE_FIELDS}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> TeacherResponse:
        return cls(**payload)

    @classmethod
    def failed(cls, error: str, latency_s: float = 0.0) -> TeacherResponse:
        return cls(error=error, finish_reason="error", latency_s=latency_s)


_REQUEST_FIELDS = tuple(f.name for f in fields(TeacherRequest))
_RESPONSE_FIELDS = tuple(f.name for f in fields(TeacherResponse))


@runtime_checkable
class TeacherBackend(Protocol):
    """Anything that turns a batch of requests into responses, in order.

    `name` and `model` go into every cache key. `supports_logprobs` says whether `first_token_logprobs` is filled
    when asked; `supports_prefix` whether `assistant_prefix` is prefilled.
    """

    name: str
    model: str
    supports_logprobs: bool
    supports_prefix: bool

    def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]: ...

    def close(self) -> None: ...
