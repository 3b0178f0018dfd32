import io
import json
import tracemalloc

import pytest

from sources.jsonlist import iter_json_list, write_json_list

RECORDS = [{"content": "a", "creation_year": 1700}, {"content": "b\n]", "x": [1, {"y": "}"}]}, {"content": "\u00e9"}]


def items(data: bytes, max_element_chars: int = 1000) -> list[tuple]:
    return [(i.line, i.index, i.value, i.reason) for i in iter_json_list(io.BytesIO(data), max_element_chars)]


def values(data: bytes) -> list:
    found = items(data)
    assert all(reason is None for *_, reason in found), found
    return [value for _, _, value, _ in found]


def writer_layout(records: list) -> bytes:
    handle = io.StringIO()
    write_json_list(handle, records)
    return handle.getvalue().encode()


@pytest.mark.parametrize(
    "layout",
    [
        writer_layout,
        lambda r: json.dumps(r, indent=2).encode(),
        lambda r: json.dumps(r).encode(),
        lambda r: json.dumps(r, indent="\t", ensure_ascii=False).encode(),
    ],
    ids=["progressgym_writer", "indent_2", "one_line", "tabs_utf8"],
)
def test_every_layout_of_a_json_list_gives_the_same_elements(layout):
    assert values(layout(RECORDS)) == RECORDS


def test_writer_layout_is_progressgyms_exactly():
    assert writer_layout([{"a": 1}, {"b": 2}]) == b'[\n{"a": 1},\n{"b": 2}\n]'
    assert writer_layout([]) == b"[\n]"
    assert values(b"[\n]") == [] and values(b"[]") == []


def test_a_broken_element_is_one_reason_and_reading_goes_on():
    data = b'[\n{"a": 1},\n{"content": "cut off, "creation_year": 1},\n{"a": "open\n{"a": 4},\n{"a": }, {"b": 5}\n]'
    found = items(data)
    assert [(line, reason) for line, _, _, reason in found] == [
        (2, None),
        (3, "malformed_json"),
        (4, "malformed_json"),
        (5, None),
        (6, "malformed_json"),
        (6, None),
    ]
    assert [value for *_, value, reason in found if reason is None] == [{"a": 1}, {"a": 4}, {"b": 5}]
    assert [index for _, index, _, _ in found] == [0, 1, 2, 3, 4, 5]


def test_file_level_problems():
    assert items(b'{"content": "x"}') == [(1, None, None, "not_a_list")]
    assert items(b"") == [(1, None, None, "empty_file")]
    assert items(b'[\n{"a": 1},\n{"a": 2') == [
        (2, 0, {"a": 1}, None),
        (3, 1, None, "malformed_json"),
        (3, None, None, "truncated_file"),
    ]
    assert items(b'[\n{"a": 1}\n] extra')[-1] == (3, None, None, "malformed_json")


def test_non_objects_bad_bytes_and_giant_elements_are_elements_with_reasons():
    data = b'[\n1,\n"s",\n{"a": "\xff"},\n{"a": "' + b"x" * 5000 + b'"},\n{"z": 9}\n]'
    assert items(data) == [
        (2, 0, 1, None),
        (3, 1, "s", None),
        (4, 2, None, "invalid_utf8"),
        (5, 3, None, "too_large"),
        (6, 4, {"z": 9}, None),
    ]
    multi_line = json.dumps([{"a": "x" * 600, "b": "y" * 600}, {"c": 1}], indent=2).encode()
    assert [(v, r) for _, _, v, r in items(multi_line)] == [(None, "too_large"), ({"c": 1}, None)]


def test_memory_does_not_grow_with_the_file(tmp_path):
    path = tmp_path / "Y01800.json"
    element = {"content": "word " * 200, "creation_year": 1800, "source_dataset": "test"}
    with path.open("w") as handle:
        write_json_list(handle, (element for _ in range(12_000)))  # ~12 MB
    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            count = sum(1 for item in iter_json_list(handle) if item.reason is None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 12_000
    assert path.stat().st_size > 10_000_000 and peak < 1_000_000  # a few elements, never the file
