import polars as pl

from dataset.splits import (
    SplitConfig,
    build_benchmark,
    build_preference_pairs,
    build_sft_mixture,
    build_vrd_rows,
    split_of,
)
from quality.vrd_dedup import dedup_vrd
from sources.schema import PASSAGES, SITUATIONS, VRD, frame_of, stable_id
from sources.stats import counts_by
from tests.vrd_helpers import candidate, candidates_frame, hashed_embed

CONFIG = SplitConfig(validation_fraction=0.2, test_fraction=0.2)


def world(n: int, start: int = 0):
    situations, candidates = [], []
    for i in range(start, start + n):
        sid = stable_id("s", i)
        situations.append(
            {
                "situation_id": sid,
                "passage_id": f"p{i}",
                "century": "C017",
                "situation": f"Situation number {i}",
                "teacher_call_id": "c",
            }
        )
        candidates += [
            candidate(sid, "value", f"Mercy {i}", "supports", 0.9),
            candidate(sid, "value", f"Mercy {i}!", "supports", 0.6),  # near-duplicate of the first
            candidate(sid, "value", f"Thrift {i}", "opposes", 0.8),
            candidate(sid, "duty", f"Pay debts {i}", "either", 0.7),
            candidate(sid, "value", f"Astronomy {i}", "either", 0.1),  # irrelevant
        ]
    return frame_of(situations, SITUATIONS), candidates_frame(candidates)


def kept_rows(situations, candidates, config=CONFIG):
    relevant = candidates.filter(pl.col("relevance") >= 0.5)
    result = dedup_vrd(relevant, hashed_embed)
    passages = frame_of([{"passage_id": p, "doc_id": f"doc-{p}"} for p in situations["passage_id"]], PASSAGES)
    return build_vrd_rows(result.vrd, situations, passages, config), result.rejects


def test_split_is_a_function_of_the_situation_id_only():
    old_situations, old_candidates = world(60)
    old, _ = kept_rows(old_situations, old_candidates)
    new_situations, new_candidates = world(40, start=60)
    grown, _ = kept_rows(pl.concat([old_situations, new_situations]), pl.concat([old_candidates, new_candidates]))
    before = dict(old.select("situation_id", "split").unique().iter_rows())
    after = dict(grown.select("situation_id", "split").unique().iter_rows())
    assert all(after[sid] == split for sid, split in before.items())
    assert set(after.values()) == {"train", "validation", "test"}
    shares = pl.Series(list(after.values())).value_counts(normalize=True)
    assert all(0.05 < share < 0.75 for share in shares["proportion"])
    assert split_of("x", SplitConfig(salt="a")) in ("train", "validation", "test")


def test_vrd_rows_carry_lineage():
    situations, candidates = world(5)
    rows, _ = kept_rows(situations, candidates)
    assert rows.height == 5 * 3 and rows["doc_id"].null_count() == 0
    assert set(rows.columns) >= {"situation", "century", "doc_id", "passage_id", "split"}
    assert rows.schema["relevance"] == VRD["relevance"]


def test_sft_mixture_has_the_four_tasks_balanced_negatives_and_no_test_rows():
    situations, candidates = world(30)
    rows, _ = kept_rows(situations, candidates)
    mixture = build_sft_mixture(rows, CONFIG)
    assert set(mixture["task"]) == {"generate", "relevance", "valence", "explanation"}
    assert set(mixture["split"]) <= {"train", "validation"}
    test_situations = set(rows.filter(pl.col("split") == "test")["situation_id"])
    assert not test_situations & set(mixture["situation_id"])
    relevance = mixture.filter(pl.col("task") == "relevance")
    counts = counts_by(relevance, "output")
    assert counts["yes"] == counts["no"] == rows.filter(pl.col("split") != "test").height
    for row in relevance.filter(pl.col("output") == "no").iter_rows(named=True):
        number = row["input"].split("Situation: Situation number ")[1].split("\n")[0]
        assert f" {number}\n" not in row["input"].split("\n", 1)[1] + "\n"  # the negative came from elsewhere
    generate = mixture.filter(pl.col("task") == "generate").row(0, named=True)
    assert generate["output"].count("\n") == 2 and "Value: " in generate["output"]
    assert mixture["example_id"].is_unique().all()
    assert build_sft_mixture(rows, CONFIG).equals(mixture)  # deterministic


def test_preference_pairs_use_filtered_candidates_of_training_situations():
    situations, candidates = world(20)
    rows, dedup_rejects = kept_rows(situations, candidates)
    irrelevant = candidates.filter(pl.col("relevance") < 0.5).select(
        pl.col("candidate_id").alias("row_ref"), pl.lit("irrelevant").alias("reason"), pl.lit("").alias("detail")
    )
    rejects = pl.concat([irrelevant, dedup_rejects.select("row_ref", "reason", "detail")])
    pairs = build_preference_pairs(rows, candidates, rejects)
    train = set(rows.filter(pl.col("split") == "train")["situation_id"])
    assert set(pairs["situation_id"]) == train
    assert counts_by(pairs, "rejected_reason") == {
        "irrelevant": len(train),
        "near_duplicate": len(train),
    }
    dup = pairs.filter(pl.col("rejected_reason") == "near_duplicate").row(0, named=True)
    assert "Already named: Value: Mercy" in dup["prompt"] and dup["chosen"].startswith("Value: Thrift")
    assert dup["rejected"].startswith("Value: Mercy") and dup["rejected"].endswith("!")


def test_situations_without_filtered_candidates_get_an_off_topic_pair():
    situations, candidates = world(20)
    rows, _ = kept_rows(situations, candidates)
    nothing_filtered = pl.DataFrame(schema={"row_ref": pl.String, "reason": pl.String, "detail": pl.String})
    kept_only = candidates.filter(pl.col("candidate_id").is_in(rows["candidate_id"].to_list()))
    pairs = build_preference_pairs(rows, kept_only, nothing_filtered)
    train = rows.filter(pl.col("split") == "train")
    assert set(pairs["situation_id"]) == set(train["situation_id"])
    assert set(pairs["rejected_reason"]) == {"off_topic"}
    situation_of = dict(zip(train["candidate_id"], train["situation_id"], strict=True))
    for pair in pairs.iter_rows(named=True):
        assert situation_of[pair["chosen_id"]] == pair["situation_id"] != situation_of[pair["rejected_id"]]


def test_benchmark_is_the_test_split():
    situations, candidates = world(30)
    rows, _ = kept_rows(situations, candidates)
    bench = build_benchmark(rows)
    assert bench.height == rows.filter(pl.col("split") == "test").height > 0
    assert "split" not in bench.columns


def grouped_world(n_chapters: int = 40):
    """[issue 13] Content groups that span several situations: each Bible chapter in three editions of three
    centuries (one passage each, two situations on the KJV passage), and a user document of two passages."""
    from sources.schema import doc_id_of

    situations, passages, documents, candidates = [], [], [], []

    def add(doc_id, passage_id, century, i):
        sid = stable_id("s", passage_id, i)
        situations.append(
            {
                "situation_id": sid,
                "passage_id": passage_id,
                "century": century,
                "situation": f"Situation {passage_id} {i}",
                "teacher_call_id": "c",
            }
        )
        candidates.extend(
            [
                candidate(sid, "value", f"Mercy {passage_id} {i}", "supports", 0.9),
                candidate(sid, "value", f"Thrift {passage_id} {i}", "opposes", 0.8),
            ]
        )

    for chapter in range(n_chapters):
        for code, century in (("wyc", "C014"), ("kjv", "C017"), ("web", "C021")):
            source_doc_id = f"{code}/01.{chapter + 1:03d}"
            doc_id = doc_id_of("bible", source_doc_id)
            documents.append({"doc_id": doc_id, "source": "bible", "source_doc_id": source_doc_id})
            passages.append({"passage_id": f"{code}-{chapter}", "doc_id": doc_id})
            for i in range(2 if code == "kjv" else 1):
                add(doc_id, f"{code}-{chapter}", century, i)
    letters = doc_id_of("user:letters", "letter-1")
    documents.append({"doc_id": letters, "source": "user:letters", "source_doc_id": "letter-1"})
    for part in range(2):
        passages.append({"passage_id": f"letter-{part}", "doc_id": letters})
        add(letters, f"letter-{part}", "C018", 0)
    return (
        frame_of(situations, SITUATIONS),
        frame_of(passages, PASSAGES),
        pl.DataFrame(documents),
        candidates_frame(candidates),
    )


def assert_no_group_spans_two_splits(rows: pl.DataFrame, documents: pl.DataFrame) -> None:
    from dataset.splits import group_keys

    keyed = rows.with_columns(group_keys(rows, documents))
    per_group = keyed.group_by("group_key").agg(pl.col("split").n_unique().alias("n"))
    assert per_group.filter(pl.col("n") > 1).is_empty(), per_group.filter(pl.col("n") > 1)


def test_a_bible_chapter_in_every_edition_and_a_document_keep_one_split():
    situations, passages, documents, candidates = grouped_world()
    result = dedup_vrd(candidates, hashed_embed)
    rows = build_vrd_rows(result.vrd, situations, passages, CONFIG, documents)
    assert_no_group_spans_two_splits(rows, documents)
    chapter = rows.filter(pl.col("passage_id").str.ends_with("-7"))
    assert chapter["century"].n_unique() == 3 and chapter["split"].n_unique() == 1
    assert rows.filter(pl.col("passage_id").str.starts_with("letter"))["split"].n_unique() == 1
    assert set(rows["split"]) == {"train", "validation", "test"}  # 41 groups still reach every split
    # deterministic, and without the documents table (no source_doc_id) a chapter's editions split apart again
    assert build_vrd_rows(result.vrd, situations, passages, CONFIG, documents).equals(rows)
    by_document = build_vrd_rows(result.vrd, situations, passages, CONFIG)
    per_chapter = by_document.with_columns(pl.col("passage_id").str.split("-").list.last().alias("chapter"))
    assert per_chapter.group_by("chapter").agg(pl.col("split").n_unique())["split"].max() > 1
    # preference pairs come from train groups only, so they never share a group with the benchmark
    pairs = build_preference_pairs(rows, candidates, result.rejects)
    train_situations = set(rows.filter(pl.col("split") == "train")["situation_id"])
    assert pairs.height > 0 and set(pairs["situation_id"]) <= train_situations
    from dataset.splits import group_keys

    keyed = rows.with_columns(group_keys(rows, documents))
    benchmark_groups = set(keyed.filter(pl.col("split") == "test")["group_key"])
    paired_groups = set(keyed.filter(pl.col("situation_id").is_in(pairs["situation_id"].to_list()))["group_key"])
    assert benchmark_groups and paired_groups and not paired_groups & benchmark_groups


def test_few_groups_still_give_a_benchmark_and_a_validation_split():
    from dataset.splits import assign_splits, position_of

    config = SplitConfig()
    keys = [f"bible:01.{i:03d}" for i in range(40)]
    plain = {key: split_of(key, config) for key in keys}
    few = [key for key in keys if plain[key] == "train"][:5]  # five groups that hashing alone puts all in train
    splits = assign_splits(few, config)
    assert sorted(splits.values()).count("test") == 1 and sorted(splits.values()).count("validation") == 1
    moved = sorted(few, key=lambda key: position_of(key, config))[:2]
    assert {splits[moved[0]], splits[moved[1]]} == {"test", "validation"}  # the two nearest the range start
    assert assign_splits(few, config) == splits  # deterministic
    assert assign_splits(keys, config) == plain  # enough groups: hashing alone decides, nothing moves
    assert set(assign_splits(few[:2], config).values()) == {"train"}  # two groups: nothing to hold out
