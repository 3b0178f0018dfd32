"""ProgressGym's HistText tree: `dataset_text_sequence/C%03d/Y%05d.json` (PKU-Alignment/ProgressGym
src/utils/text_utils.py, `year2path`), century folder `year // 100 + 1` as ours, BC years negative (`Y-0050`),
records whose year could not be found in `dataset_text_sequence/undated.json`.

Each year file is one JSON list (sources/jsonlist.py streams it). A record carries `content` (str),
`creation_year` (int) and `source_dataset` (str), and any other keys; we read `title`, `author`, `language`,
`id`/`source_doc_id`, `year_min`/`year_max`, `date_method`, `date_confidence`, `license` and `provenance` when
present (our own HistText output writes them, so a round trip keeps every column). Reasons of their own: `bc_year`,
`year_file_mismatch` (creation_year vs its Y%05d.json, or the year file in another century's folder).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from sources.base import RawRow
from sources.dates import DateError, DateEstimate, check_year, parse_date
from sources.jsonlist import iter_json_list, write_json_list
from sources.schema import Reject

TREE_DIR = "dataset_text_sequence"
UNDATED_FILE = "undated.json"
_YEAR_FILE = re.compile(r"^Y(-?\d{4,5})\.json$")
_CENTURY_DIR = re.compile(r"^C(-?\d{2,3})$")
_WHOLE_NUMBER = re.compile(r"^\s*(-?\d+)\s*$")
STAGE = "ingest"
METHOD = "field:creation_year"


def year_of_file(path: Path) -> int | None:
    """The year a HistText year file holds (`C019/Y01805.json` -> 1805); None for any other path."""
    match = _YEAR_FILE.match(path.name)
    if match is None or _CENTURY_DIR.match(path.parent.name) is None:
        return None
    return int(match.group(1))


def is_undated_file(path: Path) -> bool:
    """`undated.json` in a HistText tree (in `dataset_text_sequence/`, or beside century folders)."""
    if path.name != UNDATED_FILE:
        return False
    if path.parent.name == TREE_DIR:
        return True
    return any(child.is_dir() and _CENTURY_DIR.match(child.name) for child in path.parent.iterdir())


def is_histtext_file(path: Path) -> bool:
    return year_of_file(path) is not None or is_undated_file(path)


def year_file_path(root: Path, year: int) -> Path:
    """Where ProgressGym keeps `year` below a tree root (`.../dataset_text_sequence`)."""
    return root / f"C{year // 100 + 1:03d}" / f"Y{year:05d}.json"


def write_year_file(path: Path, records: Iterable[dict]) -> int:
    """One year file in ProgressGym's writer layout, atomically (temp file + rename); returns the record count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        count = write_json_list(handle, records)
    tmp.replace(path)
    return count


def read_histtext_file(path: Path, ref: str, *, source: str, max_element_chars: int) -> Iterator[RawRow | Reject]:
    """The records of one year file (or `undated.json`) as raw rows, every problem a reject with its reason.

    `source` names rejects of elements that could not be read (a readable record names its `source_dataset`).
    Records of `undated.json` carry no date, so the base rejects them as `missing_date` or, with `keep_undated`,
    hands them to the date estimator.
    """
    file_year = year_of_file(path)
    folder_problem = _folder_problem(path, file_year)
    with path.open("rb") as handle:
        for item in iter_json_list(handle, max_element_chars):
            row_ref = f"{ref}:{item.line}"
            if item.reason is not None:
                yield Reject.of(
                    row_ref=row_ref, source=source, stage=STAGE, reason=item.reason, detail=item.detail, text=item.text
                )
            elif not isinstance(item.value, dict):
                detail = f"JSON {type(item.value).__name__}, want an object"
                yield Reject.of(
                    row_ref=row_ref, source=source, stage=STAGE, reason="not_an_object", detail=detail, text=item.text
                )
            else:
                yield _row_of(item.value, row_ref, f"{ref}#{item.index}", file_year, folder_problem, source)


def _folder_problem(path: Path, file_year: int | None) -> str | None:
    if file_year is None:
        return None
    want = f"C{file_year // 100 + 1:03d}"
    return None if path.parent.name == want else f"{path.name} sits in {path.parent.name}, not {want}"


def _row_of(
    record: dict, row_ref: str, fallback_id: str, file_year: int | None, folder_problem: str | None, default: str
) -> RawRow | Reject:
    source = _text(record.get("source_dataset")) or default
    content = record.get("content")

    def reject(reason: str, detail: str) -> Reject:
        return Reject.of(
            row_ref=row_ref,
            source=source,
            stage=STAGE,
            reason=reason,
            detail=detail,
            text=content if isinstance(content, str) else "",
        )

    if not isinstance(content, str):
        found = "no `content` key" if content is None else f"`content` is {type(content).__name__}, not a string"
        return reject("missing_text", f"{found}; keys: {sorted(record)[:20]}")
    native_id = _text(record.get("source_doc_id")) or _text(record.get("id"))
    row = RawRow(
        row_ref=row_ref,
        source_doc_id=native_id or fallback_id,
        text=content,
        title=_text(record.get("title")),
        author=_text(record.get("author")),
        language=_text(record.get("language")),
        source=source,
        license=_text(record.get("license")),
        provenance=_text(record.get("provenance")),
    )
    if file_year is None:  # undated.json: the base decides (missing_date, or the date estimator)
        return row
    try:
        row.date = _date_of(record, file_year, folder_problem)
    except DateError as error:
        if error.reason in ("missing_date", "unparseable_date"):
            row.date_fields = {"year": record.get("creation_year")}  # the base rejects or estimates it
            return row
        return reject(error.reason, error.detail)
    return row


def _date_of(record: dict, file_year: int, folder_problem: str | None) -> DateEstimate:
    value = record.get("creation_year")
    if value is None:
        raise DateError("missing_date", "no creation_year")
    try:
        year = _whole_year(value)
    except DateError:
        if not isinstance(value, str):
            raise
        year = parse_date(value).year  # "c. 1805", "1805-03-01": the same forms as a user corpus's date
    if year < 0:
        raise DateError("bc_year", f"creation_year {year} is BC; the partitions start at C013")
    if year != file_year:
        raise DateError("year_file_mismatch", f"creation_year {year} in the file of year {file_year}")
    if folder_problem:
        raise DateError("year_file_mismatch", folder_problem)
    check_year(year, "creation_year")
    low, high = record.get("year_min"), record.get("year_max")
    if not (type(low) is int and type(high) is int and 0 <= low <= year <= high):
        low = high = year
    method = _text(record.get("date_method")) or METHOD
    confidence = record.get("date_confidence")  # our own records: an estimated date keeps its probability
    return DateEstimate(year, low, high, method, float(confidence) if type(confidence) in (int, float) else None)


def _whole_year(value: object) -> int:
    """creation_year is an int in ProgressGym; a whole float or a numeric string is read as one."""
    if isinstance(value, bool):
        raise DateError("unparseable_date", f"creation_year {value!r} is not a year")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (match := _WHOLE_NUMBER.match(value)):
        return int(match.group(1))
    raise DateError("unparseable_date", f"creation_year {value!r} is not a whole year")


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
