import numpy as np
import polars as pl

from quality.dedup.clusters import keep_rank
from quality.dedup.exact import exact_duplicates, exact_keys
from quality.normalize import normalize_series


def test_keys_compare_normalised_text_exactly():
    raw = pl.Series("text", ["Let there be light.", "Let  there be\u00a0light. ", "let there be light.", None])
    keys = exact_keys(normalize_series(raw))
    assert keys[0] == keys[1] and keys[0] != keys[2] and len(keys[3]) == 16


def test_each_copy_points_at_the_best_ranked_one():
    keys = exact_keys(pl.Series("text", ["a", "b", "a", "a", "b"]))
    frame = pl.DataFrame(
        {"year": [1800, 1700, 1611, 1611, 1900], "n_chars": [1, 1, 1, 2, 1], "doc_id": ["e", "d", "c", "f", "a"]}
    )
    assert exact_duplicates(keys, keep_rank(frame)).tolist() == [3, 1, 3, 3, 1]
    assert exact_duplicates(exact_keys(pl.Series("text", [], dtype=pl.String)), np.zeros(0, dtype=np.int64)).size == 0
