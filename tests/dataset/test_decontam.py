import polars as pl

from dataset.decontam import decontaminate, find_contamination
from quality.normalize import normalise
from quality.validation import validate_benchmark_overlap

COPIED = "and the rich man gave his bread unto the poor of the parish every sabbath day"  # 16 words
PRETRAIN = [
    "Long ago, in the reign of the old king, and the Rich Man gave his bread unto the poor of the parish "
    "every Sabbath day, as his father had done.",
]


def bench() -> pl.DataFrame:
    rows = [
        # situation seen verbatim in training -> both of its rows go
        ("b1", "s1", "Forgiving a debt owed by a poor neighbour", "Mercy"),
        ("b2", "s1", "Forgiving a debt owed by a poor neighbour", "Justice"),
        # situation copies 13+ words of a pretrain passage
        ("b3", "s2", f"Remembering how {COPIED}", "Charity"),
        # item copies 13+ words of a training output: only this row goes
        (
            "b4",
            "s3",
            "Sharing bread with a stranger",
            "Duty to share what one has with every stranger who comes to the gate",
        ),
        ("b5", "s3", "Sharing bread with a stranger", "Hospitality"),
        # only 12 shared words, and a generic item that training uses inside longer texts: clean
        ("b6", "s4", "Keeping the old custom: the rich man gave his bread unto the poor of the", "Honesty"),
    ]
    return pl.DataFrame(rows, schema=["candidate_id", "situation_id", "situation", "text"], orient="row")


def training() -> list[str]:
    return [
        "forgiving a debt owed by a POOR neighbour!",
        "[Relevance] Situation: Helping a widow\nValue: Honesty\nIs it relevant to the situation? yes or no",
        "Duty: Duty to share what one has with every stranger who comes to the gate and asks",
        "Value: Honesty",
    ]


def test_crafted_contamination_is_removed_by_rule_and_leaves_zero_overlap():
    result = decontaminate(bench(), {"train": training(), "pretrain": PRETRAIN})
    assert result.clean["candidate_id"].to_list() == ["b5", "b6"]
    assert result.report == {"exact_train": 2, "ngram_pretrain": 1, "ngram_train": 1}
    assert dict(zip(result.removed["candidate_id"], result.removed["rule"], strict=True)) == {
        "b1": "exact_train",
        "b2": "exact_train",
        "b3": "ngram_pretrain",
        "b4": "ngram_train",
    }
    references = {"train": training(), "pretrain": PRETRAIN}
    assert validate_benchmark_overlap(result.clean, find_contamination(result.clean, references, 13)).success
    dirty = validate_benchmark_overlap(bench(), find_contamination(bench(), references, 13))
    assert not dirty.success and dirty.failures == {"benchmark_overlap": 4}


def test_references_are_streamed_once():
    consumed = []

    def stream():
        for text in PRETRAIN:
            consumed.append(text)
            yield text

    decontaminate(bench(), {"pretrain": stream()})
    assert consumed == PRETRAIN


def test_normalise_folds_case_and_compatibility_forms_but_not_spelling():
    # comparison only: the long s folds to s (NFKC), the old spelling stays; stored texts are never changed
    assert normalise("Thou  shalt not STEALE,  ſaith the Lorde.") == "thou shalt not steale saith the lorde"


def test_old_letter_forms_and_whole_text_copies_are_caught():
    long_s = "Bleſſed are the mercifull, for they ſhall obtaine mercy, and bleſſed are the pure in heart alwaies."
    bench = pl.DataFrame(
        {
            "candidate_id": ["a", "b", "c"],
            "situation_id": ["s1", "s2", "s3"],
            "situation": [
                "Saying: blessed are the mercifull for they shall obtaine mercy and blessed are the pure",
                "Copying a whole verse",
                "Something else entirely",
            ],
            "text": ["Mercy", "In the beginning God created the heaven and the earth.", "Piety"],
        }
    )
    pretrain = [long_s, "In the beginning God created the heaven and the earth", None, ""]
    result = decontaminate(bench, {"pretrain": pretrain})
    assert dict(zip(result.removed["candidate_id"], result.removed["rule"], strict=True)) == {
        "a": "ngram_pretrain",
        "b": "exact_pretrain",
    }


# the leak: a benchmark explanation sharing a 13-word run with a vrd train row and an SFT output
JUSTICE = "Justice is a moral obligation that requires the sacrifice of one's own desires and desires for others."


def test_every_text_field_against_every_training_table_including_unpartitioned_preference_pairs(tmp_path):
    """[issue 13] explanation hits count, train rows' items and explanations are references, and preference pairs
    (written unpartitioned) are read: before, `store.read("preference_pairs", "train", missing_ok=True)` was empty."""
    from dataset.splits import benchmark_references
    from sources.schema import MIXTURE, PREFERENCE, VRD_SPLIT, frame_of
    from sources.storage import Store

    store = Store(tmp_path)

    def vrd_row(cid, split, situation, text, explanation):
        return {
            "candidate_id": cid,
            "situation_id": cid,
            "situation": situation,
            "kind": "value",
            "text": text,
            "explanation": explanation,
            "split": split,
            "century": "C017",
            "valence": "supports",
        }

    store.write(
        "vrd_splits",
        frame_of(
            [
                vrd_row("t1", "train", "Paying a fair wage", "Fairness", JUSTICE),
                vrd_row("t2", "validation", "Sparing an enemy", "Clemency in victory over a defeated foe", "Because."),
            ],
            VRD_SPLIT,
        ),
    )
    store.write(
        "sft_mixture",
        frame_of(
            [
                {
                    "example_id": "m1",
                    "task": "explanation",
                    "input": "[Explanation] x",
                    "output": "Honesty builds trust.",
                    "situation_id": "t1",
                    "century": "C017",
                    "split": "train",
                }
            ],
            MIXTURE,
        ),
    )
    rejected = "Value: Loyalty to one's kin above every stranger and every law of the land that is written"
    store.write(
        "preference_pairs",
        frame_of(
            [
                {
                    "pair_id": "p1",
                    "prompt": "Situation: x\nName a value at stake.",
                    "chosen": "Value: Duty",
                    "rejected": rejected,
                    "rejected_reason": "off_topic",
                    "situation_id": "t1",
                    "century": "C017",
                    "chosen_id": "t1",
                    "rejected_id": "t2",
                }
            ],
            PREFERENCE,
        ),
    )
    benchmark = pl.DataFrame(
        [
            ("b1", "s1", "Punishing a thief", "Justice", f"Because {JUSTICE}"),  # explanation: 13-gram of train
            ("b2", "s2", "Sheltering a fugitive", "Clemency in victory over a defeated foe", "It is kind."),  # item
            (
                "b3",
                "s3",
                "Choosing a side",
                "Family",
                "Loyalty to one's kin above every stranger and every law of the land matters",
            ),  # explanation: 13-gram of a preference pair's rejected text
            ("b4", "s4", "Returning a lost purse", "Honesty", "Returning it is honest and right."),  # clean
        ],
        schema=["candidate_id", "situation_id", "situation", "text", "explanation"],
        orient="row",
    )
    result = decontaminate(benchmark, benchmark_references(store))
    removed = {r["candidate_id"]: (r["rule"], r["field"]) for r in result.removed.to_dicts()}
    assert removed == {
        "b1": ("ngram_train", "explanation"),
        "b2": ("exact_train", "text"),
        "b3": ("ngram_train", "explanation"),
    }
    assert result.clean["candidate_id"].to_list() == ["b4"]
    assert all(rule is None for rule in find_contamination(result.clean, benchmark_references(store)))
    assert validate_benchmark_overlap(result.clean, [None]).success
