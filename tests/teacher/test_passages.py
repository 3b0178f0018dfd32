import polars as pl

from teacher.passages import PassageConfig, moral_salience, select_passages, split_spans
from tests.helpers import ADDRESS, GENEALOGY, SERMON


def test_spans_cut_on_sentence_and_line_ends_and_index_the_text():
    text = "  " + SERMON * 2 + "\nA verse on its own line\nand the next verse. " + "word " * 300
    cfg = PassageConfig(target_chars=200, max_chars=400, min_chars=10)
    spans = list(split_spans(text, cfg))
    for span in spans:
        chunk = text[span.start : span.end]
        assert chunk == chunk.strip() and len(chunk) <= cfg.max_chars
    assert text[spans[0].start :].startswith("He that hath two coats")
    ends = [text[s.start : s.end][-5:] for s in spans[:4]]
    assert ends == ["bour.", "tors.", " line", "erse."]  # sentence ends, or a verse line end
    assert len(text[spans[4].start : spans[4].end]) == 399  # a run-on "sentence" is cut at a space
    covered = "".join(text[s.start : s.end] for s in spans)
    assert covered.replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")  # nothing lost


def test_salience_prefers_moral_text_over_genealogies():
    assert moral_salience(SERMON) > moral_salience(ADDRESS) / 2 > moral_salience(GENEALOGY) == 0


def test_selection_round_robins_sources_and_accounts_for_every_document(pretrain):
    frame, rejects, stats = select_passages(pretrain, "C017", PassageConfig(target_chars=250, per_century=3))
    assert frame.height == 3
    docs = dict(zip(pretrain["doc_id"], pretrain["source"], strict=True))
    assert {docs[d] for d in frame["doc_id"]} == {"bible", "sotu"}
    texts = dict(zip(pretrain["doc_id"], pretrain["text"], strict=True))
    for row in frame.iter_rows(named=True):
        assert texts[row["doc_id"]][row["char_start"] : row["char_end"]] == row["text"]
    assert dict(stats.rejected) == {"too_short": 1, "not_selected": 1}
    assert set(rejects["reason"]) == {"too_short", "not_selected"}
    assert stats.n_in == 4 and stats.n_out == 2
    assert frame["passage_id"].n_unique() == 3 and (frame["century"] == "C017").all()


def test_selection_is_deterministic_and_empty_input_is_fine(pretrain):
    cfg = PassageConfig(target_chars=250, per_century=3)
    assert select_passages(pretrain, "C017", cfg)[0].equals(select_passages(pretrain.reverse(), "C017", cfg)[0])
    frame, rejects, stats = select_passages(pretrain.head(0), "C017", cfg)
    assert frame.is_empty() and rejects.is_empty() and stats.n_in == 0
    assert isinstance(frame, pl.DataFrame) and frame.columns[0] == "passage_id"
