"""[issue 14] `executor = "ray"`: clean and near-dup batches as tasks on a real local Ray instance (2 CPUs) give
exactly the tables the local executor gives; so do batches over local worker processes (`--workers`)."""

import numpy as np
import polars as pl
import pytest

from quality.clean import clean_batches
from quality.dedup.documents import find_duplicates
from sources.parallel import WORKERS_ENV, LocalMap, ProcessMap, RayMap, batch_map, batch_map_of
from sources.schema import DOCUMENTS, frame_of
from sources.settings import Settings
from tests.helpers import make_doc


@pytest.fixture(scope="module")
def ray_map():
    ray = pytest.importorskip("ray")  # the dev extra installs it: this runs in `make test`
    mapper = RayMap(num_cpus=2)
    yield mapper
    ray.shutdown()


def corpus() -> pl.DataFrame:
    rng = np.random.default_rng(14)
    vocabulary = [f"w{i}" for i in range(900)]
    texts = [" ".join(rng.choice(vocabulary, 90)) for _ in range(80)]
    texts += [t.replace(t.split()[7], "edited", 1) for t in texts[:15]] + texts[:4] + ["too short", "x" * 400]
    docs = [make_doc(t, source_doc_id=f"d{i}", year=1300 + (i * 53) % 700) for i, t in enumerate(texts)]
    return frame_of(docs, DOCUMENTS)


def batches(frame: pl.DataFrame, rows: int = 9):
    return [frame[i : i + rows] for i in range(0, frame.height, rows)]


def test_clean_on_ray_equals_clean_here(ray_map):
    frame = corpus()
    local = list(clean_batches(batches(frame), mapper=LocalMap()))
    remote = list(clean_batches(batches(frame), mapper=ray_map))
    assert len(remote) == len(local) > 5
    for mine, theirs in zip(local, remote, strict=True):
        assert theirs.documents.equals(mine.documents) and theirs.rejects.equals(mine.rejects)
        assert theirs.stats.to_dict() == mine.stats.to_dict()
    assert sum(r.stats.n_rejected for r in remote) >= 2  # the short and the one-character texts


def test_near_duplicates_on_ray_equal_near_duplicates_here(ray_map, tmp_path):
    frame = corpus()
    local = find_duplicates(lambda: batches(frame), mapper=LocalMap(), spill_dir=tmp_path)
    remote = find_duplicates(lambda: batches(frame), mapper=ray_map, spill_dir=tmp_path)
    assert remote.duplicates.equals(local.duplicates) and remote.summary == local.summary
    assert set(local.duplicates["reason"]) == {"exact_duplicate", "near_duplicate"}


def test_an_unknown_executor_is_a_clear_error():
    with pytest.raises(ValueError, match="use 'local' or 'ray'"):
        batch_map("spark")


def test_near_duplicates_over_worker_processes_equal_near_duplicates_here(tmp_path):
    frame = corpus()
    local = find_duplicates(lambda: batches(frame), mapper=LocalMap(), spill_dir=tmp_path)
    pooled = find_duplicates(lambda: batches(frame), mapper=ProcessMap(2), spill_dir=tmp_path)
    assert pooled.duplicates.equals(local.duplicates) and pooled.summary == local.summary


def test_process_map_keeps_input_order_and_runs_a_single_batch_here():
    assert list(ProcessMap(2).imap(abs, range(-9, 0))) == list(range(9, 0, -1))
    assert list(ProcessMap(2).imap(abs, [-3])) == [3]
    assert list(ProcessMap(2).imap(abs, [])) == []


def test_the_build_worker_count_picks_the_local_map(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "2")
    assert isinstance(batch_map_of(Settings()), ProcessMap)
    monkeypatch.setenv(WORKERS_ENV, "1")
    assert isinstance(batch_map_of(Settings()), LocalMap)
