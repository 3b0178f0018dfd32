"""Any OpenAI-compatible chat server: `vllm serve` in production, `transformers serve` in tests, hosted APIs.

One POST `/chat/completions` per request over one aiohttp session on a background event loop, with a sliding
window of at most `max_in_flight` requests (a new one starts the moment one finishes; see limits.py). The Teacher
streams through `stream()`: it submits requests and takes answers as they arrive, so one slow answer never holds
back the others; `generate(batch)` is the same machinery, returning the batch in order.

Failures: connection errors, timeouts and 5xx (and 408/409/425) are retried up to `http_retries` times with
full-jitter exponential backoff; a 429 waits what `retry-after-ms` / `Retry-After` says (else backoff) outside
the window, and so does every request about to be sent (the server said when it takes requests again); it
shrinks the window (AIMD) and queues for a slot again, without using up `http_retries` (a rate limit is not a
fault; at most `RATE_LIMIT_RETRIES`). Other 4xx fail at once. Optional `requests_per_minute` /
`tokens_per_minute` budgets pace requests before they are sent. A request that still fails comes back as an error
response; nothing raises. Retries are counted by cause (`take_counters()`); the Teacher adds them to the build's.

The API key is read from the environment variable *named* in settings and only ever put in the Authorization
header, never logged or stored in the cache.

Logprobs: vLLM's server returns `top_logprobs` when asked; `transformers serve` ignores the field. With
`logprobs=None` the backend asks and `supports_logprobs` turns False at the first answer without them, and
relevance scoring falls back to the answer's words (teacher/scoring.py). Constrained decoding: the request's JSON
schema goes out as `response_format` (vLLM enforces it; servers that ignore it are fine, servers that reject it
get the request again without it, once, and never again).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import queue
import random
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from teacher.backends.base import TeacherRequest, TeacherResponse
from teacher.backends.limits import AdaptiveWindow, MinuteBudget, backoff_s, retry_after_s

logger = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 500, 502, 503, 504}
RATE_LIMITED = 429
RATE_LIMIT_RETRIES = 100
CHARS_PER_TOKEN = 4  # for the tokens-per-minute estimate before `usage` tells the truth
# counter names (BuildCounters fields) of what the backend did beyond one call per request
RETRIES_RATE_LIMITED = "retries_rate_limited"
RETRIES_SERVER_ERROR = "retries_server_error"
RETRIES_CONNECTION = "retries_connection"
HTTP_REQUESTS = "http_requests"


class RequestStream:
    """Requests submitted to the backend's window; `wait()` hands back answers in the order they finish.

    Submitting many requests is one hand-over to the event loop (one wake-up of its thread, not one per request),
    and each answer goes straight from its task's done callback into a C-level queue: no concurrent.futures
    Future and no Python Condition per request, which at hundreds of answers a second was a large share of the
    client's CPU (both threads share one GIL). A request gets its task only when the window nearly has room for
    it (at most twice the window's tasks at once): made up front, ten thousand tasks would each take a first step
    in the loop's first turn, before any request is sent, and stay alive until answered."""

    def __init__(self, backend: OpenAIBackend):
        self._backend = backend
        self._done: queue.SimpleQueue[tuple[Hashable, TeacherResponse]] = queue.SimpleQueue()
        self._backlog: deque[tuple[Hashable, TeacherRequest]] = deque()  # submitted, no task yet (loop side)
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks
        self.pending = 0

    def submit(self, key: Hashable, request: TeacherRequest) -> None:
        self.submit_many([(key, request)])

    def submit_many(self, items: Iterable[tuple[Hashable, TeacherRequest]]) -> None:
        """Put requests into the window; each answer is keyed by its `key`."""
        items = list(items)
        if items:
            self.pending += len(items)
            self._backend.loop().call_soon_threadsafe(self._submitted, items)

    def _submitted(self, items: list[tuple[Hashable, TeacherRequest]]) -> None:
        self._backlog.extend(items)
        self._feed()

    def _feed(self) -> None:
        """On the event loop: tasks for backlogged requests, up to twice the window (the window itself decides
        what is sent; the other half waits in its queue, so a freed slot is taken at once)."""
        loop = asyncio.get_running_loop()
        room = 2 * self._backend.window.max_limit - len(self._tasks)
        while self._backlog and room > 0:
            key, request = self._backlog.popleft()
            task = loop.create_task(self._backend.call(request))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, key))
            room -= 1

    def _finished(self, key: Hashable, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._done.put((key, _result_of(task)))
        if self._backlog:
            self._feed()

    def wait(self, timeout: float | None = None) -> list[tuple[Hashable, TeacherResponse]]:
        """Block until at least one answer is in (or `timeout`), then return every answer that is in."""
        if not self.pending:
            return []
        try:
            arrived = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                arrived.append(self._done.get_nowait())
            except queue.Empty:
                break
        self.pending -= len(arrived)
        return arrived


def _result_of(task: asyncio.Task) -> TeacherResponse:
    try:
        return task.result()
    except (Exception, asyncio.CancelledError) as exc:  # a bug, or shutdown: still an answer, never a lost request
        logger.exception("openai backend: request failed unexpectedly")
        return TeacherResponse.failed(f"{type(exc).__name__}: {exc}")


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
        max_in_flight: int = 64,
        concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        adaptive_window: bool = True,
        logprobs: bool | None = None,
        constrained_decoding: bool = True,
        seed: int = 0,
    ):
        if not base_url:
            raise ValueError("the openai backend needs teacher.base_url, e.g. http://127.0.0.1:8000/v1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.http_retries = http_retries
        self.backoff_s = backoff_s
        self.window = AdaptiveWindow(concurrency or max_in_flight, adaptive=adaptive_window)
        self._rpm = MinuteBudget(requests_per_minute) if requests_per_minute else None
        self._tpm = MinuteBudget(tokens_per_minute) if tokens_per_minute else None
        self.ask_logprobs = logprobs is not False
        self.supports_logprobs = logprobs is not False
        self._logprobs_auto = logprobs is None
        self.constrained_decoding = constrained_decoding
        self._api_key = os.environ.get(api_key_env, "")
        self._rng = random.Random(seed)
        self._counters: Counter = Counter()
        self._counters_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: Any = None
        self._url: Any = None  # yarl.URL of /chat/completions, made with the session
        self._paused_until = 0.0  # monotonic time before which no request is sent (a 429's Retry-After)
        self._finalizer: weakref.finalize | None = None
        self._start_lock = threading.Lock()

    # ------------------------------------------------------------------ public

    @property
    def window_size(self) -> int:
        """Requests allowed in flight right now (shrinks on 429s, grows back)."""
        return self.window.size

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

    def stream(self) -> RequestStream:
        return RequestStream(self)

    def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        stream = self.stream()
        stream.submit_many(enumerate(requests))
        out: dict[Hashable, TeacherResponse] = {}
        while stream.pending:
            out.update(stream.wait())
        return [out[i] for i in range(len(requests))]

    def take_counters(self) -> dict[str, int]:
        """Counts since the last call: HTTP requests sent and retries by cause."""
        with self._counters_lock:
            counters, self._counters = dict(self._counters), Counter()
        return counters

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # closes the session and stops the loop, once
        self._loop = self._thread = self._session = self._finalizer = None

    # ------------------------------------------------------------------ the event loop

    def loop(self) -> asyncio.AbstractEventLoop:
        """The background loop all requests run on (started on first use)."""
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="openai-backend", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self._session = asyncio.run_coroutine_threadsafe(self._open_session(), loop).result()
                # also at interpreter exit or garbage collection, when nobody called close()
                self._finalizer = weakref.finalize(self, _shut_down, loop, thread, self._session)
        return self._loop

    async def _open_session(self) -> Any:
        import aiohttp
        import yarl

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        connector = aiohttp.TCPConnector(limit=0)  # the window, not the connector, limits requests in flight
        self._url = yarl.URL(f"{self.base_url}/chat/completions")
        return aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )

    def _count(self, name: str, n: int = 1) -> None:
        with self._counters_lock:
            self._counters[name] += n

    async def call(self, request: TeacherRequest) -> TeacherResponse:
        """One request through the window, with its retries; always an answer, maybe an error one."""
        await self.window.acquire()
        try:
            return await self._attempts(request)
        finally:
            self.window.release()

    async def _attempts(self, request: TeacherRequest) -> TeacherResponse:
        import aiohttp

        started = time.perf_counter()
        error, failures, rate_limited, attempts = "no attempt made", 0, 0, 0
        while True:
            body = self.body(request)
            estimate = 0
            if self._rpm is not None:
                await self._rpm.take(1)
            if self._tpm is not None:
                estimate = len(json.dumps(body["messages"])) // CHARS_PER_TOKEN + request.max_new_tokens
                await self._tpm.take(estimate)
            pause = self._paused_until - time.monotonic()
            if pause > 0:  # the server said when it takes requests again: every request waits for that
                await asyncio.sleep(pause)
            attempts += 1
            self._count(HTTP_REQUESTS)
            status, text = 0, ""
            headers: Mapping[str, str] = {}
            try:
                async with self._session.post(self._url, json=body) as reply:  # a parsed URL: parsed once
                    status, text, headers = reply.status, await reply.text(), reply.headers
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                error = f"ConnectionError: {type(exc).__name__}: {exc}"
            except TimeoutError:
                error = f"Timeout: no answer in {self.timeout_s}s"
            if status == 400 and "response_format" in body and self.constrained_decoding:
                logger.warning("openai backend: server rejected response_format; sending without it from now on")
                self.constrained_decoding = False
                continue
            if status == RATE_LIMITED:
                rate_limited += 1
                self._count(RETRIES_RATE_LIMITED)
                self.window.on_rate_limited()
                if self._tpm is not None:
                    self._tpm.give_back(estimate)
                if rate_limited > RATE_LIMIT_RETRIES:
                    error = f"HTTP 429 {rate_limited} times: {text[:200]}"
                    break
                wait = retry_after_s(headers)
                if wait is None:
                    wait = backoff_s(rate_limited - 1, self.backoff_s, self._rng)
                else:
                    wait += self._rng.uniform(0, 0.1 * wait + 0.01)  # requests told the same time spread out
                    self._paused_until = max(self._paused_until, time.monotonic() + wait)
                logger.debug("openai backend: 429, retrying in %.2fs (window %d)", wait, self.window.size)
                # wait outside the window, then queue for a slot again: the shrunk window limits retries too
                self.window.release()
                try:
                    await asyncio.sleep(wait)
                finally:
                    await self.window.acquire()
                continue
            if status == 200:
                try:
                    response = self._response(json.loads(text), request, time.perf_counter() - started)
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    return TeacherResponse.failed(f"unreadable reply ({exc!r}): {text[:300]}", self._since(started))
                self.window.on_success()
                if self._tpm is not None:
                    self._tpm.give_back(max(0, estimate - response.prompt_tokens - response.completion_tokens))
                return response
            if status and status not in RETRY_STATUS:
                return TeacherResponse.failed(f"HTTP {status}: {text[:500]}", self._since(started))
            if status:
                error = f"HTTP {status}: {text[:200]}"
            failures += 1
            if failures > self.http_retries:
                break
            self._count(RETRIES_SERVER_ERROR if status else RETRIES_CONNECTION)
            logger.debug("openai backend: %s (attempt %d), retrying", error, attempts)
            await asyncio.sleep(backoff_s(failures - 1, self.backoff_s, self._rng))
        logger.warning("openai backend: gave up after %d attempts: %s", attempts, error)  # retries: counters
        return TeacherResponse.failed(f"gave up after {attempts} attempts: {error}", self._since(started))

    @staticmethod
    def _since(started: float) -> float:
        return time.perf_counter() - started

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


def _shut_down(loop: asyncio.AbstractEventLoop, thread: threading.Thread, session: Any) -> None:
    """Close the HTTP session on its loop, then stop the loop and its thread."""
    if loop.is_running():
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
    if not loop.is_running():
        loop.close()


def first_token_logprobs(logprobs: dict[str, Any] | None) -> dict[str, float] | None:
    """{token: logprob} of the first generated position from an OpenAI `logprobs` object (chat format)."""
    if not logprobs or not logprobs.get("content"):
        return None
    first = logprobs["content"][0]
    top = {entry["token"]: float(entry["logprob"]) for entry in first.get("top_logprobs") or []}
    top.setdefault(first["token"], float(first["logprob"]))
    return top
