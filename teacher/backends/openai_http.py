"""Any OpenAI-compatible chat server: `vllm serve` in production, `transformers serve` in tests, hosted APIs.

One POST `/chat/completions` per request, at most `concurrency` in flight, each with a timeout and up to
`http_retries` retries with exponential backoff on connection errors, timeouts, 429 and 5xx (other 4xx fail at
once: retrying a bad request does not fix it). A request that still fails comes back as an error response; the
batch never raises. The API key is read from the environment variable *named* in settings and only ever put in
the Authorization header, never logged or stored in the cache.

Logprobs: vLLM's server returns `top_logprobs` when asked; `transformers serve` ignores the field. With
`logprobs=None` the backend asks and `supports_logprobs` turns False at the first answer without them, and
relevance scoring falls back to the answer's words (teacher/scoring.py). Constrained decoding: the request's JSON
schema goes out as `response_format` (vLLM enforces it; servers that ignore it are fine, servers that reject it
get the request again without it, once, and never again).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests as http

from teacher.backends.base import TeacherRequest, TeacherResponse

logger = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend:
    """Chat completions against `base_url` (e.g. http://127.0.0.1:8000/v1)."""

    name = "openai"
    supports_prefix = False

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        http_retries: int = 3,
        backoff_s: float = 0.5,
        concurrency: int = 4,
        logprobs: bool | None = None,
        constrained_decoding: bool = True,
    ):
        if not base_url:
            raise ValueError("the openai backend needs teacher.base_url, e.g. http://127.0.0.1:8000/v1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.http_retries = http_retries
        self.backoff_s = backoff_s
        self.concurrency = max(1, concurrency)
        self.ask_logprobs = logprobs is not False
        self.supports_logprobs = logprobs is not False
        self._logprobs_auto = logprobs is None
        self.constrained_decoding = constrained_decoding
        self._api_key = os.environ.get(api_key_env, "")
        self._local = threading.local()

    def _session(self) -> http.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = http.Session()
            if self._api_key:
                session.headers["Authorization"] = f"Bearer {self._api_key}"
            self._local.session = session
        return session

    def body(self, request: TeacherRequest) -> dict[str, Any]:
        """The JSON body for one request (public so tests can check what goes on the wire)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.top_logprobs and self.ask_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = min(request.top_logprobs, 20)
        if request.json_schema and self.constrained_decoding:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.task or "answer", "schema": request.json_schema},
            }
        return body

    def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        if len(requests) == 1:
            return [self._one(requests[0])]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, request: TeacherRequest) -> TeacherResponse:
        started = time.perf_counter()
        error = "no attempt made"
        for attempt in range(self.http_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            body = self.body(request)
            try:
                reply = self._session().post(f"{self.base_url}/chat/completions", json=body, timeout=self.timeout_s)
            except (http.ConnectionError, http.Timeout) as exc:
                error = f"{type(exc).__name__}: {exc}"
                logger.warning("openai backend: %s (attempt %d)", error, attempt + 1)
                continue
            if reply.status_code == 400 and "response_format" in body and self.constrained_decoding:
                logger.warning("openai backend: server rejected response_format; sending without it from now on")
                self.constrained_decoding = False
                return self._one(request)
            if reply.status_code in RETRY_STATUS:
                error = f"HTTP {reply.status_code}: {reply.text[:200]}"
                logger.warning("openai backend: %s (attempt %d)", error, attempt + 1)
                continue
            if reply.status_code != 200:
                return TeacherResponse.failed(
                    f"HTTP {reply.status_code}: {reply.text[:500]}", time.perf_counter() - started
                )
            try:
                return self._response(reply.json(), request, time.perf_counter() - started)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return TeacherResponse.failed(
                    f"unreadable reply ({exc!r}): {reply.text[:300]}", time.perf_counter() - started
                )
        return TeacherResponse.failed(
            f"gave up after {self.http_retries + 1} attempts: {error}", time.perf_counter() - started
        )

    def _response(self, payload: dict[str, Any], request: TeacherRequest, latency: float) -> TeacherResponse:
        choice = payload["choices"][0]
        usage = payload.get("usage") or {}
        logprobs = None
        if request.top_logprobs:
            logprobs = first_token_logprobs(choice.get("logprobs"))
            if logprobs is None and self._logprobs_auto and self.supports_logprobs:
                logger.info("openai backend: server returns no logprobs; scoring falls back to answer words")
                self.supports_logprobs = False
        return TeacherResponse(
            text=choice["message"].get("content") or "",
            completion_tokens=int(usage.get("completion_tokens") or 0),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            finish_reason=choice.get("finish_reason") or "",
            first_token_logprobs=logprobs,
            latency_s=latency,
        )

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()


def first_token_logprobs(logprobs: dict[str, Any] | None) -> dict[str, float] | None:
    """{token: logprob} of the first generated position from an OpenAI `logprobs` object (chat format)."""
    if not logprobs or not logprobs.get("content"):
        return None
    first = logprobs["content"][0]
    top = {entry["token"]: float(entry["logprob"]) for entry in first.get("top_logprobs") or []}
    top.setdefault(first["token"], float(first["logprob"]))
    return top
