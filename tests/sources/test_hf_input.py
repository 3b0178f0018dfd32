"""HF datasets as a user corpus: a `save_to_disk` directory and a Hub-style Parquet directory with a card."""

from collections import Counter

import datasets
import polars as pl

from sources.registry import SOURCES, read_source
from sources.settings import Settings
from sources.user_corpus import ColumnMap, UserCorpusReader
from tests.helpers import GOOD_TEXT

COLUMNS = ColumnMap(text_column="body", date_column="written", id_column="key", title_column="name")
ROWS = {
    "key": ["a", "b", "c", "d", "e"],
    "body": [GOOD_TEXT + " A", GOOD_TEXT + " B", GOOD_TEXT + " C", GOOD_TEXT + " D", "  "],
    "written": ["1650-03-01", "c. 1790", None, "in the reign of King Cole", "1800"],
    "name": ["Letter", None, None, None, None],
}
REASONS = {"missing_date": 1, "unparseable_date": 1, "empty_text": 1}


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    datasets.Dataset.from_dict(ROWS).save_to_disk(str(tmp_path / "corpus" / "single"))
    renamed = {**ROWS, "key": [f"split-{key}" for key in ROWS["key"]]}
    train, test = ({k: v[rows] for k, v in renamed.items()} for rows in (slice(0, 2), slice(2, 3)))
    splits = {"train": datasets.Dataset.from_dict(train), "test": datasets.Dataset.from_dict(test)}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "corpus" / "split"))
    result = UserCorpusReader(tmp_path / "corpus", columns=COLUMNS).read()

    assert result.stats.n_in == result.documents.height + result.rejects.height == 5 + 3
    assert Counter(result.rejects["reason"]) == {**REASONS, "missing_date": 2}  # none for state.json & co
    documents = result.documents
    assert sorted(documents["century"].to_list()) == ["C017", "C017", "C018", "C018"]
    assert sorted(documents["source_doc_id"]) == ["a", "b", "split-a", "split-b"]
    letter = documents.filter(pl.col("source_doc_id") == "a").row(0, named=True)
    assert letter["title"] == "Letter" and letter["year"] == 1650 and letter["date_method"] == "field:date"


def test_hub_style_parquet_directory_with_a_card(tmp_path):
    corpus = tmp_path / "hub"
    (corpus / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(ROWS).to_parquet(str(corpus / "data" / "train-00000-of-00001.parquet"))
    (corpus / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files: data/*.parquet\n---\n# x\n"
    )
    result = UserCorpusReader(corpus, columns=COLUMNS).read()
    assert result.documents.height == 2 and Counter(result.rejects["reason"]) == REASONS

    unmapped = UserCorpusReader(corpus).read()  # the default columns (text, year|date) are not there
    assert unmapped.rejects["reason"].to_list() == ["schema_mismatch"]
    assert "body" in unmapped.rejects["detail"][0]


def test_settings_map_the_columns(tmp_path):
    datasets.Dataset.from_dict(ROWS).save_to_disk(str(tmp_path / "ds"))
    settings = Settings.load(
        {
            "corpus.corpus_dirs": [str(tmp_path / "ds")],
            "corpus.text_column": "body",
            "corpus.date_column": "written",
            "corpus.id_column": "key",
        },
        environ={},
    )
    spec = next(spec for spec in SOURCES if spec.name == "user_corpus")
    result = read_source(spec, settings)
    assert sorted(result.documents["source_doc_id"].to_list()) == ["a", "b"]
