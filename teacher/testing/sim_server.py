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
import functools
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHARS_PER_TOKEN = 4
URL_PREFIX = "SIM_SERVER_URL "
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required", 429: "Too Many Requests"}
REASONS |= {500: "Internal Server Error", 503: "Service Unavailable"}
MAX_HEAD = 64 * 1024
MODELS = {"object": "list", "data": [{"id": "sim", "object": "model"}]}


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
    return _keyed(messages, max_tokens)[0]


def _keyed(messages: list[dict[str, Any]], max_tokens: int) -> tuple[str, str]:
    """(request key, the messages as sorted-key JSON: as long as the prompt text, for its token count)."""
    text = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{text}|{max_tokens}".encode()).hexdigest()[:16], text


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
    # json.dumps({"answer": key, "text": filler}), built: a hex key and the filler need no escaping
    return f'{{"answer": "{key}", "text": "{_filler(budget - len(key) - 26)}"}}'


@functools.lru_cache
def _filler(chars: int) -> str:
    return " ".join(["lorem"] * max(1, chars // 6))


def http_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> bytes:
    """One whole HTTP/1.1 response with a JSON body, as bytes ready to write."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + extra + "\r\n").encode() + body


class SimServer:
    """The simulated server's state and answers, served by `_Connection`s.

    Lean on purpose: the server shares the client's cores in tests and benchmarks (a real server does not), so
    every millisecond it spends is taken from the client it measures. A raw asyncio protocol with a minimal
    HTTP/1.1 parser and one timer per served request costs a fraction of an aiohttp application's router,
    request objects and handler task per request."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.rng = random.Random(config.seed)
        self.counts: Counter = Counter()
        self.answered: Counter = Counter()
        self.in_flight = 0
        self._queued: deque[tuple[_Connection, bytes, float, str]] = deque()  # beyond capacity, first come first
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

    def handle(self, conn: _Connection, method: str, path: str, raw: bytes) -> None:
        """Answer one request on `conn`: at once, or after its time in a serving slot."""
        if method == "POST" and path == "/v1/chat/completions":
            reply, seconds, key = self.chat(raw)
            if seconds is not None:
                self._queued.append((conn, reply, seconds, key))
                self._serve_queued()
                return
        elif method == "GET" and path in ("/v1/models", "/health"):
            reply = http_reply(200, MODELS)
        elif method == "GET" and path == "/stats":
            reply = http_reply(200, {**self.counts, "answered": dict(self.answered)})
        else:
            reply = http_reply(404, {"error": {"message": f"no route for {method} {path}"}})
        conn.send(reply)

    def _serve_queued(self) -> None:
        """Start queued requests while a slot is free, like a busy vLLM scheduler; each holds its slot (a timer)
        for its latency, then is answered."""
        loop = asyncio.get_running_loop()
        while self._queued and self.in_flight < self.config.capacity:
            conn, reply, seconds, key = self._queued.popleft()
            self.in_flight += 1
            self.counts["max_in_flight"] = max(self.counts["max_in_flight"], self.in_flight)
            loop.call_later(seconds, self._served, conn, reply, key)

    def _served(self, conn: _Connection, reply: bytes, key: str) -> None:
        self.in_flight -= 1
        self.counts["ok"] += 1
        self.answered[key] += 1
        conn.send(reply)
        self._serve_queued()

    def chat(self, raw: bytes) -> tuple[bytes, float | None, str]:
        """(the response, seconds it takes in a slot or None for an answer at once, request key)."""
        self.counts["requests"] += 1
        try:
            body = json.loads(raw)
            messages = body["messages"]
        except (ValueError, KeyError, TypeError):
            self.counts["bad_requests"] += 1
            return http_reply(400, {"error": {"message": "body needs messages"}}), None, ""
        wait = self._take_rate_token()
        if wait > 0:
            self.counts["rate_limited"] += 1
            headers = {"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(math.ceil(wait * 1000))}
            error = {"error": {"message": "rate limit reached", "type": "rate_limit_exceeded"}}
            return http_reply(429, error, headers), None, ""
        if self.config.p_5xx and self.rng.random() < self.config.p_5xx:
            self.counts["server_errors"] += 1
            status = self.rng.choice([500, 503])
            return http_reply(status, {"error": {"message": "simulated server error"}}), None, ""
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        key, sorted_text = _keyed(messages, max_tokens)
        p_long = self.config.p_truncate  # which prompts are long: a hash of their messages as sent
        long = p_long and _unit("long", json.dumps(messages, ensure_ascii=False)) < p_long
        needed = self.config.long_tokens if long else self.config.answer_tokens
        if body.get("logprobs"):
            text, finish = "Yes", "stop"
        else:
            text, finish = answer_text(body, needed, key), "stop"
            if _tokens(text) > max_tokens:
                text, finish = text[: max_tokens * CHARS_PER_TOKEN], "length"
                self.counts["truncated"] += 1
        completion, prompt = _tokens(text), _tokens(sorted_text)
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
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }
        return http_reply(200, payload), self.config.latency + self.config.per_token * completion, key


def _header(head: bytes, name: bytes) -> bytes:
    """The value of header `name` (lowercase) in a lowercased request head, b"" when absent."""
    at = head.find(b"\r\n" + name + b":")
    if at < 0:
        return b""
    start = at + len(name) + 3
    return head[start : head.find(b"\r\n", start)].strip()


class _Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 with keep-alive, a Content-Length body, one request at a time (a
    pipelined request waits in the buffer until the one before it is answered, so answers keep their order)."""

    def __init__(self, server: SimServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False  # a request read and not yet answered
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        """Hand the next whole request in the buffer to the server, if there is one. Only three headers matter
        (Content-Length, Connection, Transfer-Encoding): found in the lowercased head, not parsed into a dict."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._refuse(400, "request head too large")
            return
        head = self.buffer[: end + 2].lower()  # each header line ends with CRLF
        try:
            method, target, version = self.buffer[: head.find(b"\r\n")].decode("latin-1").split(" ")
            length = int(_header(head, b"content-length") or 0)
        except ValueError:
            self._refuse(400, "bad request line or Content-Length")
            return
        if _header(head, b"transfer-encoding"):
            self._refuse(411, "send a Content-Length body")
            return
        start = end + 4
        stop = start + length
        if len(self.buffer) < stop:
            return  # the body is still coming
        raw, self.buffer = self.buffer[start:stop], self.buffer[stop:]
        connection = _header(head, b"connection")
        self.close_after = connection == b"close" or (version == "HTTP/1.0" and connection != b"keep-alive")
        self.busy = True
        self.server.handle(self, method, target.partition("?")[0], raw)

    def _refuse(self, status: int, why: str) -> None:
        self.buffer, self.close_after = b"", True
        self.send(http_reply(status, {"error": {"message": why}}))

    def send(self, reply: bytes) -> None:
        """Write the answer to the request in hand, then take the next one (or close, when asked to)."""
        self.busy = False
        if self.transport is None:  # the client went away while its request was being served
            return
        if self.close_after:
            self.transport.write(reply.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            self.transport.close()
            return
        self.transport.write(reply)
        if self.buffer:
            self._next()


async def serve(config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
    server = SimServer(config)
    listener = await asyncio.get_running_loop().create_server(lambda: _Connection(server), host, port, backlog=4096)
    bound = listener.sockets[0].getsockname()[1]
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

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used (user + system, from /proc; None where there is no /proc): it
        shares the client's cores in benchmarks, so what it uses is not the client's."""
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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
