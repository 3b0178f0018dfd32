from collections import Counter

import polars as pl

from sources.stats import counts_by
from sources.user_corpus import UserCorpusReader
from tests.helpers import BAD_CORPUS_REASONS, GOOD_TEXT, make_bad_corpus, write_jsonl


def test_every_bad_input_is_rejected_with_its_reason_and_good_rows_survive(tmp_path):
    expected_good = make_bad_corpus(tmp_path / "corpus", giant_line_bytes=8 * 1024 * 1024)
    reader = UserCorpusReader(tmp_path / "corpus", max_line_chars=1_000_000)
    result = reader.read()

    assert result.stats.n_in == result.documents.height + result.rejects.height
    centuries = counts_by(result.documents, "century")
    assert centuries == expected_good
    for file_name, reasons in BAD_CORPUS_REASONS.items():
        found = result.rejects.filter(pl.col("row_ref").str.starts_with(file_name))["reason"].to_list()
        assert sorted(found) == sorted(reasons), file_name
    assert all(len(snippet) <= 200 for snippet in result.rejects["snippet"])
    assert result.rejects["source"].unique().to_list() == ["user:corpus"]


def test_duplicate_id_detail_names_the_first_occurrence(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "text": GOOD_TEXT, "year": 1800}])
    write_jsonl(tmp_path / "b.jsonl", [{"id": "x", "text": GOOD_TEXT, "year": 1801}])
    result = UserCorpusReader(tmp_path).read()
    assert result.documents["source_doc_id"].to_list() == ["x"]
    (detail,) = result.rejects["detail"].to_list()
    assert "a.jsonl:1" in detail


def test_rows_get_provenance_fields_and_stable_ids(tmp_path):
    write_jsonl(
        tmp_path / "a.jsonl",
        [{"id": "x", "text": GOOD_TEXT, "year": 1800, "source": "letters", "language": "en", "author": "A. Writer"}],
    )
    first = UserCorpusReader(tmp_path).read().documents
    second = UserCorpusReader(tmp_path).read().documents
    assert first.equals(second)
    row = first.row(0, named=True)
    assert row["source"] == "letters" and row["author"] == "A. Writer" and row["century"] == "C019"
    assert row["provenance"] == f"file://{tmp_path.resolve()}"


def test_missing_directory_is_one_reject(tmp_path):
    result = UserCorpusReader(tmp_path / "nope").read()
    assert result.documents.height == 0
    assert Counter(result.rejects["reason"]) == {"missing_corpus_dir": 1}
