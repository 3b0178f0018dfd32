"""Assemble one century partition of `documents` from every source's raw table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sources.schema import DOCUMENTS, REJECTS, Reject, conform, empty, frame_of
from sources.stats import StageStats
from sources.storage import TableWriter, rows_per_batch

STAGE = "documents"


def assemble_documents(raw_tables: list[pl.DataFrame], century: str) -> tuple[pl.DataFrame, pl.DataFrame, StageStats]:
    """Rows of `century` from all raw tables; a doc_id seen again (same source + id from two places) is rejected."""
    stats = StageStats(STAGE)
    frames = [conform(t, DOCUMENTS).filter(pl.col("century") == century) for t in raw_tables]
    rows = pl.concat(frames) if frames else empty(DOCUMENTS)
    stats.n_in = rows.height
    repeated = rows.with_row_index("_order").filter(pl.col("doc_id").is_duplicated())
    first_order = repeated.group_by("doc_id").agg(pl.col("_order").min().alias("_first"))
    dropped = repeated.join(first_order, on="doc_id").filter(pl.col("_order") != pl.col("_first"))
    rejects = [_duplicate_id(row) for row in dropped.iter_rows(named=True)]
    documents = rows.unique(subset="doc_id", keep="first", maintain_order=True).sort("doc_id")
    stats.n_out = documents.height
    if rejects:
        stats.reject("duplicate_id", len(rejects))
    for n_chars in documents["n_chars"]:
        stats.measure("chars", n_chars, "chars")
    return documents, frame_of(rejects, REJECTS), stats.check()


# [issue 14] The same assembly at corpus scale: DuckDB filters the century from every raw table file, finds the
# repeated doc_ids on the id columns alone, and sorts the rest by doc_id out of core under a memory limit; the result
# streams out in batches. Output (rows, order, rejects) equals `assemble_documents` on the same tables.
def assemble_documents_streamed(
    raw_paths: list[Path], century: str, memory_limit_bytes: int, batch_rows: int, spill_dir: Path
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, StageStats]]:
    """Yield (documents batch, rejects, stats) pieces of one century in doc_id order; the stats add up with `+`."""
    import duckdb

    paths = [str(p) for p in raw_paths if p.is_file()]
    if not paths:
        yield empty(DOCUMENTS), empty(REJECTS), StageStats(STAGE)
        return
    spill_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": f"{max(memory_limit_bytes >> 20, 256)}MB"})
    try:
        con.execute(f"SET temp_directory = '{spill_dir}'")
        columns = ", ".join(f'"{name}"' for name in DOCUMENTS)
        union = " UNION ALL ".join(
            f"SELECT {columns}, {i} AS _table, file_row_number AS _row "
            f"FROM read_parquet($p{i}, file_row_number = true) WHERE century = $century"
            for i in range(len(paths))
        )
        params = {"century": century, **{f"p{i}": path for i, path in enumerate(paths)}}
        con.execute(
            "CREATE TEMP TABLE repeated AS SELECT _table, _row FROM ("
            " SELECT _table, _row, row_number() OVER (PARTITION BY doc_id ORDER BY _table, _row) AS _k"
            f" FROM ({union})) WHERE _k > 1",
            params,
        )
        # the text is read once more only when some id repeats (rare): a scan of the text is the costly part
        any_repeated = con.execute("SELECT count(*) FROM repeated").fetchall()[0][0] > 0
        rejects = _repeated_rejects(con, union, params) if any_repeated else empty(REJECTS)
        unique_rows = f"({union}) r ANTI JOIN repeated d USING (_table, _row)" if any_repeated else f"({union})"
        ordered = _arrow_batches(con, f"SELECT {columns} FROM {unique_rows} ORDER BY doc_id", params, batch_rows)
        yielded = False
        for batch in ordered:
            documents = conform(pl.from_arrow(batch), DOCUMENTS)
            stats = StageStats(STAGE, n_in=documents.height + rejects.height, n_out=documents.height)
            if rejects.height:
                stats.reject("duplicate_id", rejects.height)
            stats.measure_many("chars", documents["n_chars"].to_numpy(), "chars")
            yield documents, rejects, stats.check()
            rejects, yielded = empty(REJECTS), True
        if rejects.height or not yielded:  # no document came out: still one (maybe empty) piece with the rejects
            stats = StageStats(STAGE, n_in=rejects.height)
            if rejects.height:
                stats.reject("duplicate_id", rejects.height)
            yield empty(DOCUMENTS), rejects, stats.check()
    finally:
        con.close()


def _repeated_rejects(con, union: str, params: dict) -> pl.DataFrame:
    """A `duplicate_id` reject for every row of the `repeated` temp table, in raw-table order."""
    dropped = _arrow_batches(
        con,
        f"SELECT doc_id, source, source_doc_id, left(text, 400) AS text FROM ({union}) r"
        " SEMI JOIN repeated d USING (_table, _row) ORDER BY _table, _row",
        params,
        1 << 16,
    )
    rows = pl.from_arrow(dropped.read_all()).iter_rows(named=True)
    return frame_of([_duplicate_id(row) for row in rows], REJECTS)


def _duplicate_id(row: dict) -> Reject:
    detail = f"{row['source']} id {row['source_doc_id']!r} was ingested twice"
    return Reject.of_document(row, stage=STAGE, reason="duplicate_id", detail=detail)


def _arrow_batches(con, query: str, params: dict, batch_rows: int):
    """A query's result as Arrow record batches, streamed (DuckDB 2 renamed `fetch_record_batch`)."""
    relation = con.sql(query, params=params)
    if hasattr(relation, "to_arrow_reader"):
        return relation.to_arrow_reader(batch_rows)
    return relation.fetch_arrow_reader(batch_rows)


@dataclass(slots=True)
class DocumentsResult:
    stats: StageStats
    rejects: pl.DataFrame
    rows_per_source: dict[str, int]
    chars_per_source: dict[str, int]


def write_documents(
    raw_paths: list[Path], century: str, out: TableWriter, batch_bytes: int, spill_dir: Path
) -> DocumentsResult:
    """[issue 14] One century of `documents` streamed into `out` (an open writer), in batches of ~`batch_bytes`;
    DuckDB may use four batches' worth of memory for its sort before it spills to `spill_dir`."""
    stats, rejects = StageStats(STAGE), [empty(REJECTS)]
    rows, chars = Counter(), Counter()
    pieces = assemble_documents_streamed(
        raw_paths, century, batch_bytes * 4, rows_per_batch(raw_paths, batch_bytes), spill_dir
    )
    for docs, dropped, piece in pieces:
        out.write(docs)
        stats = stats + piece
        rejects.append(dropped)
        for source, n, n_chars in docs.group_by("source").agg(pl.len(), pl.col("n_chars").sum()).iter_rows():
            rows[source] += n
            chars[source] += n_chars
    return DocumentsResult(stats.check(), pl.concat(rejects), dict(sorted(rows.items())), dict(sorted(chars.items())))
