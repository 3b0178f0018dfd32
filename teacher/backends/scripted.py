"""A scripted teacher for plumbing: deterministic answers without a model.

Two modes. Given `answers` (a list), it hands them out in call order, which lets a test script a malformed answer
followed by a good one. Without, it answers every task plausibly from the request itself (a hash of the prompt
picks words), so the same request always gets the same answer, like greedy decoding on a real model, and a whole
pipeline can run in milliseconds; with temperature > 0 the seed joins the hash, so samples differ. `delay_s` per
batch simulates a slow model (the kill -9 resume test).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable

from teacher.backends.base import TeacherRequest, TeacherResponse

VALUES = ["Honesty", "Mercy", "Justice", "Loyalty", "Charity", "Obedience", "Courage", "Humility", "Piety", "Thrift"]
RIGHTS = ["Right to property", "Right to life", "Right to a fair trial", "Right to liberty", "Right to worship"]
DUTIES = ["Duty to help the poor", "Duty to obey the law", "Duty to keep promises", "Duty to care for family"]
VERBS = ["Sharing", "Forgiving", "Punishing", "Defending", "Refusing", "Promising", "Repaying", "Protecting"]


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def default_answer(request: TeacherRequest) -> str:
    """A plausible, deterministic answer for each task of teacher/prompts.py."""
    question = request.messages[-1]["content"]
    # greedy answers depend on the prompt only; a sampled one (temperature > 0) also on its seed, like a real model
    h = _digest(question if request.temperature <= 0 else f"{question}#seed={request.seed}")
    if request.task == "situations":
        words = [w for w in re.findall(r"[A-Za-z]{4,}", question.split(":", 1)[-1])][:40] or ["neighbour"]
        situations = [
            f"{VERBS[(h >> (4 * i)) % len(VERBS)]} {words[(h >> (8 * i)) % len(words)].lower()} "
            f"for a {words[(h >> (8 * i + 3)) % len(words)].lower()}"
            for i in range(2)
        ]
        return json.dumps({"situations": situations})
    if request.task == "vrd":  # one item of the kind the request asks for (its prefix names it)
        asked = re.search(r'"kind": "(\w+)"', request.assistant_prefix)
        kind = asked.group(1) if asked else "value"
        items = {
            "value": {"text": VALUES[h % len(VALUES)], "valence": "supports", "explanation": "It shows care."},
            "right": {
                "text": RIGHTS[(h >> 8) % len(RIGHTS)],
                "valence": "either",
                "explanation": "A claim is at stake.",
            },
            "duty": {
                "text": DUTIES[(h >> 16) % len(DUTIES)],
                "valence": ("opposes", None)[(h >> 24) % 2],
                "explanation": "An obligation pulls the other way.",
            },
        }
        return json.dumps({"items": [{"kind": kind, **items[kind]}]})
    if request.task == "relevance":
        return "Yes" if h % 4 else "No"
    if request.task == "valence":
        return ("supports", "opposes", "either")[h % 3]
    return json.dumps({"answer": "ok"})


class ScriptedBackend:
    """Deterministic fake backend; see the module docstring."""

    name = "scripted"
    supports_prefix = False

    def __init__(
        self,
        answers: list[str] | None = None,
        responder: Callable[[TeacherRequest], str] | None = None,
        delay_s: float = 0.0,
        model: str = "scripted-v1",
        logprobs: bool = True,
    ):
        self.answers = list(answers) if answers is not None else None
        self.responder = responder or default_answer
        self.delay_s = delay_s
        self.model = model
        self.supports_logprobs = logprobs
        self.requests: list[TeacherRequest] = []  # every request seen, for assertions

    def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        if self.delay_s:
            time.sleep(self.delay_s)
        responses = []
        for request in requests:
            self.requests.append(request)
            if self.answers is not None:
                text = self.answers.pop(0) if self.answers else ""
            else:
                text = self.responder(request)
            responses.append(
                TeacherResponse(
                    text=text,
                    completion_tokens=max(1, len(text) // 4),
                    prompt_tokens=sum(len(m["content"]) for m in request.messages) // 4,
                    finish_reason="stop",
                    first_token_logprobs=self._logprobs(text)
                    if request.top_logprobs and self.supports_logprobs
                    else None,
                    latency_s=self.delay_s / max(1, len(requests)),
                )
            )
        return responses

    @staticmethod
    def _logprobs(text: str) -> dict[str, float]:
        """The answered word at 0.8, the rest spread over a few other first tokens."""
        first = (text.split() or [""])[0]
        others = [w for w in ("Yes", "No", "supports", "opposes", "either") if w.lower() != first.lower()]
        return {first: math.log(0.8), **{w: math.log(0.2 / len(others)) for w in others}}

    def close(self) -> None:
        pass
