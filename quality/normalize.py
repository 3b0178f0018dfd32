"""Text normalisation before filtering: Unicode NFC and whitespace, nothing else.

Historical spelling is data, not noise: we never lowercase, never fold long s (ſ) or thorn (þ), never map
ligatures or old letter forms to modern ones, never "fix" spelling (an earlier pipeline's modernising normaliser is
a known flaw we avoid). NFC (not NFKC) only composes a letter with its combining accents; NFKC would turn ſ into s.

Steps, in order (the per-text and the per-frame paths run the same patterns):
1. NFC.
2. Delete C0/C1 control characters (except tab, newline, carriage return, form/vertical feed), zero-width space and
   the byte-order mark.
3. CRLF and lone CR become LF.
4. Every other Unicode whitespace character (tab, NBSP, thin space, line/paragraph separator, ...) becomes a space.
5. Runs of spaces collapse to one; spaces around a newline go; three or more newlines become a blank line.
6. Leading and trailing whitespace goes.
"""

from __future__ import annotations

import re
import unicodedata

import polars as pl

# written as literal characters (not escapes) so Python's re and polars' Rust regex read exactly the same class
_CONTROL = "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b\ufeff]"
_CR = "\r\n?"
_SPACE = "[\t\x0b\x0c\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    (_CONTROL, ""),
    (_CR, "\n"),
    (_SPACE, " "),
    (" {2,}", " "),
    (" \n", "\n"),
    ("\n ", "\n"),
    ("\n{3,}", "\n\n"),
)
_COMPILED = tuple((re.compile(pattern), replacement) for pattern, replacement in _REPLACEMENTS)
STRIP_CHARS = " \n"
_NON_ASCII = r"[^\x00-\x7f]"
_ANY_CHANGE = "|".join(pattern for pattern, _ in _REPLACEMENTS) + "|^[ \n]|[ \n]$"  # some step would change the text


def normalize_text(text: str) -> str:
    """NFC + whitespace for one text (see the module docstring); spelling is left exactly as it is."""
    text = unicodedata.normalize("NFC", text)
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return text.strip(STRIP_CHARS)


def normalize_series(texts: pl.Series) -> pl.Series:
    """The same normalisation over a column: NFC in Python (it returns at once on NFC text), whitespace in polars,
    applied only to the rows one combined pattern says need it (most rows are already clean)."""
    nfc = texts.fill_null("").cast(pl.String)
    maybe = nfc.str.contains(_NON_ASCII).arg_true()  # [issue 14] ASCII text is NFC: only the rest is looked at
    changed = [
        (row, unicodedata.normalize("NFC", text))
        for row, text in zip(maybe.to_list(), nfc.gather(maybe).to_list(), strict=True)
        if not unicodedata.is_normalized("NFC", text)
    ]
    if changed:
        rows, values = zip(*changed, strict=True)
        nfc = nfc.scatter(list(rows), pl.Series(values, dtype=pl.String))
    rows = nfc.str.contains(_ANY_CHANGE).arg_true()
    if len(rows) == 0:
        return nfc
    expr = pl.col(texts.name)
    for pattern, replacement in _REPLACEMENTS:
        expr = expr.str.replace_all(pattern, replacement)
    fixed = nfc.gather(rows).to_frame().select(expr.str.strip_chars(STRIP_CHARS)).to_series()
    return nfc.scatter(rows, fixed)


_WORD = re.compile(r"\w+", re.UNICODE)


def words_of(text: str | None) -> list[str]:
    """Words for *comparing* texts (decontamination, trend keys), never for output: NFKC (the long s folds to s),
    lower case, runs of letters/digits. Historical spelling is not modernised."""
    return _WORD.findall(unicodedata.normalize("NFKC", text or "").lower())


def normalise(text: str | None) -> str:
    """The comparison key of a text: its `words_of` joined by single spaces."""
    return " ".join(words_of(text))
