"""The clean stage on frames: every bad input of the issue, accounting, rejects, and the per-text twin."""

import resource

import polars as pl

from quality.clean import clean_documents, clean_text
from sources.schema import DOCUMENTS, REJECTS, frame_of
from sources.settings import CleanSettings
from tests.helpers import make_doc

PROSE = (
    "Blessed are the poor in spirit: for theirs is the kingdom of heaven.\n"
    "Blessed are they that mourn: for they shall be comforted.\n"
    "Blessed are the meek: for they shall inherit the earth.\n"
    "Blessed are they which do hunger and thirst after righteousness: for they shall be filled."
)


def docs_frame(*texts: str, **fields) -> pl.DataFrame:
    return frame_of([make_doc(t, source_doc_id=f"d{i}", **fields) for i, t in enumerate(texts)], DOCUMENTS)


def test_bad_inputs_get_their_reasons_and_old_norse_survives(saga_text):
    texts = {
        "prose": PROSE,
        "saga": saga_text,
        "empty_after_cleaning": " \u00a0\t\n\u200b\n\ufeff  ",
        "one_char": "a" * 5000,
        "short": "Jesus wept.",
        "wrapped": "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n"
        + PROSE
        + "\n*** END OF THE PROJECT GUTENBERG EBOOK X ***",
    }
    frame = docs_frame(*texts.values())
    result = clean_documents(frame)
    by_id = dict(zip(frame["doc_id"], texts, strict=True))
    reasons = {by_id[r]: reason for r, reason in zip(result.rejects["row_ref"], result.rejects["reason"], strict=True)}
    assert reasons == {"empty_after_cleaning": "empty_text", "one_char": "repeated_characters", "short": "too_short"}
    kept = dict(zip((by_id[d] for d in result.documents["doc_id"]), result.documents["text"], strict=True))
    assert set(kept) == {"prose", "saga", "wrapped"}
    assert kept["wrapped"] == PROSE and result.changed["gutenberg_stripped"] == 1
    assert "þ" in kept["saga"] and "ð" in kept["saga"]  # Old Norse letters untouched
    assert result.documents["n_chars"].to_list() == [len(t) for t in result.documents["text"]]
    assert set(result.rejects["stage"]) == {"clean"} and result.rejects.schema == pl.Schema(REJECTS)
    stats = result.stats
    assert stats.n_in == 6 and stats.n_out == 3 and stats.n_rejected == 3  # check() ran inside


def test_fifty_megabyte_document_is_rejected_without_copies():
    big = "All work and no play makes Jack a dull boy. " * (50 * 1024 * 1024 // 44)
    frame = docs_frame(PROSE, big)
    del big
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    result = clean_documents(frame)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.rejects["reason"].to_list() == ["too_large"]
    assert result.rejects["detail"][0].startswith("n_chars 52428") and len(result.rejects["snippet"][0]) <= 200
    assert result.documents.height == 1
    assert grown_mib < 40, f"peak memory grew by {grown_mib:.0f} MiB while cleaning"


def test_thresholds_come_from_settings_and_none_disables():
    short = "Jesus wept. " * 10
    assert clean_documents(docs_frame(short)).stats.rejected == {"too_short": 1}
    assert clean_documents(docs_frame(short), CleanSettings(min_chars=None)).stats.n_out == 1


def test_chunked_run_equals_one_chunk_and_per_text_path(kjv):
    texts = [kjv[key] for key in list(kjv)[:60]] + ["a" * 3000, "x", "\n".join(["Selah."] * 200)]
    frame = docs_frame(*texts)
    whole = clean_documents(frame)
    chunked = clean_documents(frame, chunk_bytes=5000)
    assert whole.documents.equals(chunked.documents) and whole.rejects.equals(chunked.rejects)
    for doc_id, text in zip(frame["doc_id"], texts, strict=True):
        cleaned, drop = clean_text(text)
        if drop is None:
            assert whole.documents.filter(pl.col("doc_id") == doc_id)["text"].item() == cleaned
        else:
            assert whole.rejects.filter(pl.col("row_ref") == doc_id)["reason"].item() == drop.reason


def test_empty_partition_writes_typed_empty_frames():
    result = clean_documents(pl.DataFrame(schema=DOCUMENTS))
    assert result.documents.schema == pl.Schema(DOCUMENTS) and result.rejects.height == 0
    assert result.stats.n_in == 0


def test_cleaning_in_batches_equals_one_call_over_the_partition():  # [issue 14]
    from quality.clean import clean_batches

    texts = [PROSE, "short", PROSE.replace("meek", "gentle") + "\n" * 3, "a" * 5000, PROSE + " Amen."] * 6
    frame = docs_frame(*texts)
    whole = clean_documents(frame)
    seen = []
    pieces = list(
        clean_batches((frame[i : i + 4] for i in range(0, frame.height, 4)), progress=lambda d, b: seen.append(d))
    )
    assert pl.concat([p.documents for p in pieces]).equals(whole.documents)
    assert pl.concat([p.rejects for p in pieces]).equals(whole.rejects)
    stats = pieces[0].stats
    for piece in pieces[1:]:
        stats = stats + piece.stats
    assert (stats.n_in, stats.n_out, dict(stats.rejected)) == (
        whole.stats.n_in,
        whole.stats.n_out,
        dict(whole.stats.rejected),
    )
    assert seen[-1] == frame.height
