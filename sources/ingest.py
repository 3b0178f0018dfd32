"""[issue 14] Ingest of one source streamed into its raw table: pieces of a bounded size, written as row groups.

The raw table is never one frame: each piece of `read_source_batches` is written and dropped. What the asset reports
(stats, rejects, per-century counts) is gathered on the way; rejects and undated rows are kept, being few or small.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from sources.base import STAGE
from sources.registry import SourceSpec, read_source_batches
from sources.schema import REJECTS, UNDATED, empty
from sources.settings import Settings
from sources.stats import StageStats
from sources.storage import TableWriter

Progress = Callable[[int, int], None]  # (documents done, bytes of text done)


@dataclass(slots=True)
class IngestResult:
    stats: StageStats
    rejects: pl.DataFrame
    undated: pl.DataFrame  # [issue 9]
    rows_per_century: Counter = field(default_factory=Counter)
    chars_per_century: Counter = field(default_factory=Counter)


def ingest_source(
    spec: SourceSpec, settings: Settings, out: TableWriter, batch_bytes: int | None, progress: Progress | None = None
) -> IngestResult:
    """Read `spec` piece by piece into `out` (an open writer of the raw table)."""
    stats = StageStats(STAGE)
    rejects, undated = [empty(REJECTS)], [empty(UNDATED)]
    rows, chars = Counter(), Counter()
    done_bytes = 0
    for piece in read_source_batches(spec, settings, batch_bytes):
        out.write(piece.documents)
        stats = stats + piece.stats
        rejects.append(piece.rejects)
        undated.append(piece.undated)
        per_century = piece.documents.group_by("century").agg(pl.len(), pl.col("n_chars").sum())
        for century, n, n_chars in per_century.iter_rows():
            rows[century] += n
            chars[century] += n_chars
        done_bytes += int(piece.documents["text"].str.len_bytes().sum() or 0)
        if progress is not None:
            progress(out.height, done_bytes)
    return IngestResult(stats.check(), pl.concat(rejects), pl.concat(undated), rows, chars)
