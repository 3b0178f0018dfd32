"""A small real corpus for the dating tests, read once per session: a few Bible editions (Genesis onwards) plus
a spread of SOTU addresses, enough for a classifier that trains in seconds."""

from __future__ import annotations

from functools import cache

import polars as pl

from sources.bible import BibleReader
from sources.dating import DateEstimator, DatingConfig, train_estimator
from sources.schema import DOCUMENTS
from sources.sotu import SotuReader

EDITIONS = ("wyc", "gb", "kjv", "dr", "ylt", "bbe", "web")  # C014 C016 C017 C018 C019 C020 C021
CHAPTERS = 60  # Genesis 1-50 and Exodus 1-10
HELD_BACK = 8  # chapters after these, never trained on: undated texts for placement tests
SOTU_EVERY = 6
SOTU_CHARS = 12_000
SMALL_CONFIG = DatingConfig(epochs=5, n_jobs=1)
# the placement mechanics tests use in-domain confidence (no fold models): each edition here is the only source of
# its century, so on unseen sources the model is right about nothing and would place nothing (test_unseen.py)
IN_DOMAIN_CONFIG = DatingConfig(epochs=5, n_jobs=1, hold_out_sources=False)


@cache
def bible_chapters(code: str, n: int) -> pl.DataFrame:
    return BibleReader(code, max_docs=n).read().documents


@cache
def small_documents() -> pl.DataFrame:
    frames = [bible_chapters(code, CHAPTERS + HELD_BACK).head(CHAPTERS) for code in EDITIONS]
    sotu = SotuReader().read().documents
    sotu = sotu.gather_every(SOTU_EVERY).with_columns(pl.col("text").str.slice(0, SOTU_CHARS))
    frames.append(sotu.with_columns(pl.col("text").str.len_chars().cast(pl.Int64).alias("n_chars")))
    return pl.concat(frames).select(list(DOCUMENTS))


def held_back(code: str) -> list[str]:
    """Chapters of `code` that are not in `small_documents()`."""
    return bible_chapters(code, CHAPTERS + HELD_BACK).tail(HELD_BACK)["text"].to_list()


@cache
def small_estimator() -> DateEstimator:
    """Confidence from in-domain temperature scaling only (the placement mechanics do not depend on its source)."""
    return train_estimator(small_documents(), IN_DOMAIN_CONFIG)


@cache
def unseen_estimator() -> DateEstimator:
    """The shipped configuration: leave-one-source-out calibration and conformal sets."""
    return train_estimator(small_documents(), SMALL_CONFIG)
