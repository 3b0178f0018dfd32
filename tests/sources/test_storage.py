"""[issue 14] The streamed side of the Store: batch writes equal one-frame writes, atomic, typed when empty."""

import polars as pl
import pyarrow.parquet as pq
import pytest

from sources.schema import DOCUMENTS, frame_of
from sources.storage import SHARES_ENV, Store, batch_bytes_for, iter_parquet, rows_per_batch
from tests.helpers import make_doc


def docs(n: int, start: int = 0) -> pl.DataFrame:
    return frame_of(
        [make_doc(f"text number {i} " * (i % 7 + 1), source_doc_id=str(i)) for i in range(start, n)], DOCUMENTS
    )


def test_a_table_written_in_batches_reads_back_as_one_frame_with_a_stable_digest(tmp_path):
    store = Store(tmp_path)
    whole = docs(100)
    with store.writer("documents", DOCUMENTS, "C017") as out:
        for start in range(0, 100, 30):
            out.write(whole[start : start + 30])
    assert store.read("documents", "C017").equals(whole)
    assert out.height == 100 and out.head.equals(whole.head(10)) and store.num_rows("documents", "C017") == 100
    with store.writer("again", DOCUMENTS) as again:
        again.write(whole)
    assert again.digest == out.digest  # batch boundaries do not change the data version
    with store.writer("other", DOCUMENTS) as other:
        other.write(whole.head(99))
    assert other.digest != out.digest


def test_a_clustered_table_is_the_stable_sort_of_its_rows_whatever_the_batch_size(tmp_path):
    store = Store(tmp_path)
    rows = frame_of(
        [make_doc(f"text {i}", source_doc_id=str(i), year=1250 + (i * 37) % 770) for i in range(120)], DOCUMENTS
    )
    expected = rows.sort("century", maintain_order=True)
    digests = set()
    for size in (7, 50, 120):  # the batch size follows the memory budget and the build's workers
        with store.writer(f"raw_{size}", DOCUMENTS, cluster_by="century") as out:
            for start in range(0, 120, size):
                out.write(rows[start : start + size])
            assert out.height == min(120, start + size)  # counted as written, for progress
        assert store.read(f"raw_{size}").equals(expected)
        assert out.head.equals(expected.head(10)) and out.height == 120
        digests.add(out.digest)
        meta = pq.ParquetFile(store.table_path(f"raw_{size}")).metadata
        century = meta.schema.to_arrow_schema().get_field_index("century")
        groups = [meta.row_group(i).column(century).statistics for i in range(meta.num_row_groups)]
        assert all(stats.min == stats.max for stats in groups)  # a reader of one century skips the others
    assert len(digests) == 1
    files = sorted(str(p.relative_to(tmp_path / "data")) for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert files == [f"raw_{n}/all.parquet" for n in (120, 50, 7)]  # no spill or temp file left


def test_a_clustered_write_that_fails_keeps_the_old_table_and_leaves_no_spill(tmp_path):
    store = Store(tmp_path)
    store.write("raw", docs(5))
    with pytest.raises(RuntimeError), store.writer("raw", DOCUMENTS, cluster_by="century") as out:
        out.write(docs(3))
        raise RuntimeError("killed mid-write")
    assert store.read("raw").height == 5
    assert [p.name for p in (tmp_path / "data" / "raw").iterdir()] == ["all.parquet"]


def test_batches_come_back_in_row_order_and_about_the_asked_size(tmp_path):
    store = Store(tmp_path)
    whole = docs(200)
    with store.writer("documents", DOCUMENTS, "C017") as out:
        out.write(whole)
    parts = list(store.batches("documents", "C017", schema=DOCUMENTS, batch_bytes=2_000))
    assert len(parts) > 5 and pl.concat(parts).equals(whole)
    assert rows_per_batch([store.table_path("documents", "C017")], 2_000) == parts[0].height


def test_an_empty_write_is_a_typed_table_and_a_failed_write_keeps_the_old_file(tmp_path):
    store = Store(tmp_path)
    with store.writer("documents", DOCUMENTS, "C017"):
        pass
    assert store.read("documents", "C017").schema == pl.Schema(DOCUMENTS)
    assert [b.height for b in iter_parquet(store.table_path("documents", "C017"), DOCUMENTS)] == [0]
    store.write("documents", docs(5), "C018")
    with pytest.raises(RuntimeError), store.writer("documents", DOCUMENTS, "C018") as out:
        out.write(docs(3))
        raise RuntimeError("killed mid-write")
    assert store.read("documents", "C018").height == 5
    assert not [p for p in (tmp_path / "data" / "documents").iterdir() if p.name.endswith(".tmp")]
    assert list(store.batches("missing", schema=DOCUMENTS, missing_ok=True))[0].height == 0


def test_the_batch_size_derives_from_the_memory_budget_shared_by_the_build_workers(monkeypatch):
    monkeypatch.delenv(SHARES_ENV, raising=False)
    assert batch_bytes_for(4) == 64 << 20  # outside a build: one process has the whole budget
    assert batch_bytes_for(8) == 2 * batch_bytes_for(4)
    assert batch_bytes_for(4, shares=2) == 32 << 20
    monkeypatch.setenv(SHARES_ENV, "4")  # what `chronoprism build --workers 4` sets
    assert batch_bytes_for(4) == 16 << 20
    assert batch_bytes_for(0.0001) == 1 << 20  # never below 1 MiB
