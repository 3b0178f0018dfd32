"""`chronoprism teacher-compare` with the scripted teacher on a tiny sample of situations."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from pipelines.teacher_compare import overrides_of
from sources.storage import Store
from tests.quality.generated_tables import situations


@pytest.fixture
def with_situations(home):
    store = Store(home)
    store.write("situations", situations(5, "C017"), "C017")
    store.write("situations", situations(5, "C019", "Refusing to pay a debt {i}", prefix="t"), "C019")
    return home


def compare(capsys, *args: str) -> str:
    assert main(["teacher-compare", *args]) == 0
    return capsys.readouterr().out


def test_the_same_configuration_agrees_with_itself(with_situations, capsys):
    report = json.loads(compare(capsys, "backend=scripted", "backend=scripted", "--situations", "6", "--json"))
    assert report["situations"] == 6 and sum(report["centuries"].values()) == 6
    g = report["agreement"]
    assert g["shared"] == g["items_a"] == g["items_b"] > 0 and g["valence_agreement"] == 1.0
    assert report["a"]["stats"] == report["b"]["stats"]
    assert report["a"]["cost"]["backend_calls"] > 0 and report["b"]["cost"]["backend_calls"] == 0  # shared cache


def test_sampling_and_overgeneration_change_the_items(with_situations, tmp_path, capsys):
    toml = tmp_path / "b.toml"
    toml.write_text("[teacher]\nbackend = 'scripted'\nvrd_samples = 3\nsample_temperature = 0.9\n")
    report = json.loads(compare(capsys, "teacher.backend=scripted", str(toml), "--situations", "0", "--json"))
    a, b = report["a"]["stats"]["kinds"], report["b"]["stats"]["kinds"]
    assert report["situations"] == 10
    assert all(a[kind]["n_items"] == 10 for kind in a)  # one greedy item per situation and kind
    assert all(b[kind]["n_items"] > a[kind]["n_items"] for kind in b)  # three samples, some repeating
    g = report["agreement"]
    assert g["shared"] == g["items_a"] < g["items_b"]  # B's first sample is A's greedy answer
    assert 0 < g["item_jaccard"] < 1

    text = compare(capsys, "backend=scripted", str(toml), "--situations", "4", "--partition", "C019")
    assert text.startswith("4 situations (C019 4)")
    assert "value distinct texts" in text and "agreement:" in text and "same valence" in text


def test_bad_configurations_and_an_empty_home_say_why(home, capsys):
    assert main(["teacher-compare", "backend=scripted", "backend=scripted"]) == 2
    assert "build --select situations" in capsys.readouterr().err
    Store(home).write("situations", situations(2, "C017"), "C017")
    assert main(["teacher-compare", "backend=scripted", "backend=nonsense"]) == 2
    assert "bad configuration" in capsys.readouterr().err
    assert overrides_of("model=x temperature=0.5,collapse.blocking=true") == {
        "teacher.model": "x",
        "teacher.temperature": 0.5,
        "collapse.blocking": True,
    }
