import polars as pl
import pytest

from quality.normalize import normalize_series, normalize_text

HISTORICAL = "Ye ſhall not vſe þe ꝛ nor æ; vnto Þórr, Óðinn ok Sigi — ‘tis wiſe"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("e\u0301te\u0301", "été"),  # combining accents composed (NFC)
        ("a\r\nb\rc", "a\nb\nc"),
        ("a\u00a0\u2009b\tc", "a b c"),
        ("  lead  and   trail  \n\n\n\n next ", "lead and trail\n\nnext"),
        ("zero\u200bwidth\ufeff and \x00control\x07", "zerowidth and control"),
        ("", ""),
        (" \n\t \u3000 ", ""),
    ],
)
def test_normalizes_unicode_and_whitespace(raw, expected):
    assert normalize_text(raw) == expected


def test_never_modernises_spelling():
    assert normalize_text(HISTORICAL) == HISTORICAL
    assert (
        normalize_text("\ufb01 \u017f \u01eb") == "\ufb01 \u017f \u01eb"
    )  # ligature fi, long s, o-ogonek stay (not NFKC)


def test_column_path_matches_text_path(kjv, saga_text):
    texts = [HISTORICAL, saga_text, kjv[(1, 1)], "x \r\n\r\n\r\n y\u2028z", "\t\u00a0", "a  \n  b"]
    assert normalize_series(pl.Series("text", texts)).to_list() == [normalize_text(t) for t in texts]
