"""[issue 16] The field's formats: HistText out (round trip through our reader), Alpaca, ValuePrism, KaleidoSys."""

import json

import polars as pl

from dataset.formats import alpaca_rows, field_configs, write_field_formats, write_histtext
from sources.histtext import TREE_DIR
from sources.jsonlist import iter_json_list
from sources.schema import DOCUMENTS, PRETRAIN, VRD_SPLIT, frame_of
from sources.user_corpus import UserCorpusReader
from tests.helpers import GOOD_TEXT, make_doc

DOCS = [
    make_doc(GOOD_TEXT + " one", source="bible", source_doc_id="KJV/Gen/1", year=1611, title="Genesis 1"),
    make_doc(GOOD_TEXT + " two", source="bible", source_doc_id="KJV/Gen/2", year=1611, author="Tyndale"),
    make_doc(GOOD_TEXT + " three \u00e9\u201c", source="sotu", source_doc_id="1790", year=1790, language="en"),
    make_doc(GOOD_TEXT + " four", source="user:x", source_doc_id="a.jsonl:3", year=1655, year_min=1650,
             year_max=1659, date_method="decade_midpoint", license="CC-BY", provenance="file:///corpus"),
    make_doc(GOOD_TEXT + " five", source="user:x", source_doc_id="u.txt", year=1903, date_method="estimated",
             date_confidence=0.95),
]  # fmt: skip


def pretrain_tables(documents: pl.DataFrame) -> dict[str, pl.DataFrame]:
    rows = documents.select(list(PRETRAIN))
    return {century: rows.filter(pl.col("doc_id").is_in(part["doc_id"])) for (century,), part in
            documents.group_by(["century"])}  # fmt: skip


def test_histtext_out_read_back_by_our_reader_gives_the_same_documents(tmp_path):
    documents = frame_of(DOCS, DOCUMENTS)
    assert write_histtext(tmp_path / "histtext", pretrain_tables(documents), documents) == len(DOCS)
    tree = tmp_path / "histtext" / TREE_DIR
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.json")) == [
        "C017/Y01611.json",
        "C017/Y01655.json",
        "C018/Y01790.json",
        "C020/Y01903.json",
    ]
    first = (tree / "C017" / "Y01611.json").read_text()
    assert first.startswith('[\n{"content": ') and first.endswith("}\n]") and ",\n{" in first  # the writer's layout

    result = UserCorpusReader(tmp_path / "histtext").read()
    assert result.rejects.is_empty()
    assert result.documents.sort("doc_id").equals(documents.sort("doc_id"))


def test_histtext_out_without_the_documents_table_keeps_text_year_and_source(tmp_path):
    documents = frame_of(DOCS, DOCUMENTS)
    write_histtext(tmp_path, pretrain_tables(documents))
    read = UserCorpusReader(tmp_path).read().documents
    assert sorted(read.select("text", "year", "source", "date_method").rows()) == sorted(
        documents.select("text", "year", "source", "date_method").rows()
    )


VRD = pl.DataFrame(
    {
        "candidate_id": ["c1", "c2", "c3"],
        "situation_id": ["s1", "s1", "s2"],
        "century": ["C017", "C017", "C019"],
        "doc_id": ["d1", "d1", "d2"],
        "passage_id": ["p1", "p1", "p2"],
        "situation": ["Forgiving a debt", "Forgiving a debt", "Freeing a slave"],
        "kind": ["value", "duty", "right"],
        "text": ["Compassion", "Duty to help the poor", "Right to liberty"],
        "valence": ["supports", "either", "opposes"],
        "explanation": ["Mercy.", None, "Liberty."],
        "relevance": [0.9, None, 0.7],
        "split": ["train", "train", "test"],
    },
    schema=VRD_SPLIT,
)


def test_valueprism_and_kaleidosys_configs_use_their_names_and_spellings():
    tables = {"vrd": {split: VRD.filter(pl.col("split") == split) for split in ("train", "test")}}
    configs = field_configs(tables)
    prism = configs["valueprism"]["train"]
    assert prism.columns[:5] == ["situation", "vrd", "text", "explanation", "valence"]
    assert prism.select("vrd", "valence").rows() == [("Value", "Supports"), ("Duty", "Either")]
    assert configs["valueprism"]["test"].height == 1
    kaleido = configs["kaleidosys"]["train"]
    assert kaleido.columns[:9] == [
        "action", "vrd", "text", "relevant", "supports", "opposes", "either", "label", "explanation"
    ]  # fmt: skip
    assert kaleido["relevant"].to_list() == [0.9, None] and kaleido["label"].to_list() == ["Supports", "Either"]
    assert kaleido["supports"].null_count() == 2  # the teacher gave labels, not valence probabilities
    assert field_configs({"vrd": {}}) == {}


def test_alpaca_files_and_the_progressgym_config_entry(tmp_path):
    mixture = pl.DataFrame(
        {
            "example_id": ["e2", "e1"],
            "task": ["valence", "generate"],
            "input": ["[Valence] ...", "[Generate] ..."],
            "output": ["supports", "Value: Compassion"],
            "situation_id": ["s1", "s1"],
            "century": ["C017", "C017"],
            "split": ["train", "train"],
        }
    )
    assert alpaca_rows(mixture)[0] == {
        "instruction": "[Generate] ...", "input": "", "output": "Value: Compassion", "task": "generate",
        "century": "C017", "example_id": "e1",
    }  # fmt: skip
    counts = write_field_formats(tmp_path, {"sft_mixture": {"train": mixture}})
    assert counts == {"histtext_records": 0, "alpaca_train": 2, "lm_eval_items": 0}
    with (tmp_path / "histtext" / "chronoprism_sft_train.json").open("rb") as handle:
        assert [item.value["output"] for item in iter_json_list(handle)] == ["Value: Compassion", "supports"]
    entry = json.loads((tmp_path / "histtext" / "abstractions_config.json").read_text())
    assert entry["data_search_paths"][0].endswith("/histtext/")


def test_published_dataset_carries_the_field_formats_and_valueprism_loads_offline(tmp_path):
    import datasets

    from dataset.hf_dataset import CardInfo, write_dataset

    documents = frame_of(DOCS, DOCUMENTS)
    bench = VRD.filter(pl.col("split") == "test").drop("passage_id", "relevance", "split")
    tables = {
        "vrd": {split: VRD.filter(pl.col("split") == split) for split in ("train", "test")},
        "benchmark": {"test": bench},
        "pretrain": pretrain_tables(documents),
    }
    out = tmp_path / "chronoprism"
    write_dataset(out, tables, CardInfo(name="chronoprism"), documents=documents)

    cache = str(tmp_path / "hf_cache")
    prism = datasets.load_dataset(str(out), "valueprism", cache_dir=cache)
    assert set(prism) == {"train", "test"} and prism["train"].num_rows == 2
    assert prism["train"].column_names[:5] == ["situation", "vrd", "text", "explanation", "valence"]
    assert prism["test"][0]["vrd"] == "Right" and prism["test"][0]["valence"] == "Opposes"
    kaleido = datasets.load_dataset(str(out), "kaleidosys", cache_dir=cache)
    assert kaleido["train"]["label"] == ["Supports", "Either"]
    assert datasets.load_dataset(str(out), "vrd", cache_dir=cache)["train"].num_rows == 2  # the others still load

    assert UserCorpusReader(out / "histtext").read().documents.sort("doc_id").equals(documents.sort("doc_id"))
    assert (out / "lm_eval" / "chronoprism_valence.yaml").is_file() and (out / "lm_eval" / "utils.py").is_file()
    card = (out / "README.md").read_text()
    assert "config_name: valueprism" in card and "## The field's formats" in card
    assert "| situation | situation | action |" in card
