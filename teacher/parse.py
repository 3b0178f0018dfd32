"""Turn a teacher's raw answer into validated rows, or a quarantine reason.

A 135M teacher wraps JSON in prose or code fences, stops mid-list when it runs out of tokens, uses other key
names ("type" for "kind", "name" for "text"), groups items under "values"/"rights"/"duties", and copies the
few-shot example. So extraction is lenient (first JSON value anywhere in the text, trailing commas dropped,
complete objects salvaged from a cut-off list, key and label synonyms mapped) while validation is strict
(pydantic models below; unknown kinds, empty texts and copied examples are dropped item by item).

Every parser returns a `ParseResult`: `ok` with the parsed value, or one of the reasons `empty_output`,
`malformed_json` (no JSON value could be recovered), `schema_mismatch` (JSON, but no valid item in it).
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sources.schema import VALENCES, VRD_KINDS

EMPTY_OUTPUT = "empty_output"
MALFORMED_JSON = "malformed_json"
SCHEMA_MISMATCH = "schema_mismatch"
PARSE_REASONS = (EMPTY_OUTPUT, MALFORMED_JSON, SCHEMA_MISMATCH)

MAX_SITUATIONS = 3
MAX_VRD_ITEMS = 12
MIN_SITUATION_WORDS = 2
MAX_SITUATION_WORDS = 25
MIN_DESCRIPTIVE_WORDS = 4

KIND_SYNONYMS = {
    "value": "value", "values": "value", "virtue": "value", "principle": "value",
    "right": "right", "rights": "right", "entitlement": "right",
    "duty": "duty", "duties": "duty", "obligation": "duty", "obligations": "duty", "responsibility": "duty",
}  # fmt: skip
VALENCE_SYNONYMS = {
    "supports": "supports", "support": "supports", "supporting": "supports", "supported": "supports",
    "for": "supports", "positive": "supports", "pro": "supports", "yes": "supports",
    "opposes": "opposes", "oppose": "opposes", "opposing": "opposes", "opposed": "opposes", "against": "opposes",
    "negative": "opposes", "con": "opposes", "no": "opposes",
    "either": "either", "neutral": "either", "both": "either", "depends": "either", "mixed": "either",
}  # fmt: skip
TEXT_KEYS = ("text", "name", "value", "right", "duty", "label", "title", "item")
KIND_KEYS = ("kind", "type", "category")
EXPLANATION_KEYS = ("explanation", "reason", "why", "description", "rationale", "justification")
SITUATION_KEYS = ("situation", "text", "action", "description")
LIST_KEYS = ("items", "vrd", "results", "output", "answer", "list")


class VrdItem(BaseModel):
    """One value, right or duty with its valence towards the situation and a short explanation."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["value", "right", "duty"]
    text: str = Field(min_length=2, max_length=160)
    valence: Literal["supports", "opposes", "either"] | None = None  # None: ask the valence prompt
    explanation: str = Field("", max_length=600)

    @field_validator("text", "explanation")
    @classmethod
    def _strip(cls, value: str) -> str:
        return " ".join(str(value).split()).strip(" \"'")


class Situation(BaseModel):
    situation: str = Field(min_length=8, max_length=200)

    @field_validator("situation")
    @classmethod
    def _words(cls, value: str) -> str:
        value = " ".join(value.split()).strip(" \"'-*•.")
        words = value.split()
        if not MIN_SITUATION_WORDS <= len(words) <= MAX_SITUATION_WORDS:
            raise ValueError(f"{len(words)} words, want {MIN_SITUATION_WORDS}..{MAX_SITUATION_WORDS}")
        # an action ("Forgiving a debt") or a described situation of a few words, not a fragment ("The poor")
        if not words[0].lower().endswith("ing") and len(words) < MIN_DESCRIPTIVE_WORDS:
            raise ValueError(f"{value!r} is neither an -ing action nor a {MIN_DESCRIPTIVE_WORDS}+ word description")
        return value[0].upper() + value[1:]


# JSON Schemas for backends with constrained decoding (vLLM: response_format / guided json)
SITUATIONS_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "situations": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_SITUATIONS}
    },
    "required": ["situations"],
}
VRD_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_VRD_ITEMS,
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"enum": list(VRD_KINDS)},
                    "text": {"type": "string"},
                    "valence": {"enum": list(VALENCES)},
                    "explanation": {"type": "string"},
                },
                "required": ["kind", "text", "valence", "explanation"],
            },
        }
    },
    "required": ["items"],
}


def vrd_json_schema(kind: str) -> dict[str, Any]:
    """VRD_JSON_SCHEMA with `kind` fixed: what a per-kind VRD call may answer under constrained decoding."""
    schema = copy.deepcopy(VRD_JSON_SCHEMA)
    schema["properties"]["items"]["items"]["properties"]["kind"] = {"enum": [kind]}
    return schema


@dataclass(slots=True)
class ParseResult:
    """`value` when ok; otherwise `reason` (one of PARSE_REASONS) and a human-readable `detail`."""

    value: Any = None
    reason: str | None = None
    detail: str = ""
    n_dropped_items: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None


# ---------------------------------------------------------------- lenient JSON extraction

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def extract_json(text: str) -> Any | None:
    """The first JSON object or array in `text`, tolerating fences, prose, trailing commas and Python literals.

    A list cut off mid-way (max tokens reached) yields its complete elements.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        for match in re.finditer(r"[\[{]", candidate):
            value = _decode_at(candidate[match.start() :])
            if value is None:
                value = _salvage_truncated(candidate[match.start() :])
            if value is not None:
                return value
    return None


def _decode_at(text: str) -> Any | None:
    decoder = json.JSONDecoder()
    for attempt in (text, _TRAILING_COMMA.sub(r"\1", text)):
        try:
            return decoder.raw_decode(attempt)[0]
        except json.JSONDecodeError:
            pass
    return _python_literal(text)


def _python_literal(text: str) -> Any | None:
    """`{'kind': 'value', ...}`: single-quoted Python literals, which small models emit often."""
    end = _balanced_end(text)
    if end is None:
        return None
    try:
        value = ast.literal_eval(text[:end])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def _structure(text: str, quotes: str = '"') -> Iterator[tuple[int, str]]:
    """(index, char) of every bracket outside quoted strings, and of every closing quote."""
    quote, escaped = "", False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
                yield i, ch
        elif ch in quotes:
            quote = ch
        elif ch in "[]{}":
            yield i, ch


def _balanced_end(text: str) -> int | None:
    """Index just past the bracket closing text[0] (either quote style delimits strings); None if it never closes."""
    depth = 0
    for i, ch in _structure(text, "\"'"):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def is_cut_json(text: str) -> bool:
    """True when the answer opens a JSON object or array that never closes: cut off at the token budget."""
    match = re.search(r"[\[{]", text)
    return match is not None and _balanced_end(text[match.start() :]) is None


def _salvage_truncated(body: str) -> Any | None:
    """Close a cut-off JSON value starting at body[0]: keep it up to its last complete list element, then close
    the open brackets."""
    stack: list[str] = []
    last_complete = None  # (index after a complete element, stack at that point)
    for i, ch in _structure(body):
        if ch in "[{":
            stack.append(ch)
            continue
        if ch in "]}":
            if not stack:
                break
            stack.pop()
        if stack and stack[-1] == "[":  # a string or a container just ended inside a list
            last_complete = (i + 1, list(stack))
    if last_complete is None:
        return None
    end, open_brackets = last_complete
    closed = body[:end] + "".join("]" if b == "[" else "}" for b in reversed(open_brackets))
    try:
        return json.loads(_TRAILING_COMMA.sub(r"\1", closed))
    except json.JSONDecodeError:
        return None


# ---------------------------------------------------------------- task parsers


def parse_situations(text: str, *, examples: Iterable[str] = (), max_items: int = MAX_SITUATIONS) -> ParseResult:
    """A list of 1..max_items situation strings; items copying a few-shot example are dropped."""
    if not text or not text.strip():
        return ParseResult(reason=EMPTY_OUTPUT, detail="no text")
    data = extract_json(text)
    if data is None:
        return ParseResult(reason=MALFORMED_JSON, detail="no JSON value found")
    raw_items = _situation_items(data)
    if raw_items is None:
        return ParseResult(reason=SCHEMA_MISMATCH, detail=f"no situation list in {type(data).__name__}")
    copied = {_norm(e) for e in examples}
    return _keep_valid(
        raw_items,
        lambda raw: Situation(situation=raw).situation,
        key=_norm,
        unwanted=lambda s: _norm(s) in copied,
        max_items=max_items,
    )


def _situation_items(data: Any) -> list[str] | None:
    if isinstance(data, dict):
        for key in ("situations", "situation", *LIST_KEYS, "actions"):
            if key in data:
                return _situation_items(data[key]) if not isinstance(data[key], str) else [data[key]]
        return None
    if isinstance(data, list):
        items = []
        for item in data:
            if isinstance(item, str):
                items.append(item)
            elif isinstance(item, dict):
                text = _first_key(item, SITUATION_KEYS)
                if isinstance(text, str):
                    items.append(text)
        return items if items else None
    return None


def parse_vrd(
    text: str, *, examples: Iterable[tuple[str, str]] = (), max_items: int = MAX_VRD_ITEMS, kind: str | None = None
) -> ParseResult:
    """A list of `VrdItem`s; invalid items and items copying a few-shot example (same text and explanation) drop.
    With `kind` (a per-kind call), items without a kind get it and items labelled with another kind drop."""
    if not text or not text.strip():
        return ParseResult(reason=EMPTY_OUTPUT, detail="no text")
    data = extract_json(text)
    raw_items = list(_vrd_items(data, kind)) if data is not None else []
    if not raw_items:
        raw_items = scan_vrd_pairs(text)  # last resort: an answer that loops inside its first object
    if not raw_items:
        if data is None:
            return ParseResult(reason=MALFORMED_JSON, detail="no JSON value found")
        return ParseResult(reason=SCHEMA_MISMATCH, detail=f"no value/right/duty items in {type(data).__name__}")
    copied = {(_norm(t), _norm(e)) for t, e in examples}
    return _keep_valid(
        raw_items,
        VrdItem.model_validate,
        key=lambda item: (item.kind, _norm(item.text)),
        unwanted=lambda item: (_norm(item.text), _norm(item.explanation)) in copied or kind not in (None, item.kind),
        max_items=max_items,
    )


def _keep_valid(
    raw_items: list[Any],
    validate: Callable[[Any], Any],
    key: Callable[[Any], Any],
    unwanted: Callable[[Any], bool],
    max_items: int,
) -> ParseResult:
    """Validate items one by one: invalid ones, repeats (same `key`) and `unwanted` ones (copies of a few-shot
    example, another kind than asked) are dropped; no item left is a schema mismatch."""
    kept, seen, dropped = [], set(), 0
    for raw in raw_items:
        try:
            item = validate(raw)
        except ValidationError:
            dropped += 1
            continue
        if unwanted(item) or key(item) in seen:
            dropped += 1
            continue
        seen.add(key(item))
        kept.append(item)
    if not kept:
        return ParseResult(
            reason=SCHEMA_MISMATCH, detail=f"0 valid items of {len(raw_items)}", n_dropped_items=dropped
        )
    return ParseResult(value=kept[:max_items], n_dropped_items=dropped + max(0, len(kept) - max_items))


_PAIR = re.compile(r'"([A-Za-z_]+)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def scan_vrd_pairs(text: str) -> list[dict[str, Any]]:
    """Items rebuilt from `"key": "value"` pairs when no JSON structure survives (an object that never closes
    because the model repeats its keys): a kind key starts a new item, and the first value of each key wins."""
    items: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for match in _PAIR.finditer(text):
        key, value = match.group(1).lower(), match.group(2)
        if key in KIND_KEYS and any(k in current for k in KIND_KEYS):
            items.append(current)
            current = {}
        current.setdefault(key, value)
    if current:
        items.append(current)
    return [_normalise_item(item, None) for item in items if _first_key(item, KIND_KEYS) is not None]


def _vrd_items(data: Any, kind: str | None = None) -> Iterable[dict[str, Any]]:
    """Normalised item dicts from the shapes small models produce."""
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                yield _normalise_item(item, kind)
            elif isinstance(item, str) and kind:
                yield {"kind": kind, "text": item}
        return
    if not isinstance(data, dict):
        return
    if _first_key(data, TEXT_KEYS) is not None and _first_key(data, KIND_KEYS) is not None:
        yield _normalise_item(data, kind)
        return
    for key, value in data.items():
        grouped = KIND_SYNONYMS.get(key.strip().lower())
        if grouped and isinstance(value, (list, dict)):
            yield from _vrd_items(value if isinstance(value, list) else [value], grouped)
        elif key.strip().lower() in LIST_KEYS and isinstance(value, list):
            yield from _vrd_items(value, kind)


def _normalise_item(item: dict[str, Any], kind: str | None) -> dict[str, Any]:
    raw_kind = _first_key(item, KIND_KEYS)
    mapped_kind = KIND_SYNONYMS.get(str(raw_kind).strip().lower()) if raw_kind is not None else None
    if mapped_kind is None and kind is None:  # {"duty": "Duty to care for kin", ...}: the key names the kind
        kind = next((k for k in VRD_KINDS if isinstance(item.get(k), str)), None)
    text = _first_key(item, TEXT_KEYS)
    valence = item.get("valence", item.get("stance"))
    return {
        "kind": mapped_kind or kind or raw_kind,
        "text": text if isinstance(text, str) else "",
        "valence": normalise_valence(valence),
        "explanation": str(_first_key(item, EXPLANATION_KEYS) or ""),
    }


def normalise_valence(value: Any) -> str | None:
    """A valence label from free text: "Supports." -> supports; unknown -> None."""
    if not isinstance(value, str):
        return None
    words = re.findall(r"[a-z]+", value.lower())
    for word in words[:3]:
        if word in VALENCE_SYNONYMS:
            return VALENCE_SYNONYMS[word]
    return None


def parse_choice(text: str, options: Iterable[str]) -> str | None:
    """The first of `options` named in a short free-text answer ("Yes, because..." -> "yes")."""
    lowered = text.strip().lower()
    positions = {opt: m.start() for opt in options if (m := re.search(rf"\b{re.escape(opt)}\b", lowered))}
    return min(positions, key=positions.get) if positions else None


def _first_key(item: dict[str, Any], keys: Iterable[str]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in item.items()}
    for key in keys:
        if key in lowered and lowered[key] not in (None, ""):
            return lowered[key]
    return None


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
