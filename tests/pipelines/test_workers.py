"""[issue 14] `chronoprism build --workers N`: the centuries of document stages (and of the teacher's stages, when
its pool holds several steps) run in parallel processes, and every table comes out the same as with one worker."""

import random

import polars as pl
import pyarrow.parquet as pq

from tests.helpers import write_jsonl
from tests.pipelines.test_cli import run_cli

WORDS = [
    "truth",
    "universally",
    "acknowledged",
    "single",
    "man",
    "possession",
    "good",
    "fortune",
    "must",
    "want",
    "wife",
    "however",
    "little",
    "known",
    "feelings",
    "views",
    "such",
    "may",
    "first",
    "entering",
    "neighbourhood",
    "fixed",
    "minds",
    "surrounding",
    "families",
    "considered",
    "rightful",
    "property",
    "some",
    "other",
    "their",
    "daughters",
    "letter",
    "signed",
    "year",
    "house",
    "river",
    "field",
    "morning",
    "evening",
    "winter",
    "summer",
    "road",
    "town",
]


def corpus(directory):
    rng = random.Random(14)
    rows = []
    for i in range(36):
        text = " ".join(rng.choice(WORDS) for _ in range(60 + i)) + "."
        rows.append({"id": f"l{i}", "text": text, "year": 1600 + 11 * i})
    rows.append({"id": "copy", "text": rows[3]["text"].replace(" ", "  ", 1) + " Amen.", "year": 1790})  # near-copy
    rows.append({"id": "bad", "text": "", "year": 1700})  # a reject
    write_jsonl(directory / "letters.jsonl", rows)


def tables(home):
    """Every table file of a home (rejects included) as frames, keyed by relative path."""
    data = home / "data"
    return {str(p.relative_to(data)): pl.read_parquet(p) for p in sorted(data.rglob("*.parquet"))}


def test_one_and_two_workers_build_identical_tables(tmp_path, monkeypatch):
    corpus(tmp_path / "corpus")
    monkeypatch.setenv("CHRONOPRISM__TEACHER__BACKEND", '"scripted"')  # a pool of one step per core: parallel too
    built = {}
    for workers in (1, 2):
        home = tmp_path / f"home{workers}"
        out = run_cli(
            home,
            "build",
            "--no-bundled",
            "--corpus",
            str(tmp_path / "corpus"),
            "--select",
            "vrd",
            *("--partition", "C017", "--partition", "C018", "--partition", "C019"),
            "--workers",
            str(workers),
        )
        assert "0 failed" in out.stdout, out.stdout
        built[workers] = tables(home)
    assert built[1].keys() == built[2].keys()
    assert {
        "documents/C018.parquet",
        "documents_clean/C019.parquet",
        "near_duplicate_clusters/all.parquet",
        "situations/C017.parquet",
        "vrd/C019.parquet",
    } <= set(built[1])
    assert built[1]["vrd/C018.parquet"].height > 0
    for name, frame in built[1].items():
        assert frame.equals(built[2][name]), name
    assert built[1]["near_duplicate_clusters/all.parquet"].height == 1
    assert pq.ParquetFile(tmp_path / "home2" / "data" / "documents_dedup" / "C018.parquet").metadata.num_rows > 0
