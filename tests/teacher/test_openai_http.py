"""The OpenAI-compatible backend: against a real `transformers serve` on loopback, and a stub for failure paths."""

import json
import logging
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from teacher.backends.openai_http import OpenAIBackend
from teacher.cache import TeacherCache
from teacher.client import Teacher
from teacher.models import smollm2_hf_dir
from teacher.prompts import situation_request, vrd_request
from teacher.scoring import LOGPROBS, score_relevance
from tests.helpers import free_port

SECRET = "sk-test-never-log-me"


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    """`transformers serve` on 127.0.0.1 serving the de-quantised SmolLM2 dir, offline."""
    model_dir = smollm2_hf_dir(models_dir)
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HOME": str(tmp_path_factory.mktemp("hf_home")),
    }
    cli = Path(sys.executable).with_name("transformers")
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), str(model_dir)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}; see {log.name}")
            try:
                if requests.get(f"{base}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail("transformers serve did not come up in 120 s")
        yield f"{base}/v1", str(model_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_real_server_answers_a_batch_and_declares_no_logprobs(server, tmp_path, monkeypatch, caplog):
    base_url, model = server
    monkeypatch.setenv("CHRONOPRISM_TEST_KEY", SECRET)
    backend = OpenAIBackend(base_url, model, api_key_env="CHRONOPRISM_TEST_KEY", concurrency=2, timeout_s=120)
    teacher = Teacher(backend, TeacherCache(tmp_path / "c.duckdb"), batch_size=3)
    passages = ["Thou shalt not steal.", "Forgive us our debts.", "The king shall judge the poor with justice."]
    caplog.set_level(logging.DEBUG)
    responses = backend.generate([situation_request(p, "C017", max_new_tokens=16) for p in passages])
    assert all(r.ok and r.text and r.completion_tokens > 0 for r in responses)
    [(p_yes, score)] = score_relevance(teacher, [("Forgiving a debt", "value", "Mercy")])
    assert not backend.supports_logprobs and score.method != LOGPROBS  # this server sends no logprobs
    assert p_yes in (0.0, 1.0, None)
    calls = TeacherCache(tmp_path / "c.duckdb").calls_frame()
    assert calls.height == 1 and SECRET not in calls["request"][0]
    assert SECRET not in caplog.text


class Stub(BaseHTTPRequestHandler):
    """Answers from a script: a list of (status, body) per request, then 200s."""

    script: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Stub.seen.append((body, self.headers.get("Authorization")))
        status, payload = Stub.script.pop(0) if Stub.script else (200, None)
        if payload is None:
            payload = {
                "choices": [{"message": {"content": '{"situations": ["Forgiving a debt"]}'}, "finish_reason": "stop"}],
                "usage": {"completion_tokens": 7, "prompt_tokens": 9},
            }
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    Stub.script, Stub.seen = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_retries_transient_errors_and_gives_up_on_client_errors(stub, monkeypatch):
    monkeypatch.setenv("CHRONOPRISM_TEST_KEY", SECRET)
    backend = OpenAIBackend(stub, "m", api_key_env="CHRONOPRISM_TEST_KEY", http_retries=2, backoff_s=0)
    Stub.script = [(503, {"error": "busy"}), (429, {"error": "slow down"})]
    [ok] = backend.generate([situation_request("p", "C017", max_new_tokens=8)])
    assert ok.ok and ok.completion_tokens == 7 and len(Stub.seen) == 3
    assert Stub.seen[0][1] == f"Bearer {SECRET}"
    Stub.script = [(500, {})] * 3
    [failed] = backend.generate([situation_request("p", "C017", max_new_tokens=8)])
    assert not failed.ok and "gave up after 3 attempts" in failed.error
    Stub.seen.clear()
    Stub.script = [(404, {"error": "no such model"})]
    [missing] = backend.generate([situation_request("p", "C017", max_new_tokens=8)])
    assert "HTTP 404" in missing.error and len(Stub.seen) == 1


def test_schema_goes_out_as_response_format_and_is_dropped_when_refused(stub):
    backend = OpenAIBackend(stub, "m", backoff_s=0)
    Stub.script = [(400, {"error": "response_format not supported"})]
    [response] = backend.generate([vrd_request("Forgiving a debt", max_new_tokens=8)])
    assert response.ok
    first, second = Stub.seen[0][0], Stub.seen[1][0]
    assert first["response_format"]["json_schema"]["schema"]["required"] == ["items"]
    assert "response_format" not in second and not backend.constrained_decoding


def test_logprobs_are_read_in_the_openai_chat_format(stub):
    backend = OpenAIBackend(stub, "m")
    Stub.script = [
        (
            200,
            {
                "choices": [
                    {
                        "message": {"content": "Yes"},
                        "finish_reason": "stop",
                        "logprobs": {
                            "content": [
                                {
                                    "token": "Yes",
                                    "logprob": -0.1,
                                    "top_logprobs": [
                                        {"token": "Yes", "logprob": -0.1},
                                        {"token": "No", "logprob": -2.4},
                                    ],
                                }
                            ]
                        },
                    }
                ]
            },
        )
    ]
    teacher = Teacher(backend, None)
    [(p_yes, score)] = score_relevance(teacher, [("Forgiving a debt", "value", "Mercy")])
    assert score.method == LOGPROBS and 0.85 < p_yes < 0.95 and backend.supports_logprobs
    assert Stub.seen[0][0]["logprobs"] is True and Stub.seen[0][0]["top_logprobs"] == 20


def test_an_unreachable_server_is_an_error_response_not_an_exception():
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", "m", http_retries=1, backoff_s=0, timeout_s=2)
    [response] = backend.generate([situation_request("p", "C017", max_new_tokens=8)])
    assert not response.ok and "ConnectionError" in response.error
