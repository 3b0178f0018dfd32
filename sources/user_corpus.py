"""User corpora: a directory of `.jsonl`, `.parquet` and `.txt` files (DESIGN.md §7).

JSONL / Parquet rows need `text` and a date (`year`, `date`, or `year_min` + `year_max`); optional `id`, `title`,
`author`, `language`, `source`. A `.txt` file is one document dated by its sidecar `<name>.meta.json` (same
fields). Every problem becomes a rejects row: undecodable bytes, binary files, empty files, giant lines,
non-object JSON, wrong Parquet columns, unknown extensions, unreadable files, bad or missing dates.
Lines are read with a length limit, so a 50 MB line never sits whole in memory.

[issue 16] The field's formats are recognised anywhere below the directory: a ProgressGym HistText tree
(`dataset_text_sequence/C%03d/Y%05d.json` and `undated.json`, sources/histtext.py), a `datasets.save_to_disk`
directory (`.arrow` files; its `state.json` / `dataset_info.json` / `dataset_dict.json` are layout) and a local HF
dataset directory (Parquet files beside a card `README.md` with YAML front matter, which is layout too). Which
column holds the text, date, id, ... of JSONL, Parquet and Arrow rows is set by `ColumnMap` (corpus.*_column).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sources import histtext
from sources.base import BaseReader, RawRow
from sources.jsonlist import skip_to_newline
from sources.schema import Reject

logger = logging.getLogger(__name__)

SUFFIXES = (".jsonl", ".parquet", ".txt", ".json", ".arrow")
STREAMED_SUFFIXES = (".json", ".arrow")  # [issue 16] read element by element / batch by batch: no file-size limit
HF_LAYOUT_FILES = ("state.json", "dataset_info.json", "dataset_dict.json")  # datasets.save_to_disk metadata
SIDECAR_SUFFIX = ".meta.json"
DATE_FIELDS = ("year", "date", "year_min", "year_max")
BINARY_SNIFF_BYTES = 8192
STAGE = "ingest"
PARQUET_BATCH_ROWS = 4096


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """[issue 16] Which column of a JSONL / Parquet / Arrow row holds what (settings `corpus.*_column`)."""

    text_column: str = "text"
    date_column: str | None = None  # None: `year`, `date`, or `year_min` + `year_max`; else this one, any date form
    id_column: str = "id"
    title_column: str = "title"
    author_column: str = "author"
    language_column: str = "language"
    source_column: str = "source"

    def missing(self, columns: set[str]) -> list[str]:
        """Columns a table needs but lacks (text, and a date)."""
        missing = [] if self.text_column in columns else [self.text_column]
        if self.date_column is not None:
            return missing + ([] if self.date_column in columns else [self.date_column])
        if not ({"year", "date"} & columns or {"year_min", "year_max"} <= columns):
            missing.append("year|date|year_min+year_max")
        return missing

    def date_fields(self, row: dict) -> dict:
        if self.date_column is not None:
            return {"date": row.get(self.date_column)}
        return {key: row.get(key) for key in DATE_FIELDS}


class UserCorpusReader(BaseReader):
    """All supported files under one directory (recursively), in sorted path order for stable ids."""

    license = "as declared by the corpus owner"

    def __init__(
        self,
        directory: str | Path,
        max_docs: int | None = None,
        max_line_chars: int = 5_000_000,
        max_file_bytes: int = 512 * 1024 * 1024,
        keep_undated: bool = False,
        columns: ColumnMap | None = None,
    ):
        super().__init__(max_docs)
        self.columns = columns or ColumnMap()
        self.keep_undated = keep_undated  # [issue 9] undated rows go to the date estimator (corpus.estimate_dates)
        self.directory = Path(directory).expanduser().resolve()
        self.max_line_chars = max_line_chars
        self.max_file_bytes = max_file_bytes
        self.source = f"user:{self.directory.name}"

    @property
    def provenance(self) -> str:
        return f"file://{self.directory}"

    def _reject(self, row_ref: str, reason: str, detail: str, text: str | bytes = "") -> Reject:
        return Reject.of(row_ref=row_ref, source=self.source, stage=STAGE, reason=reason, detail=detail, text=text)

    def iter_raw(self) -> Iterator[RawRow | Reject]:
        if not self.directory.is_dir():
            yield self._reject(str(self.directory), "missing_corpus_dir", "corpus directory does not exist")
            return
        for path in sorted(self.directory.rglob("*")):
            if path.name.endswith(SIDECAR_SUFFIX) or path.name.startswith("."):
                continue
            if path.is_dir() or is_layout_file(path):
                continue
            yield from self._read_file(path)

    def _read_file(self, path: Path) -> Iterator[RawRow | Reject]:
        ref = str(path.relative_to(self.directory))
        suffix = path.suffix.lower()
        if suffix not in SUFFIXES:
            yield self._reject(ref, "unsupported_file_type", f"extension {suffix or '(none)'!r}; want {SUFFIXES}")
            return
        try:
            size = path.stat().st_size
            with path.open("rb") as handle:
                head = handle.read(BINARY_SNIFF_BYTES)
        except OSError as error:
            yield self._reject(ref, "unreadable_file", f"{type(error).__name__}: {error.strerror or error}")
            return
        if size == 0:
            yield self._reject(ref, "empty_file", "file has 0 bytes")
            return
        if size > self.max_file_bytes and suffix not in STREAMED_SUFFIXES:
            yield self._reject(ref, "too_large", f"file has {size} bytes > max_file_bytes {self.max_file_bytes}")
            return
        if suffix == ".json" and not histtext.is_histtext_file(path):
            detail = f"a .json file outside a HistText tree (want {histtext.TREE_DIR}/C%03d/Y%05d.json)"
            yield self._reject(ref, "unsupported_file_type", detail)
            return
        if suffix not in (".parquet", ".arrow") and b"\x00" in head:
            yield self._reject(ref, "binary_file", "NUL bytes in the first 8 KiB: not a text file", head[:200])
            return
        try:
            if suffix == ".jsonl":
                yield from self._read_jsonl(path, ref)
            elif suffix == ".parquet":
                yield from self._read_parquet(path, ref)
            elif suffix == ".json":
                yield from histtext.read_histtext_file(
                    path, ref, source=self.source, max_element_chars=self.max_line_chars
                )
            elif suffix == ".arrow":
                yield from self._read_arrow(path, ref)
            else:
                yield from self._read_txt(path, ref)
        except OSError as error:  # a file that fails mid-read: what was read stays, the rest is one reject
            yield self._reject(ref, "unreadable_file", f"{type(error).__name__} while reading: {error}")

    def _row_of(self, row: dict, ref: str, fallback_id: str) -> RawRow | Reject:
        columns = self.columns
        text = row.get(columns.text_column)
        if text is None:
            return self._reject(ref, "missing_text", f"no `{columns.text_column}` field; fields: {sorted(row)[:20]}")
        if not isinstance(text, str):
            detail = f"`{columns.text_column}` is {type(text).__name__}, not a string"
            return self._reject(ref, "missing_text", detail, str(text))
        native_id = row.get(columns.id_column)
        return RawRow(
            row_ref=ref,
            source_doc_id=str(native_id) if native_id not in (None, "") else fallback_id,
            text=text,
            title=_optional_str(row.get(columns.title_column)),
            author=_optional_str(row.get(columns.author_column)),
            language=_optional_str(row.get(columns.language_column)),
            source=_optional_str(row.get(columns.source_column)),
            date_fields=columns.date_fields(row),
        )

    def _read_jsonl(self, path: Path, ref: str) -> Iterator[RawRow | Reject]:
        limit_bytes = self.max_line_chars * 4 + 1  # UTF-8 is at most 4 bytes a character
        with path.open("rb") as handle:
            line_no = 0
            while True:
                chunk = handle.readline(limit_bytes)
                if not chunk:
                    break
                line_no += 1
                line_ref = f"{ref}:{line_no}"
                if not chunk.endswith(b"\n") and len(chunk) == limit_bytes:
                    skipped = len(chunk) + skip_to_newline(handle)
                    yield self._reject(
                        line_ref,
                        "too_large",
                        f"line of {skipped} bytes > max_line_chars {self.max_line_chars}",
                        chunk[:200],
                    )
                    continue
                if not chunk.strip():
                    continue  # blank lines are layout, not rows
                try:
                    line = chunk.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield self._reject(line_ref, "invalid_utf8", f"byte {error.start}: {error.reason}", chunk)
                    continue
                if len(line) > self.max_line_chars:
                    yield self._reject(
                        line_ref,
                        "too_large",
                        f"line of {len(line)} chars > max_line_chars {self.max_line_chars}",
                        line,
                    )
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    yield self._reject(line_ref, "malformed_json", f"{error.msg} at column {error.colno}", line)
                    continue
                if not isinstance(row, dict):
                    yield self._reject(line_ref, "not_an_object", f"JSON {type(row).__name__}, want an object", line)
                    continue
                yield self._row_of(row, line_ref, fallback_id=line_ref)

    def _read_parquet(self, path: Path, ref: str) -> Iterator[RawRow | Reject]:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:  # pyarrow raises several types for a corrupt file
            yield self._reject(ref, "unreadable_file", f"not a readable Parquet file: {error}")
            return
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
        yield from self._read_batches(ref, parquet.schema_arrow.names, parquet.metadata.num_rows, batches)

    def _read_arrow(self, path: Path, ref: str) -> Iterator[RawRow | Reject]:
        """[issue 16] An Arrow file as `datasets.save_to_disk` writes it (IPC stream), or the IPC file format."""
        import pyarrow as pa

        try:
            source = pa.memory_map(str(path))
            try:
                reader = pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                reader = pa.ipc.open_file(source)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            else:
                batches = iter(reader)
        except Exception as error:  # pyarrow raises several types for a corrupt file
            yield self._reject(ref, "unreadable_file", f"not a readable Arrow file: {error}")
            return
        yield from self._read_batches(ref, reader.schema.names, None, batches)

    def _read_batches(self, ref: str, names: list[str], num_rows: int | None, batches) -> Iterator[RawRow | Reject]:
        """Rows of a columnar file, batch by batch; a file without the mapped text and date columns is one reject."""
        missing = self.columns.missing(set(names))
        if missing:
            rows = "" if num_rows is None else f"{num_rows} rows; "
            yield self._reject(ref, "schema_mismatch", f"{rows}missing columns {missing}; has {sorted(names)[:20]}")
            return
        text_column = self.columns.text_column
        row_no = 0
        for batch in batches:
            for row in batch.to_pylist():
                row_no += 1
                row_ref = f"{ref}#{row_no}"
                text = row.get(text_column)
                if isinstance(text, str) and len(text) > self.max_line_chars:
                    yield self._reject(
                        row_ref, "too_large", f"text of {len(text)} chars > max_line_chars {self.max_line_chars}", text
                    )
                    continue
                yield self._row_of(row, row_ref, fallback_id=row_ref)

    def _read_txt(self, path: Path, ref: str) -> Iterator[RawRow | Reject]:
        sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
        if not sidecar.is_file() and not self.keep_undated:
            yield self._reject(ref, "missing_date", f"no sidecar {sidecar.name} with the text's date")
            return
        try:  # [issue 9] with keep_undated, a text without sidecar is read and left undated for the estimator
            meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            yield self._reject(ref, "malformed_sidecar", f"{sidecar.name}: {error}")
            return
        if not isinstance(meta, dict):
            yield self._reject(ref, "malformed_sidecar", f"{sidecar.name} holds {type(meta).__name__}, want object")
            return
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            yield self._reject(ref, "invalid_utf8", f"byte {error.start}: {error.reason}", data)
            return
        if len(text) > self.max_line_chars:
            yield self._reject(ref, "too_large", f"{len(text)} chars > max_line_chars {self.max_line_chars}", text)
            return
        yield self._row_of({**meta, "text": text}, ref, fallback_id=ref)


def is_layout_file(path: Path) -> bool:
    """[issue 16] Metadata of a HF dataset directory: `save_to_disk`'s JSON files and a dataset card."""
    if path.name in HF_LAYOUT_FILES:
        return path.name == "dataset_dict.json" or any(path.parent.glob("*.arrow"))
    if path.name == "README.md":
        try:
            with path.open("rb") as handle:
                return handle.read(4).startswith(b"---")  # a card's YAML front matter
        except OSError:
            return False
    return False


def _optional_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
