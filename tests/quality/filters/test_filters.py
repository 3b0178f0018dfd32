"""Each rule's reason on tiny hand-written texts, a clean text per filter, and the batch path agreeing with keep()."""

import polars as pl
import pytest

from quality.filters import (
    BoilerplateLineFilter,
    Drop,
    GutenbergFilter,
    LengthFilter,
    NonLetterLineFilter,
    RepetitionFilter,
    build_filters,
    strip_gutenberg,
)
from quality.normalize import normalize_text

PROSE = (
    "And the LORD God said, It is not good that the man should be alone; I will make him an help meet for him.\n"
    "And out of the ground the LORD God formed every beast of the field, and every fowl of the air.\n"
    "And Adam gave names to all cattle, and to the fowl of the air, and to every beast of the field."
)


def reason(rule, text: str) -> str | None:
    verdict = rule.keep(text)
    return None if verdict is True else verdict.reason


@pytest.mark.parametrize(
    ("rule", "text", "expected"),
    [
        (LengthFilter(), PROSE, None),
        (LengthFilter(), "", "empty_text"),
        (LengthFilter(), "x" * 200, "too_short"),
        (LengthFilter(min_chars=None), "x", None),
        (LengthFilter(max_chars=100), PROSE, "too_large"),
        (RepetitionFilter(), PROSE, None),
        (RepetitionFilter(), "a" * 1000, "repeated_characters"),
        (RepetitionFilter(), "þ" * 600, "repeated_characters"),  # a 2-byte letter: a period-2 byte run
        (RepetitionFilter(), "-=" * 400 + "\n" + PROSE, "repeated_characters"),
        (RepetitionFilter(), "\n".join([PROSE] + ["Amen, amen, so be it."] * 30), "duplicate_lines"),
        (RepetitionFilter(max_duplicate_line_char_ratio=None), "\n".join(["Amen."] * 300), None),
        (NonLetterLineFilter(), PROSE, None),
        (NonLetterLineFilter(), "\n".join(["1,204 | 3,118 | 77.5%"] * 5 + ["Total receipts"]), "non_letter_lines"),
        (BoilerplateLineFilter(), PROSE, None),
        (
            BoilerplateLineFilter(),
            "Home\nhttps://example.org/a\nwww.example.com\nAll rights reserved.",
            "boilerplate_lines",
        ),
        (
            BoilerplateLineFilter(),
            "Contents\nChapter I ........ 1\nChapter II ........ 14\nPage 3",
            "boilerplate_lines",
        ),
        (GutenbergFilter(), PROSE, None),
        (GutenbergFilter(), PROSE + "\n*** END OF THE PROJECT GUTENBERG EBOOK GENESIS ***", "gutenberg_boilerplate"),
        (GutenbergFilter(), "Project Gutenberg License terms apply.\n" + PROSE, "gutenberg_boilerplate"),
    ],
)
def test_reason(rule, text, expected):
    assert reason(rule, text) == expected


@pytest.mark.parametrize(
    "line",
    [
        "see https://example.org",
        "WWW.Example.com",
        "write to a.b@example.org",
        "Chapter IV . . . . 45",
        "Page 12",
        "pp. 3",
        "© 1999 the owner",
        "All Rights Reserved",
        "Click here to subscribe",
    ],
)
def test_boilerplate_lines(line):
    rule = BoilerplateLineFilter()
    assert rule.line_flagged(line) and rule.flag_lines(pl.Series([line])).tolist() == [True]
    assert not rule.line_flagged("And the pages of the book, 12 of them, were burned.")


def test_drop_detail_names_value_and_threshold():
    verdict = NonLetterLineFilter().keep("12 34\n56 78\nwords here")
    assert isinstance(verdict, Drop) and verdict.detail == "non_letter_line_ratio 0.667 > 0.5"


def test_run_length_must_be_screenable():
    with pytest.raises(ValueError, match="min_run_bytes"):
        RepetitionFilter(min_run_bytes=8)


def test_strip_gutenberg_keeps_the_work_between_markers():
    wrapped = (
        "The Project Gutenberg eBook of Genesis\nThis eBook is for the use of anyone anywhere.\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK GENESIS ***\n\n" + PROSE + "\n\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK GENESIS ***\nSection 1. General Terms of Use"
    )
    assert strip_gutenberg(wrapped) == PROSE
    assert GutenbergFilter().keep(strip_gutenberg(wrapped)) is True
    assert strip_gutenberg(PROSE) == PROSE


def test_old_norse_and_other_scripts_survive(saga_text):
    greek = (
        "Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν, καὶ θεὸς ἦν ὁ λόγος.\n"
        "οὗτος ἦν ἐν ἀρχῇ πρὸς τὸν θεόν. πάντα δι᾽ αὐτοῦ ἐγένετο, καὶ χωρὶς αὐτοῦ ἐγένετο οὐδὲ ἕν ὃ γέγονεν.\n"
        "ἐν αὐτῷ ζωὴ ἦν, καὶ ἡ ζωὴ ἦν τὸ φῶς τῶν ἀνθρώπων· καὶ τὸ φῶς ἐν τῇ σκοτίᾳ φαίνει."
    )
    russian = (
        "В начале было Слово, и Слово было у Бога, и Слово было Бог.\nОно было в начале у Бога.\n"
        "Все чрез Него начало быть, и без Него ничто не начало быть, что начало быть.\n"
        "В Нем была жизнь, и жизнь была свет человеков."
    )
    for text in (normalize_text(saga_text), greek, russian):
        assert [reason(rule, text) for rule in build_filters()] == [None] * len(build_filters())


def test_batch_path_gives_the_same_reasons(kjv, webster, saga_text):
    """keep_batch must equal keep, on real chapters and on every bad shape above (the STYLE contract)."""
    texts = [normalize_text(t) for t in list(kjv.values())[:150] + list(webster.values())[:50]]
    texts += [
        normalize_text(saga_text),
        "",
        "a" * 1000,
        "þ" * 600,
        "ab" * 40 + "\n" + PROSE,
        "x" * 31 + " " + "y" * 32 + "\n" + PROSE,
        "\n".join(["1,204 | 3,118 | 77.5%"] * 5 + ["Total receipts", "Ꝥ 12 ¶ 13 § 14"]),
        "Home\nhttps://example.org/a\nwww.example.com\nAll rights reserved.",
        "\n".join([PROSE] + ["Amen, amen, so be it."] * 30),
        "Project Gutenberg License terms apply.\n" + PROSE,
    ]
    series = pl.Series("text", texts)
    for rule in build_filters() + [LengthFilter(min_chars=None), NonLetterLineFilter(non_letter_line_threshold=0.2)]:
        expected = [None if (v := rule.keep(t)) is True else v for t in texts]
        assert rule.keep_batch(series) == expected, rule
