"""A simulated OpenAI-compatible chat server that behaves like a loaded vLLM or a hosted API, for tests and benchmarks.

    python -m teacher.testing.sim_server --port 0 --latency 0.1 --per-token 0.002 --capacity 256 \
        --rpm 600 --p-truncate 0.1 --p-5xx 0.01

It prints `SIM_SERVER_URL http://127.0.0.1:PORT/v1` once it listens. What it simulates:

- **Latency**: every answer takes `latency + per_token * completion_tokens` seconds; at most `capacity` requests
  are served at once, the rest queue (as vLLM's scheduler does), so a client sending more only waits longer.
- **Rate limit**: with `--rpm`, a token bucket (rate rpm/60 per second, burst of one second's worth) answers
  requests over budget with 429 at once, with `Retry-After` (whole seconds, rounded up) and `retry-after-ms`
  (what OpenAI sends) saying when the next request would pass.
- **Server errors**: a seeded share `--p-5xx` of requests gets a 500 or 503 at once.
- **Truncation**: a share `--p-truncate` of prompts (chosen by a hash of the messages, so the same prompt is always
  long) needs `--long-tokens` tokens instead of `--answer-tokens`; when `max_tokens` is smaller the answer is cut
  there, mid-JSON, with `finish_reason: "length"`, exactly as a real server does. Asked again with a larger
  `max_tokens` it comes back whole.
- **Answers** are JSON: the shape of the request's `response_format` schema when it has `situations` or `items`
  (so the real prompts parse), else `{"answer": <request key>, "text": ...}`. `usage` counts prompt and completion
  tokens (4 characters a token). With `logprobs` asked, the answer is "Yes" with top log-probabilities.

`GET /stats` returns counters (requests, ok, rate_limited, server_errors, truncated, max_in_flight) and
`answered`: {request key: times answered with 200}, where the key is `request_key(messages, max_tokens)`: a
benchmark uses it to prove that no request committed to the cache was asked again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4
URL_PREFIX = "SIM_SERVER_URL "


@dataclass(slots=True)
class SimConfig:
    latency: float = 0.1  # seconds per request, before the first token
    per_token: float = 0.002  # seconds per completion token
    capacity: int = 256  # requests served at once; more queue
    rpm: float | None = None  # requests per minute; over it: 429 + Retry-After
    p_truncate: float = 0.0  # share of prompts whose answer needs `long_tokens`
    p_5xx: float = 0.0  # share of requests answered 500/503
    answer_tokens: int = 40
    long_tokens: int = 100
    seed: int = 0


def request_key(messages: list[dict[str, Any]], max_tokens: int) -> str:
    """What identifies a request to the simulated server (and to whoever checks its `answered` counts)."""
    text = json.dumps(messages, sort_keys=True, ensure_ascii=False) + f"|{max_tokens}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from `parts`."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def answer_text(body: dict[str, Any], needed_tokens: int, key: str) -> str:
    """A whole answer of about `needed_tokens` tokens in the shape the request asks for."""
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
    props = schema.get("properties") or {}
    budget = needed_tokens * CHARS_PER_TOKEN
    if "situations" in props:
        situation = "Forgiving a debt owed by a poor neighbour"
        n = max(1, min(3, budget // (len(situation) + 4)))
        return json.dumps({"situations": [f"{situation} ({key[:6]} {i + 1})" for i in range(n)]})
    if "items" in props:
        item_props = props["items"].get("items", {}).get("properties", {})
        kind = (item_props.get("kind", {}).get("enum") or ["value"])[0]
        item = {"kind": kind, "text": f"Mercy {key[:6]}", "valence": "supports", "explanation": ""}
        item["explanation"] = "Forgiving the debt shows mercy. " * max(1, (budget - 80) // 32)
        return json.dumps({"items": [item]})
    head = json.dumps({"answer": key, "text": ""})
    filler = " ".join(["lorem"] * max(1, (budget - len(head)) // 6))
    return json.dumps({"answer": key, "text": filler})


class SimServer:
    """The aiohttp application and its counters."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.rng = random.Random(config.seed)
        self.counts: Counter = Counter()
        self.answered: Counter = Counter()
        self.in_flight = 0
        self._slots: asyncio.Semaphore | None = None
        rate = (config.rpm or 0) / 60.0
        self._rate = rate
        self._burst = max(1.0, rate)
        self._bucket = self._burst
        self._bucket_at = time.monotonic()

    def _take_rate_token(self) -> float:
        """0 when the request may pass (a token taken), else seconds until the next token."""
        if not self._rate:
            return 0.0
        now = time.monotonic()
        self._bucket = min(self._burst, self._bucket + (now - self._bucket_at) * self._rate)
        self._bucket_at = now
        if self._bucket >= 1.0:
            self._bucket -= 1.0
            return 0.0
        return (1.0 - self._bucket) / self._rate

    async def chat(self, request: Any) -> Any:
        from aiohttp import web

        self.counts["requests"] += 1
        try:
            body = await request.json()
            messages = body["messages"]
        except (ValueError, KeyError, TypeError):
            self.counts["bad_requests"] += 1
            return web.json_response({"error": {"message": "body needs messages"}}, status=400)
        wait = self._take_rate_token()
        if wait > 0:
            self.counts["rate_limited"] += 1
            headers = {"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(math.ceil(wait * 1000))}
            return web.json_response(
                {"error": {"message": "rate limit reached", "type": "rate_limit_exceeded"}},
                status=429,
                headers=headers,
            )
        if self.config.p_5xx and self.rng.random() < self.config.p_5xx:
            self.counts["server_errors"] += 1
            status = self.rng.choice([500, 503])
            return web.json_response({"error": {"message": "simulated server error"}}, status=status)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        key = request_key(messages, max_tokens)
        prompt_text = json.dumps(messages, ensure_ascii=False)
        long = self.config.p_truncate and _unit("long", prompt_text) < self.config.p_truncate
        needed = self.config.long_tokens if long else self.config.answer_tokens
        if body.get("logprobs"):
            text, finish = "Yes", "stop"
        else:
            text, finish = answer_text(body, needed, key), "stop"
            if _tokens(text) > max_tokens:
                text, finish = text[: max_tokens * CHARS_PER_TOKEN], "length"
                self.counts["truncated"] += 1
        completion = _tokens(text)
        assert self._slots is not None
        async with self._slots:  # beyond capacity requests queue here, like a busy vLLM scheduler
            self.in_flight += 1
            self.counts["max_in_flight"] = max(self.counts["max_in_flight"], self.in_flight)
            try:
                await asyncio.sleep(self.config.latency + self.config.per_token * completion)
            finally:
                self.in_flight -= 1
        self.counts["ok"] += 1
        self.answered[key] += 1
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }
        if body.get("logprobs"):
            top = [{"token": "Yes", "logprob": -0.1}, {"token": "No", "logprob": -2.4}]
            choice["logprobs"] = {"content": [{"token": "Yes", "logprob": -0.1, "top_logprobs": top}]}
        payload = {
            "id": f"chatcmpl-{key}",
            "object": "chat.completion",
            "model": body.get("model", "sim"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": _tokens(prompt_text),
                "completion_tokens": completion,
                "total_tokens": _tokens(prompt_text) + completion,
            },
        }
        return web.json_response(payload)

    async def stats(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({**self.counts, "answered": dict(self.answered)})

    async def models(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"object": "list", "data": [{"id": "sim", "object": "model"}]})

    def app(self) -> Any:
        from aiohttp import web

        async def on_startup(app: Any) -> None:
            self._slots = asyncio.Semaphore(self.config.capacity)

        app = web.Application(client_max_size=64 * 1024**2)
        app.on_startup.append(on_startup)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/health", self.models)
        return app


async def serve(config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
    from aiohttp import web

    runner = web.AppRunner(SimServer(config).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"{URL_PREFIX}http://{host}:{bound}/v1", flush=True)
    await asyncio.Event().wait()


def parse_args(argv: list[str] | None = None) -> tuple[SimConfig, str, int]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = a free port (printed)")
    p.add_argument("--latency", type=float, default=0.1, help="seconds per request")
    p.add_argument("--per-token", type=float, default=0.002, help="seconds per completion token")
    p.add_argument("--capacity", type=int, default=256, help="requests served at once; more queue")
    p.add_argument("--rpm", type=float, default=None, help="requests per minute; over it 429 + Retry-After")
    p.add_argument("--p-truncate", type=float, default=0.0, help="share of prompts with long answers (cut)")
    p.add_argument("--p-5xx", type=float, default=0.0, help="share of requests answered 500/503")
    p.add_argument("--answer-tokens", type=int, default=40)
    p.add_argument("--long-tokens", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    config = SimConfig(
        latency=a.latency,
        per_token=a.per_token,
        capacity=a.capacity,
        rpm=a.rpm,
        p_truncate=a.p_truncate,
        p_5xx=a.p_5xx,
        answer_tokens=a.answer_tokens,
        long_tokens=a.long_tokens,
        seed=a.seed,
    )
    return config, a.host, a.port


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (it comes with uvicorn[standard], which the Dagster webserver pulls in; vLLM's
    server runs on it too): ~15 % less CPU per request than asyncio's, measured here (0.45 vs 0.52 ms). The server
    shares the client's cores in tests and benchmarks, so its cost lowers the ceiling the client is measured under."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> None:
    config, host, port = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(config, host, port))


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies (Linux), so a killed test or benchmark leaves no server behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class SimServerProcess:
    """Start the simulated server as its own process on a free loopback port; use as a context manager.

    `flags` are the command-line flags without dashes (`latency=0.1, p_truncate=0.1`)."""

    def __init__(self, **flags: Any):
        self.flags = flags
        self.proc: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> SimServerProcess:
        args = [sys.executable, "-m", "teacher.testing.sim_server", "--port", "0"]
        for name, value in self.flags.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(URL_PREFIX):
            self.close()
            raise RuntimeError(f"simulated server did not start (exit {self.proc.returncode}): {line!r}")
        self.base_url = line[len(URL_PREFIX) :].strip()
        return self

    def stats(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/stats", timeout=30) as reply:
            return json.loads(reply.read())

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    main()
