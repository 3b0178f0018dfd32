import json

import pytest

from teacher.parse import (
    EMPTY_OUTPUT,
    MALFORMED_JSON,
    SCHEMA_MISMATCH,
    extract_json,
    normalise_valence,
    parse_choice,
    parse_situations,
    parse_vrd,
)

ITEM = {"kind": "value", "text": "Mercy", "valence": "supports", "explanation": "The debtor is spared."}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ('Sure! Here it is:\n```json\n{"a": 1}\n```\nHope this helps.', {"a": 1}),
        ('The answer [see below] is {"a": 1,}', {"a": 1}),  # a bracket in prose, then a trailing comma
        ("{'kind': 'value', 'text': 'Mercy'}", {"kind": "value", "text": "Mercy"}),  # Python literal
        ('{"items": [{"a": 1}, {"a": 2}, {"a": 3', {"items": [{"a": 1}, {"a": 2}]}),  # cut off mid-list
        ('{"situations": ["Giving alms", "Keeping an oa', {"situations": ["Giving alms"]}),
        ("no json at all", None),
    ],
)
def test_extract_json_is_lenient(text, expected):
    assert extract_json(text) == expected


def test_situations_parse_and_filter():
    text = '{"situations": ["forgiving a debt owed by a poor neighbour", "The poor", "Forgiving a debt owed by a poor neighbour.", "Giving a spare coat to someone who has none", "Breaking an oath to a king"]}'  # noqa: E501
    result = parse_situations(text, examples=["Giving a spare coat to someone who has none"], max_items=3)
    assert result.ok
    assert result.value == ["Forgiving a debt owed by a poor neighbour", "Breaking an oath to a king"]
    assert result.n_dropped_items == 3  # a fragment, a duplicate, a copied example


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", EMPTY_OUTPUT),
        ("   \n", EMPTY_OUTPUT),
        ("I think the passage is about kings.", MALFORMED_JSON),
        ('{"answer": 42}', SCHEMA_MISMATCH),
        ('{"situations": ["The poor", "A"]}', SCHEMA_MISMATCH),
    ],
)
def test_situations_reasons(text, reason):
    result = parse_situations(text)
    assert not result.ok and result.reason == reason


def test_vrd_accepts_the_shapes_small_models_produce():
    canonical = json.dumps({"items": [ITEM]})
    bare_list = json.dumps([ITEM])
    synonyms = json.dumps([{"type": "Duties", "name": "Duty to repay", "stance": "Opposes.", "reason": "Debts bind."}])
    grouped = json.dumps({"values": ["Mercy"], "rights": [{"text": "Right to property", "valence": "either"}]})
    assert [i.text for i in parse_vrd(canonical).value] == ["Mercy"]
    assert [i.text for i in parse_vrd(bare_list).value] == ["Mercy"]
    item = parse_vrd(synonyms).value[0]
    assert (item.kind, item.text, item.valence, item.explanation) == (
        "duty",
        "Duty to repay",
        "opposes",
        "Debts bind.",
    )
    kinds = [(i.kind, i.text, i.valence) for i in parse_vrd(grouped).value]
    assert kinds == [("value", "Mercy", None), ("right", "Right to property", "either")]


def test_vrd_salvages_a_looping_first_object():
    looping = (
        '{"items": [{"kind": "value", "text": "Protection of the innocent", "valence": "supports", '
        '"explanation": "The weak need shelter.", "text": "Duty to protect", "explanation": "The giver may", "te'
    )
    result = parse_vrd(looping)
    assert result.ok
    assert [(i.kind, i.text, i.explanation) for i in result.value] == [
        ("value", "Protection of the innocent", "The weak need shelter.")
    ]


def test_vrd_drops_invalid_duplicate_and_copied_items():
    items = [
        ITEM,
        {**ITEM, "explanation": "again"},  # same kind and text: duplicate
        {"kind": "virtue-signal", "text": "x"},  # unknown kind, text too short
        {"kind": "value", "text": "Compassion", "valence": "supports", "explanation": "Copied."},
    ]
    result = parse_vrd(json.dumps({"items": items}), examples=[("Compassion", "Copied.")])
    assert [i.text for i in result.value] == ["Mercy"]
    assert result.n_dropped_items == 3


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", EMPTY_OUTPUT), ("<<<garbage>>>", MALFORMED_JSON), ('{"items": "none"}', SCHEMA_MISMATCH)],
)
def test_vrd_reasons(text, reason):
    result = parse_vrd(text)
    assert not result.ok and result.reason == reason


def test_choices_and_valences():
    assert parse_choice("Yes, it is relevant.", ["yes", "no"]) == "yes"
    assert parse_choice("no", ["yes", "no"]) == "no"
    assert parse_choice("Perhaps.", ["yes", "no"]) is None
    assert parse_choice("It opposes rather than supports", ["supports", "opposes", "either"]) == "opposes"
    assert normalise_valence("Supports.") == "supports"
    assert normalise_valence("against") == "opposes"
    assert normalise_valence("unclear") is None
    assert normalise_valence(None) is None
