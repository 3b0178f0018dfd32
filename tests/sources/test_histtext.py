from collections import Counter
from pathlib import Path

import polars as pl

from sources.histtext import is_histtext_file, year_file_path, year_of_file
from sources.user_corpus import UserCorpusReader
from tests.helpers import GOOD_TEXT, HISTTEXT_REASONS, make_histtext_tree, write_jsonl


def test_histtext_tree_anywhere_below_the_corpus_dir_is_read_with_every_reason(tmp_path):
    corpus = tmp_path / "corpus"
    expected = make_histtext_tree(corpus / "downloads" / "ProgressGym" / "dataset")
    write_jsonl(corpus / "letters.jsonl", [{"id": "l1", "text": GOOD_TEXT, "year": 1850}])
    result = UserCorpusReader(corpus).read()

    assert result.stats.n_in == result.documents.height + result.rejects.height  # every record accounted for
    by_century = dict(result.documents.filter(pl.col("source") != "user:corpus").group_by("century").len().iter_rows())
    assert by_century == expected
    assert Counter(result.rejects["reason"]) == HISTTEXT_REASONS
    assert result.documents.filter(pl.col("source") == "user:corpus")["century"].to_list() == ["C019"]
    assert all(
        ref.startswith("downloads/ProgressGym/dataset/dataset_text_sequence/") for ref in result.rejects["row_ref"]
    )


def test_provenance_and_century_come_from_the_record(tmp_path):
    make_histtext_tree(tmp_path)
    documents = UserCorpusReader(tmp_path).read().documents.sort("year", "source")
    paine = documents.filter(pl.col("title") == "Common Sense").row(0, named=True)
    assert paine["source"] == "Project_Gutenberg" and paine["author"] == "Thomas Paine"
    assert paine["year"] == 1776 and paine["century"] == "C018" and paine["date_method"] == "field:creation_year"
    assert paine["source_doc_id"] == "dataset_text_sequence/C018/Y01776.json#0"
    assert documents["source"].to_list() == ["EEBO", "Project_Gutenberg", "Project_Gutenberg"]


def test_undated_records_go_to_the_date_estimator_when_asked(tmp_path):
    make_histtext_tree(tmp_path)
    result = UserCorpusReader(tmp_path, keep_undated=True).read()
    assert result.undated["reason"].to_list() == ["unparseable_date", "missing_date", "missing_date"]
    assert result.undated["source"].to_list() == ["Project_Gutenberg", "EEBO", "EEBO"]
    assert "missing_date" not in set(result.rejects["reason"])
    assert result.stats.n_in == result.documents.height + result.rejects.height + result.undated.height


def test_layout_helpers_match_progressgym():
    assert year_file_path(Path("t"), 1776).as_posix() == "t/C018/Y01776.json"
    assert year_file_path(Path("t"), -50).as_posix() == "t/C000/Y-0050.json"
    assert year_of_file(year_file_path(Path("t"), 1305)) == 1305
    assert year_of_file(Path("C018/notes.json")) is None


def test_a_json_file_outside_a_tree_is_unsupported(tmp_path):
    (tmp_path / "data.json").write_text('[{"content": "x", "creation_year": 1800}]')
    assert not is_histtext_file(tmp_path / "data.json")
    result = UserCorpusReader(tmp_path).read()
    assert result.rejects["reason"].to_list() == ["unsupported_file_type"]
