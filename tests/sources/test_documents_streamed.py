"""[issue 14] `documents` at corpus scale (DuckDB, out of core, in batches) equals the in-memory assembly."""

import polars as pl

from sources.documents import assemble_documents, write_documents
from sources.schema import DOCUMENTS, frame_of
from sources.storage import Store
from tests.helpers import make_doc


def raw_tables(store: Store) -> list:
    first = [make_doc(f"doc {i} " * (i + 1), source_doc_id=str(i), year=1600 + 7 * i) for i in range(60)]
    second = [make_doc(f"again {i}", source_doc_id=str(i), year=1600 + 7 * i) for i in range(0, 60, 4)]  # same ids
    with store.writer("raw_a", DOCUMENTS) as out:
        for start in range(0, 60, 25):
            out.write(frame_of(first[start : start + 25], DOCUMENTS))
    store.write("raw_b", frame_of(second, DOCUMENTS))
    return [store.table_path("raw_a"), store.table_path("raw_b"), store.table_path("absent")]


def test_streamed_documents_equal_the_in_memory_assembly_for_every_century(tmp_path):
    store = Store(tmp_path)
    paths = raw_tables(store)
    frames = [store.read("raw_a"), store.read("raw_b")]
    for century in ("C013", "C017", "C018", "C019", "C020", "C021"):
        expected, expected_rejects, expected_stats = assemble_documents(frames, century)
        with store.writer("documents", DOCUMENTS, century) as out:
            result = write_documents(paths, century, out, batch_bytes=300, spill_dir=tmp_path / "spill")
        assert store.read("documents", century).equals(expected), century
        assert result.rejects.equals(expected_rejects) and result.stats.n_in == expected_stats.n_in
        assert dict(result.stats.rejected) == dict(expected_stats.rejected)
        assert result.stats.metrics.get("chars", None) is None or (
            result.stats.metrics["chars"].n == expected_stats.metrics["chars"].n
        )
        assert sum(result.rows_per_source.values()) == expected.height
    assert pl.concat([store.read("documents", c) for c in store.partitions("documents")]).height == 60
