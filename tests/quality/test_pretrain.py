"""Pretraining rows in ProgressGym's shape, token counts with the SmolLM2 tokenizer, and the per-century chart."""

import pytest

from quality.pretrain import build_pretrain, century_bar_chart
from quality.tokens import count_tokens, teacher_tokenizer
from sources.schema import DOCUMENTS, PRETRAIN, frame_of
from tests.helpers import ink_share, make_doc


@pytest.fixture(scope="module")
def tokenizer(models_dir):
    return teacher_tokenizer(models_dir)


def test_pretrain_rows_and_summary(tokenizer):
    docs = frame_of(
        [
            make_doc("Hwæt! We Gardena in geardagum, þeodcyninga, þrym gefrunon.", source="poems", year=1650),
            make_doc("And God said, Let there be light: and there was light.", source="bible", year=1611),
            make_doc("Fellow-Citizens of the Senate and House of Representatives.", source="sotu", year=1620),
        ],
        DOCUMENTS,
    )
    result = build_pretrain(docs, tokenizer)
    assert list(result.corpus.schema) == list(PRETRAIN) and result.corpus["year"].to_list() == [1611, 1620, 1650]
    assert result.summary["docs"] == 3 and result.summary["chars"] == sum(docs["n_chars"])
    assert 20 < result.summary["tokens"] < 100
    assert result.summary["by_source"]["bible"]["docs"] == 1
    assert result.stats.n_in == result.stats.n_out == 3


def test_token_counts_match_encoding(tokenizer):
    texts = ["Thou shalt not kill.", "", "ſhall þe"]
    counts = count_tokens(texts, tokenizer, batch_size=2)
    assert counts.tolist() == [len(tokenizer.encode(t, add_special_tokens=False).ids) for t in texts]
    assert counts[1] == 0


def test_chart_draws_the_bars_and_the_highlight():
    png = century_bar_chart({"C017": {"docs": 3, "tokens": 900}, "C019": {"docs": 5}}, highlight="C017")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    dark, light = (0x2B, 0x5D, 0x8A), (0x8F, 0xB3, 0xD4)  # the highlighted century and the others
    assert ink_share(png, dark) > 0.005 and ink_share(png, light) > 0.005
    plain = century_bar_chart({"C017": {"docs": 3, "tokens": 900}, "C019": {"docs": 5}})
    assert ink_share(plain, dark) < ink_share(png, dark) / 10  # no highlight: no dark bar
    taller = century_bar_chart({"C017": {"docs": 30, "tokens": 900}, "C019": {"docs": 5}}, highlight="C017")
    assert ink_share(taller, dark) > ink_share(png, dark)  # the bar grows with its value
