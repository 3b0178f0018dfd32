"""Versioned prompts: situation extraction, VRD generation, relevance, valence, and the repair turn.

Each prompt's version goes into every cache key: editing a prompt's wording or examples must bump its version,
so a rebuild regenerates exactly the affected calls. Few-shot examples are chat turns (user, assistant) before the
real question; with a backend that prefills the assistant prefix (transformers, vllm) even a 135M model starts its
answer inside the JSON shape. The example answers are also exported so the parser can drop copied examples.
"""

from __future__ import annotations

import dataclasses
import json

from sources.schema import VRD_KIND_PLURALS
from teacher.backends.base import TeacherRequest
from teacher.parse import SITUATIONS_JSON_SCHEMA, vrd_json_schema

SITUATIONS_VERSION = "situations/v1"
VRD_VERSION = "vrd/v2"  # v2: one call per kind (Kaleido's generation task), so every kind is asked for
RELEVANCE_VERSION = "relevance/v1"
VALENCE_VERSION = "valence/v1"
REPAIR_VERSION = "repair/v1"

MAX_PASSAGE_CHARS = 900
REPAIR_ANSWER_CHARS = 400  # enough of a bad answer to show what went wrong, short enough to keep the prompt small

SITUATIONS_SYSTEM = (
    "You read a passage from a historical text and list one to three short, concrete actions or situations in it "
    "that a person could judge as right or wrong, true to the passage's time. Write each as a short phrase that "
    'starts with a verb ending in -ing. Answer with JSON only: {"situations": ["..."]}'
)
# what each kind means, as ValuePrism defines them; the VRD prompt asks for one kind at a time
KIND_MEANINGS = {
    "value": "values (ideals a person may care about, such as honesty or mercy)",
    "right": "rights (claims a person is entitled to, such as the right to life)",
    "duty": "duties (obligations a person is bound by, such as the duty to keep a promise)",
}
VRD_SYSTEM = (
    "For a situation, list the human {meaning} at stake, one to three. For each give a short text, its valence "
    "(supports or opposes the action, or either) and a one-sentence explanation. Answer with JSON only: "
    '{{"items": [{{"kind": "{kind}", "text": ..., "valence": ..., "explanation": ...}}]}}'
)

SITUATION_EXAMPLES: list[tuple[str, str, list[str]]] = [
    (
        "C018",
        "He that hath two coats, let him impart to him that hath none; and he that hath meat, let him do likewise.",
        ["Giving a spare coat to someone who has none", "Sharing food with a hungry neighbour"],
    ),
    (
        "C019",
        "The Government must protect the settler who has been wronged, and punish those who break the peace.",
        ["Protecting a settler who has been wronged", "Punishing people who break the peace"],
    ),
]

VRD_EXAMPLES: list[tuple[str, list[dict[str, str]]]] = [
    (
        "Giving a spare coat to someone who has none",
        [
            {"kind": "value", "text": "Compassion", "valence": "supports",
             "explanation": "Giving the coat eases the suffering of a person in need."},
            {"kind": "value", "text": "Self-reliance", "valence": "opposes",
             "explanation": "The giver may need the spare coat later."},
            {"kind": "right", "text": "Right to property", "valence": "either",
             "explanation": "The coat belongs to the giver, who may keep it or give it away."},
            {"kind": "duty", "text": "Duty to help the poor", "valence": "supports",
             "explanation": "Many hold that those with plenty should help those without."},
        ],
    ),
    (
        "Punishing a thief by cutting off his hand",
        [
            {"kind": "value", "text": "Justice", "valence": "supports",
             "explanation": "The thief is made to answer for the wrong he did."},
            {"kind": "value", "text": "Mercy", "valence": "opposes",
             "explanation": "The punishment is far harsher than the theft."},
            {"kind": "right", "text": "Right to bodily integrity", "valence": "opposes",
             "explanation": "Maiming violates the thief's claim to an unharmed body."},
            {"kind": "right", "text": "Right to a fair trial", "valence": "either",
             "explanation": "The punishment is just only if his guilt was fairly proven."},
            {"kind": "duty", "text": "Duty to uphold the law", "valence": "supports",
             "explanation": "Judges are bound to enforce the penalties the law sets."},
            {"kind": "duty", "text": "Duty not to harm others", "valence": "opposes",
             "explanation": "Cutting off a hand does lasting harm to a person."},
        ],
    ),
]  # fmt: skip

SITUATIONS_PREFIX = '{"situations": ["'
VRD_PREFIX = '{{"items": [{{"kind": "{kind}", "text": "'


def century_phrase(century: str) -> str:
    """'C017' -> 'the 1600s' (ProgressGym buckets: C017 holds the years 1600-1699)."""
    number = int(century.lstrip("C"))
    return f"the {(number - 1) * 100}s"


def situations_user(passage: str, century: str) -> str:
    text = " ".join(passage.split())[:MAX_PASSAGE_CHARS]
    return f"Passage from {century_phrase(century)}: {text}"


def vrd_user(situation: str, kind: str) -> str:
    return f"Situation: {situation}\nWhich {VRD_KIND_PLURALS[kind]} are at stake?"


def few_shot(system: str, examples: list[tuple[str, str]], question: str) -> list[dict[str, str]]:
    """Chat messages: the system prompt, each (user, assistant) example pair, then the question."""
    messages = [{"role": "system", "content": system}]
    for user, assistant in examples:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return [*messages, {"role": "user", "content": question}]


def situation_request(
    passage: str, century: str, *, max_new_tokens: int, temperature: float = 0.0, seed: int = 0
) -> TeacherRequest:
    """(a) one to three ValuePrism-style situations from a dated passage."""
    examples = [(situations_user(p, c), json.dumps({"situations": s})) for c, p, s in SITUATION_EXAMPLES]
    messages = few_shot(SITUATIONS_SYSTEM, examples, situations_user(passage, century))
    return TeacherRequest(
        messages, max_new_tokens, temperature, seed=seed, assistant_prefix=SITUATIONS_PREFIX, stop=["]"],
        json_schema=SITUATIONS_JSON_SCHEMA, task="situations", prompt_version=SITUATIONS_VERSION,
    )  # fmt: skip


def vrd_request(
    situation: str, *, kind: str = "value", max_new_tokens: int, temperature: float = 0.0, seed: int = 0
) -> TeacherRequest:
    """(b) the values, rights or duties (`kind`) at stake in one situation, each with valence and explanation.

    One kind per call, as Kaleido's generation task asks: a small model given all three at once spends its answer
    budget on values and rarely reaches duties. The prefix opens the first item with the kind already written."""
    examples = [
        (vrd_user(s, kind), json.dumps({"items": [item for item in items if item["kind"] == kind]}))
        for s, items in VRD_EXAMPLES
    ]
    system = VRD_SYSTEM.format(meaning=KIND_MEANINGS[kind], kind=kind)
    messages = few_shot(system, examples, vrd_user(situation, kind))
    return TeacherRequest(
        messages, max_new_tokens, temperature, seed=seed, assistant_prefix=VRD_PREFIX.format(kind=kind),
        stop=["}]"], json_schema=vrd_json_schema(kind), task="vrd", prompt_version=VRD_VERSION,
    )  # fmt: skip


def one_word_request(question: str, options: str, task: str, version: str, max_new_tokens: int) -> TeacherRequest:
    """A question answered in one word, with first-token logprobs asked for (scored where the backend has them)."""
    messages = few_shot(f"You answer with one word: {options}.", [], question)
    return TeacherRequest(messages, max_new_tokens, top_logprobs=20, task=task, prompt_version=version)


def relevance_request(situation: str, kind: str, text: str) -> TeacherRequest:
    """(c) Kaleido's relevance question; scored by P(yes) from the first answer token where logprobs exist."""
    question = f"Situation: {situation}\nIs the {kind} '{text}' relevant to this situation? Answer yes or no."
    return one_word_request(question, "yes or no", "relevance", RELEVANCE_VERSION, max_new_tokens=2)


def valence_request(situation: str, kind: str, text: str) -> TeacherRequest:
    """(d) valence of one value/right/duty towards the action, for items the generation left without one."""
    question = (
        f"Situation: {situation}\nDoes the {kind} '{text}' support or oppose this action? "
        "Answer with one word: supports, opposes or either."
    )
    return one_word_request(question, "supports, opposes or either", "valence", VALENCE_VERSION, max_new_tokens=3)


def repair_request(original: TeacherRequest, bad_answer: str, problem: str) -> TeacherRequest:
    """A retry turn: the bad answer stays in the conversation and the user says what was wrong with it."""
    messages = [
        *original.messages,
        {"role": "assistant", "content": bad_answer[:REPAIR_ANSWER_CHARS]},
        {"role": "user", "content": f"That answer could not be used ({problem}). Reply again with the JSON only."},
    ]
    # a copy of the original request: same sampling, prefix, schema and task; only the conversation and version move
    return dataclasses.replace(
        original, messages=messages, top_logprobs=0, prompt_version=f"{original.prompt_version}+{REPAIR_VERSION}"
    )


def situation_examples() -> list[str]:
    return [s for _, _, situations in SITUATION_EXAMPLES for s in situations]


def vrd_examples() -> list[tuple[str, str]]:
    return [(item["text"], item["explanation"]) for _, items in VRD_EXAMPLES for item in items]
