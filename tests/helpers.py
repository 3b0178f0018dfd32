"""Builders for tests (plain functions and constants; fixtures live in tests/conftest.py): tiny documents, corpus
directories, teacher texts, settings resources, free ports."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import polars as pl

from sources.schema import PRETRAIN, SITUATIONS, Document, century_of, doc_id_of, frame_of, stable_id


def make_doc(text: str, **fields) -> Document:
    """A valid Document with defaults; override any column by keyword."""
    source = fields.pop("source", "test")
    source_doc_id = fields.pop("source_doc_id", str(abs(hash(text))))
    year = fields.pop("year", 1650)
    values = dict(
        doc_id=doc_id_of(source, source_doc_id),
        source=source,
        source_doc_id=source_doc_id,
        title=None,
        author=None,
        language="en",
        text=text,
        year=year,
        year_min=year,
        year_max=year,
        date_method="field:year",
        century=century_of(year),
        n_chars=len(text),
        license="test",
        provenance="tests",
    )
    values.update(fields)
    return Document(**values)


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


GOOD_TEXT = "The neighbour forgave the debt, for the harvest had failed and his children were hungry. " * 4

# every bad input named in the foundation issue, file name -> reason(s) expected in rejects
BAD_CORPUS_REASONS = {
    "bad_utf8.jsonl": ["invalid_utf8"],
    "binary.jsonl": ["binary_file"],
    "empty.jsonl": ["empty_file"],
    "empty_text.jsonl": ["empty_text"],
    "giant_line.jsonl": ["too_large"],
    "not_object.jsonl": ["not_an_object", "malformed_json"],
    "wrong_columns.parquet": ["schema_mismatch"],
    "dates.jsonl": ["missing_date", "unparseable_date", "future_year", "year_out_of_range"],
    "dup_b.jsonl": ["duplicate_id"],
    "notes.docx": ["unsupported_file_type"],
    "unreadable.jsonl": ["unreadable_file"],
    "undated.txt": ["missing_date"],
}


def make_bad_corpus(directory: Path, giant_line_bytes: int = 50 * 1024 * 1024) -> dict[str, int]:
    """A corpus directory holding each bad input plus good files; returns good rows expected per century."""
    import polars as pl

    directory.mkdir(parents=True, exist_ok=True)
    write_jsonl(
        directory / "good.jsonl",
        [
            {"id": "g1", "text": GOOD_TEXT, "year": 1850, "title": "Good one"},
            {"id": "g2", "text": GOOD_TEXT + " Second.", "date": "1651-05-02"},
            {"id": "g3", "text": GOOD_TEXT + " Third.", "year_min": 1720, "year_max": 1740},
        ],
    )
    pl.DataFrame(
        {"id": ["p1", "p2"], "text": [GOOD_TEXT + " P1", GOOD_TEXT + " P2"], "year": [1905, 1410]}
    ).write_parquet(directory / "good.parquet")
    (directory / "speech.txt").write_text(GOOD_TEXT + " A speech.", encoding="utf-8")
    (directory / "speech.meta.json").write_text(json.dumps({"date": "c. 1790", "author": "Anon"}), encoding="utf-8")

    (directory / "bad_utf8.jsonl").write_bytes(b'{"id": "u1", "text": "caf\xe9 \xff\xfe", "year": 1800}\n')
    (directory / "binary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (directory / "empty.jsonl").write_bytes(b"")
    write_jsonl(directory / "empty_text.jsonl", [{"id": "e1", "text": "   ", "year": 1800}])
    with (directory / "giant_line.jsonl").open("wb") as handle:
        handle.write(b'{"id": "big", "year": 1800, "text": "')
        block = b"a" * (1024 * 1024)
        for _ in range(giant_line_bytes // len(block)):
            handle.write(block)
        handle.write(b'"}\n')
    (directory / "not_object.jsonl").write_text('[1, 2, 3]\n{"id": "x", "text": \n', encoding="utf-8")
    pl.DataFrame({"body": ["no text column"], "when": [1800]}).write_parquet(directory / "wrong_columns.parquet")
    write_jsonl(
        directory / "dates.jsonl",
        [
            {"id": "d1", "text": GOOD_TEXT},
            {"id": "d2", "text": GOOD_TEXT, "date": "in the reign of good king Cole"},
            {"id": "d3", "text": GOOD_TEXT, "year": 3000},
            {"id": "d4", "text": GOOD_TEXT, "year": -50},
        ],
    )
    write_jsonl(directory / "dup_a.jsonl", [{"id": "same", "text": GOOD_TEXT + " dup", "year": 1950}])
    write_jsonl(directory / "dup_b.jsonl", [{"id": "same", "text": GOOD_TEXT + " dup again", "year": 1950}])
    (directory / "notes.docx").write_bytes(b"PK\x03\x04 not really a docx")
    (directory / "unreadable.jsonl").symlink_to(directory / "does-not-exist")
    (directory / "undated.txt").write_text(GOOD_TEXT, encoding="utf-8")
    # good rows: g1 C019, g2 C017, g3 C018, p1 C020, p2 C015, speech C018, dup_a C020
    return {"C015": 1, "C017": 1, "C018": 2, "C019": 1, "C020": 2}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for servers tests start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_resource(overrides: dict[str, Any] | None = None, **fields: Any):
    """The `settings` resource with settings overrides ({"teacher": {...}}) and any other resource field."""
    from pipelines.resources import SettingsResource

    return SettingsResource(overrides_json=json.dumps(overrides or {}), **fields)


# texts for teacher tests
SERMON = (
    "He that hath two coats, let him impart to him that hath none. Forgive us our debts, as we forgive our debtors. "
    "Thou shalt not steal, neither shalt thou bear false witness against thy neighbour. "
    "The king shall judge the poor with justice, and punish the wicked for their cruelty. "
)
GENEALOGY = "And Arphaxad lived five and thirty years, and begat Salah. And Salah lived thirty years, and begat Eber. "
ADDRESS = (
    "It is the duty of the Government to protect the rights of every citizen, to pay its debts, and to keep faith "
    "with the nations. The liberty of the people must never be sacrificed to the greed of a few. "
)


def pretrain_frame(texts: dict[str, tuple[str, str]], year: int = 1650) -> pl.DataFrame:
    """{doc name: (source, text)} -> PRETRAIN rows."""
    rows = [
        {"text": text, "doc_id": stable_id(source, name), "year": year, "source": source}
        for name, (source, text) in texts.items()
    ]
    return frame_of(rows, PRETRAIN)


def situations_frame(texts: list[str], passage_id: str = "p") -> pl.DataFrame:
    """SITUATIONS rows for the given situation texts (one passage, century C017)."""
    rows = [{"situation_id": stable_id(passage_id, text), "passage_id": passage_id, "century": "C017",
             "situation": text, "teacher_call_id": "c"} for text in texts]  # fmt: skip
    return frame_of(rows, SITUATIONS)


# [issue 16] a ProgressGym HistText tree (src/utils/text_utils.py layout) with one record per problem
HISTTEXT_REASONS = {
    "bc_year": 1,
    "year_out_of_range": 1,
    "year_file_mismatch": 2,
    "empty_text": 1,
    "missing_text": 1,
    "malformed_json": 1,
    "not_an_object": 1,
    "not_a_list": 1,
    "missing_date": 2,  # the two records of undated.json
    "unparseable_date": 1,
}


def make_histtext_tree(root: Path) -> dict[str, int]:
    """`root/dataset_text_sequence/...` in ProgressGym's writer layout; returns good records per century."""
    tree = root / "dataset_text_sequence"

    def year_file(century: str, name: str, lines: list[str]) -> None:
        path = tree / century / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("[\n" + ",\n".join(lines) + "\n]", encoding="utf-8")

    def record(year, content=GOOD_TEXT, **keys) -> str:
        return json.dumps({"content": content, "creation_year": year, "source_dataset": "Project_Gutenberg", **keys})

    year_file(
        "C018",
        "Y01776.json",
        [
            record(1776, title="Common Sense", author="Thomas Paine", url="https://example.org/cs"),
            record(1776, GOOD_TEXT + " Second.", source_dataset="EEBO", culture="English"),
            record(1777, GOOD_TEXT + " Wrong year."),  # year_file_mismatch
            record(1776, ""),  # empty_text
            json.dumps({"creation_year": 1776, "source_dataset": "EEBO"}),  # missing_text
            '{"content": "broken, "creation_year": 1776}',  # malformed_json
            "42",  # not_an_object
            record("circa 1776?"),  # unparseable_date
        ],
    )
    year_file("C019", "Y01805.json", [record(1805, GOOD_TEXT + " Nineteenth.")])
    year_file("C017", "Y01805.json", [record(1805, GOOD_TEXT + " Misfiled.")])  # year_file_mismatch (folder)
    year_file("C000", "Y-0050.json", [record(-50, GOOD_TEXT + " Caesar.")])  # bc_year
    year_file("C012", "Y01150.json", [record(1150, GOOD_TEXT + " Too early.")])  # year_out_of_range
    (tree / "C020").mkdir(parents=True)
    (tree / "C020" / "Y01950.json").write_text(json.dumps({"content": GOOD_TEXT, "creation_year": 1950}))  # not_a_list
    (tree / "undated.json").write_text(
        "[\n"
        + ",\n".join(json.dumps({"content": GOOD_TEXT + f" Undated {i}.", "source_dataset": "EEBO"}) for i in range(2))
        + "\n]",
        encoding="utf-8",
    )
    return {"C018": 2, "C019": 1}


def png_pixels(png: bytes):
    """A plot's pixels as an (h, w, channels) array, so tests look at what was drawn, not only the PNG header."""
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def ink_share(png: bytes, color: tuple[int, int, int]) -> float:
    """Share of a plot's pixels within 40 of `color` in every channel (how much of a bar colour was drawn)."""
    import numpy as np

    pixels = png_pixels(png).astype(int)
    return float((np.abs(pixels - np.array(color)).max(axis=2) < 40).mean())
