"""Near-duplicate detection with MinHash LSH, in four explicit steps (datatrove's shape, vectorised).

1. **shingles**: lowercase, split into words (runs of letters/digits; ASCII punctuation and the Unicode
   punctuation blocks separate words), hash each word, combine consecutive words into word n-gram hashes (n = 5).
   Spelling is not normalised: "shew" and "show" are different words, so a modernised edition really is less similar.
2. **signatures**: `bands * rows` MinHash values per document, computed by rensa (Rust) from the flat uint64 shingle
   hashes in one call.
3. **candidates**: LSH: a document pair is a candidate when all `rows` values of at least one band agree.
4. **verify + clusters**: each candidate pair's exact shingle Jaccard is computed and pairs below `jaccard_threshold`
   are dropped (None skips this, trusting LSH like FineWeb); the remaining pairs are joined by union-find.

Choosing bands x rows. A pair with Jaccard s becomes a candidate with probability P(s) = 1 - (1 - s^r)^b (the
S-curve). With b = 14, r = 8 (FineWeb's 112 permutations) P is 50% at s ~ 0.685 and:

    s     0.50   0.60   0.70   0.75   0.80   0.85   0.90   0.95
    P(s)  0.053  0.21   0.57   0.77   0.92   0.99   1.00   1.00

so pairs at or above the default threshold 0.8 are found with probability >= 0.92 (>= 0.99 from 0.85), while the
many pairs just below it that LSH also proposes are removed by the exact verification, which keeps precision at 1.
Other settings move the curve: 20 x 8 = 160 permutations centres it at 0.655 with P(0.8) = 0.975 (on the 1,189 KJV
1611 / Webster 1833 chapter pairs it finds all 104 at or above 0.8, where 14 x 8 finds 101, for 40% more signature
work); 20 x 5 centres it at 0.51 (far more candidates to verify); 9 x 13, datasketch's pick for threshold 0.8, at
0.82 (finds only 40% of pairs at 0.8). `s_curve` and `threshold_of` compute it for any b, r.

Our default is 20 x 8, not FineWeb's 14 x 8: the pipeline promises that near-copies above the verification
threshold are found, and at 0.8 the 14 x 8 curve still misses one pair in twelve (3 of the 104 KJV/Webster chapters).
The extra 40% of signature work is cheap next to everything else the pipeline does.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import rensa

from quality.text_buffer import byte_chunks, utf8_buffer

log = logging.getLogger(__name__)

U64 = np.uint64
_GOLDEN = U64(0x9E3779B97F4A7C15)
CHUNK_BYTES = 2 << 20  # text per vectorised chunk: large enough to amortise, small enough to stay in reused memory
_WORD_SALT = 0x5EED_C0DE  # polars hash seed: fixed, so signatures are reproducible for one polars version


@dataclass(frozen=True, slots=True)
class MinHashConfig:
    """All MinHash LSH parameters; str() spells them for logs and metadata."""

    ngram: int = 5
    bands: int = 20
    rows: int = 8
    seed: int = 1
    jaccard_threshold: float | None = 0.8
    max_bucket_pairs: int = 32

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def __str__(self) -> str:
        verify = f"verify>={self.jaccard_threshold}" if self.jaccard_threshold is not None else "no verification"
        return (
            f"minhash(word {self.ngram}-grams, {self.bands}x{self.rows}={self.num_perm} perms, seed={self.seed}, "
            f"LSH 50% at J~{threshold_of(self.bands, self.rows):.3f}, {verify})"
        )


def s_curve(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """P(candidate | Jaccard s) = 1 - (1 - s^rows)^bands."""
    return 1.0 - (1.0 - np.power(similarity, rows)) ** bands


def threshold_of(bands: int, rows: int) -> float:
    """The similarity where the S-curve crosses 1/2 (close to (1/b)^(1/r))."""
    return float((1.0 - 0.5 ** (1.0 / bands)) ** (1.0 / rows))


@dataclass(slots=True)
class Shingles:
    """Word n-gram hashes of many documents: document i owns `hashes[offsets[i]:offsets[i + 1]]`."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, len n_docs + 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def of(self, doc: int) -> np.ndarray:
        return self.hashes[self.offsets[doc] : self.offsets[doc + 1]]

    @staticmethod
    def concat(parts: list[Shingles]) -> Shingles:
        if not parts:
            return Shingles(np.zeros(0, dtype=U64), np.zeros(1, dtype=np.int64))
        hashes = np.concatenate([p.hashes for p in parts])
        offsets = [np.zeros(1, dtype=np.int64)]
        base = 0
        for part in parts:
            offsets.append(part.offsets[1:] + base)
            base += len(part.hashes)
        return Shingles(hashes, np.concatenate(offsets))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place: spreads every input bit over the 64 output bits."""
    x ^= x >> U64(30)
    x *= U64(0xBF58476D1CE4E5B9)
    x ^= x >> U64(27)
    x *= U64(0x94D049BB133111EB)
    x ^= x >> U64(31)
    return x


def _separator_bytes(data: np.ndarray) -> np.ndarray:
    """True for bytes (of lowercased UTF-8) that separate words: ASCII non-alphanumerics, Latin-1 punctuation
    (U+00A0-00BF) and the General Punctuation block (U+2000-206F: dashes, curly quotes, ellipsis), every byte of
    each such character."""
    return ~_word_bytes(data)


def _word_bytes(data: np.ndarray) -> np.ndarray:
    """The complement of `_separator_bytes`, in a few whole-array passes (a byte lookup table is slower in numpy:
    it widens every index to 8 bytes)."""
    # after lowercasing, word bytes are a-z, 0-9 and every byte of a non-ASCII character (unsigned wrap-around trick)
    word = ((data - np.uint8(ord("a"))) < 26) | ((data - np.uint8(ord("0"))) < 10) | (data >= 0x80)
    latin1 = np.flatnonzero(data[:-1] == 0xC2)
    latin1 = latin1[(data[latin1 + 1] >= 0xA0) & (data[latin1 + 1] <= 0xBF)]
    word[latin1] = word[latin1 + 1] = False
    general = np.flatnonzero(data[:-2] == 0xE2)
    general = general[(data[general + 1] == 0x80) | (data[general + 1] == 0x81)]
    word[general] = word[general + 1] = word[general + 2] = False
    return word


def _ascii_lower(data: np.ndarray) -> np.ndarray:
    """UTF-8 bytes with A-Z lowered (bit 5 set); every other byte as it is."""
    capital = (data - np.uint8(ord("A"))) < 26
    return data | (capital.view(np.uint8) << np.uint8(5))


def word_frame(texts: pl.Series) -> pl.DataFrame:
    """One row per word: `doc` (row in `texts`) and `hash` (uint64); documents keep their word order."""
    texts = texts.fill_null("")
    if texts.str.contains(_CAPITAL_SIGMA, literal=True).any():
        return _word_frame_of_lowered(texts.str.to_lowercase())
    data, offsets = utf8_buffer(texts)
    lowered = _ascii_lower(data)
    starts, ends = _word_spans(_word_bytes(lowered), offsets)
    bounds = np.stack([starts, ends], axis=1).reshape(-1)
    word_hash = _strings_at(lowered, bounds).gather_every(2).hash(_WORD_SALT).to_numpy().copy()
    high = np.flatnonzero(data >= 0x80)  # words holding one of these bytes need Unicode lower case
    high_words = np.unique(np.searchsorted(starts, high, side="right") - 1)
    high_words = high_words[high_words >= 0]
    high_words = high_words[_any_between(high, starts[high_words], ends[high_words])]
    if len(high_words):  # Unicode lower case (Rust's, as `str.to_lowercase`) for the words beyond ASCII only
        spans = np.stack([starts[high_words], ends[high_words]], axis=1).reshape(-1)
        originals = _strings_at(data, spans).gather_every(2)
        word_hash[high_words] = originals.str.to_lowercase().hash(_WORD_SALT).to_numpy()
    words_per_text = np.diff(np.searchsorted(starts, offsets, side="left"))
    doc = np.repeat(np.arange(len(offsets) - 1, dtype=np.uint32), words_per_text)
    return pl.DataFrame({"doc": doc, "hash": word_hash})


# [issue 14] Words are found on the bytes and lowercased one by one: the same words and hashes as lowercasing each
# whole text and splitting it (the old path, `_word_frame_of_lowered`), without a list column holding a copy of
# every word. Separators have no case and no letter lowers into one, so the boundaries agree (ASCII capitals are
# lowered first, as they are letters); lower case is per character except for Greek capital sigma (final form by
# context), so a chunk holding one takes the whole-text path.
_CAPITAL_SIGMA = "\u03a3"


def _word_spans(in_word: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) byte positions of the words (maximal runs of word bytes inside one text), ascending."""
    n = len(in_word)
    before = np.concatenate(([False], in_word[:-1]))  # the byte before is a word byte of the same text
    before[offsets[:-1][offsets[:-1] < n]] = False
    after = np.concatenate((in_word[1:], [False]))  # the byte after is a word byte of the same text
    after[offsets[1:][offsets[1:] > 0] - 1] = False
    return np.flatnonzero(in_word & ~before), np.flatnonzero(in_word & ~after) + 1


def _any_between(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each [start, end): whether some of the sorted `points` lies inside."""
    return np.searchsorted(points, starts, side="left") < np.searchsorted(points, ends, side="left")


def _strings_at(data: np.ndarray, bounds: np.ndarray) -> pl.Series:
    """String i = `data[bounds[i]:bounds[i + 1]]` (UTF-8 cut at character boundaries), without copying `data`."""
    if len(bounds) < 2:
        return pl.Series("word", [], dtype=pl.String)
    array = pa.LargeStringArray.from_buffers(
        len(bounds) - 1, pa.py_buffer(bounds.astype(np.int64)), pa.py_buffer(data)
    )
    if hasattr(pa, "string_view"):  # pyarrow >= 16: polars' own layout, taken over without a copy
        array = array.cast(pa.string_view())
    return pl.Series("word", array)


def _word_frame_of_lowered(lowered: pl.Series) -> pl.DataFrame:
    """`word_frame` of texts already in lower case, splitting every text in polars."""
    data, offsets = utf8_buffer(lowered)
    spaced = data.copy()
    spaced[_separator_bytes(data)] = ord(" ")
    array = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(spaced)
    )
    words = pl.DataFrame({"word": pl.Series(array).str.split(" ")}).with_row_index("doc").explode("word")
    words = words.filter(pl.col("word").str.len_bytes() > 0)  # separators leave empty strings between them
    return words.select("doc", pl.col("word").hash(_WORD_SALT).alias("hash"))


def shingle_hashes(texts: pl.Series, ngram: int = 5, chunk_bytes: int = CHUNK_BYTES) -> Shingles:
    """Word n-gram hashes per document (documents with fewer than `ngram` words get none).

    Works through the column in chunks of about `chunk_bytes` of text, so the temporary arrays stay small and reused.
    """
    sizes = texts.fill_null("").str.len_bytes().to_numpy()
    parts = [_shingle_chunk(texts[part], ngram) for part in byte_chunks(sizes, chunk_bytes)]
    if not parts:
        return Shingles(np.zeros(0, dtype=U64), np.zeros(1, dtype=np.int64))
    return Shingles.concat(parts)


def _shingle_chunk(texts: pl.Series, ngram: int) -> Shingles:
    words = word_frame(texts)
    doc = words["doc"].to_numpy().astype(np.int64)
    word_hash = words["hash"].to_numpy()
    n_docs = len(texts)
    n_grams = len(word_hash) - ngram + 1
    if n_grams <= 0:
        return Shingles(np.zeros(0, dtype=U64), np.zeros(n_docs + 1, dtype=np.int64))
    combined = word_hash[:n_grams].copy()
    for k in range(1, ngram):  # polynomial over the n word hashes: order matters
        combined *= _GOLDEN
        combined += word_hash[k : k + n_grams]
    valid = doc[:n_grams] == doc[ngram - 1 :]  # the n-gram lies inside one document
    hashes = _mix(combined[valid])
    counts = np.bincount(doc[:n_grams][valid], minlength=n_docs)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Shingles(hashes, offsets)


def signatures(shingles: Shingles, config: MinHashConfig) -> np.ndarray:
    """(n_docs, bands*rows) uint32 MinHash signatures via rensa; rows of documents without shingles are meaningless
    (callers skip them: see `candidate_pairs`)."""
    if len(shingles) == 0:
        return np.zeros((0, config.num_perm), dtype=np.uint32)
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        shingles.hashes, shingles.offsets.astype(U64), config.num_perm, config.seed
    )
    return np.array(matrix.to_rows(), dtype=np.uint32).reshape(len(shingles), config.num_perm)


def band_keys(sigs: np.ndarray, config: MinHashConfig) -> np.ndarray:
    """(n_docs, bands) uint64: one hash per band of `rows` signature values."""
    keys = np.zeros((len(sigs), config.bands), dtype=U64)
    for band in range(config.bands):
        key = np.full(len(sigs), U64(band + 1), dtype=U64)
        for value in sigs[:, band * config.rows : (band + 1) * config.rows].T:
            key *= _GOLDEN
            key += value.astype(U64)
        keys[:, band] = _mix(key)
    return keys


def _bucket_pairs(members: np.ndarray, starts: np.ndarray, sizes: np.ndarray, max_all_pairs: int) -> np.ndarray:
    """Pairs inside buckets (given as runs of `members`): all pairs up to `max_all_pairs` members, else a chain."""
    out = []
    for size in np.unique(sizes).tolist():
        group_starts = starts[sizes == size]
        if size <= max_all_pairs:
            i, j = np.triu_indices(size, k=1)
            out.append(np.stack([members[group_starts[:, None] + i], members[group_starts[:, None] + j]], -1))
        else:
            i = np.arange(size - 1)
            out.append(np.stack([members[group_starts[:, None] + i], members[group_starts[:, None] + i + 1]], -1))
    return np.concatenate([p.reshape(-1, 2) for p in out]) if out else np.zeros((0, 2), dtype=np.int64)


def candidate_pairs(sigs: np.ndarray, config: MinHashConfig, usable: np.ndarray | None = None) -> np.ndarray:
    """Unique (i, j), i < j, of documents sharing at least one LSH bucket; `usable` masks out docs without shingles."""
    return candidate_pairs_of_keys(band_keys(sigs, config), config, usable)


def candidate_pairs_of_keys(keys: np.ndarray, config: MinHashConfig, usable: np.ndarray | None = None) -> np.ndarray:
    """`candidate_pairs` from band keys alone (8 bytes x bands per document: what corpus-scale dedup keeps)."""
    index = np.flatnonzero(usable) if usable is not None else np.arange(len(keys))
    n = max(len(keys), 1)
    keys = keys[index]
    pairs = []
    for band in range(config.bands):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        new_bucket = np.ones(len(order), dtype=bool)
        new_bucket[1:] = sorted_keys[1:] != sorted_keys[:-1]
        starts = np.flatnonzero(new_bucket)
        sizes = np.diff(np.append(starts, len(order)))
        shared = sizes >= 2
        if shared.any():
            pairs.append(_bucket_pairs(index[order], starts[shared], sizes[shared], config.max_bucket_pairs))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    found = np.concatenate(pairs)
    found.sort(axis=1)
    codes = np.unique(found[:, 0] * n + found[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


class ShingleSets:
    """Sorted unique shingle hashes per document, made on first use: the exact Jaccard of candidate pairs."""

    def __init__(self, shingles: Shingles):
        self.shingles = shingles
        self._cache: dict[int, np.ndarray] = {}

    def get(self, doc: int) -> np.ndarray:
        found = self._cache.get(doc)
        if found is None:
            values = np.sort(self.shingles.of(doc))
            first = np.ones(len(values), dtype=bool)
            first[1:] = values[1:] != values[:-1]
            found = self._cache[doc] = values[first]
        return found

    def jaccard(self, a: int, b: int) -> float:
        left, right = self.get(a), self.get(b)
        if len(left) == 0 or len(right) == 0:
            return 0.0
        at = np.minimum(np.searchsorted(right, left), len(right) - 1)
        shared = int(np.count_nonzero(right[at] == left))
        return shared / (len(left) + len(right) - shared)


class SpilledSets(ShingleSets):
    """[issue 14] `ShingleSets` for corpus scale: the sorted unique shingles of only the documents that take part in
    candidate pairs, written to one file as they are computed and read back per document (os.pread: no mapping, so
    the file's pages never count as the process's memory). Keeps one document cached: pairs come sorted by their
    first member."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = path.open("wb")
        self._where: dict[int, tuple[int, int]] = {}
        self._end = 0
        self._fd: int | None = None
        self._cache: dict[int, np.ndarray] = {}

    def add(self, doc: int, hashes: np.ndarray) -> None:
        values = np.unique(hashes.astype(U64, copy=False))
        self._handle.write(values.tobytes())
        self._where[doc] = (self._end, len(values))
        self._end += values.nbytes

    def add_all(self, docs: np.ndarray, shingles: Shingles) -> None:
        for position, doc in enumerate(docs.tolist()):
            self.add(doc, shingles.of(position))

    def __contains__(self, doc: int) -> bool:
        return doc in self._where

    def get(self, doc: int) -> np.ndarray:
        found = self._cache.get(doc)
        if found is not None:
            return found
        if self._fd is None:
            self._handle.close()
            self._fd = os.open(self.path, os.O_RDONLY)
        start, count = self._where[doc]
        found = np.frombuffer(os.pread(self._fd, count * 8, start), dtype=U64) if count else np.zeros(0, U64)
        if len(self._cache) >= 2:
            self._cache.pop(next(iter(self._cache)))
        self._cache[doc] = found
        return found

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self._handle.closed:
            self._handle.close()


def verify_pairs(pairs: np.ndarray, sets: ShingleSets, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(pairs at or above `threshold`, their exact Jaccard); with threshold None every pair passes (Jaccard kept)."""
    similarity = np.array([sets.jaccard(a, b) for a, b in pairs.tolist()], dtype=np.float64)
    if threshold is None:
        return pairs, similarity
    keep = similarity >= threshold
    return pairs[keep], similarity[keep]


@dataclass(slots=True)
class NearDuplicates:
    """Verified near-duplicate pairs of one MinHash run, with the counts behind them."""

    pairs: np.ndarray  # (m, 2) int64 document indices, i < j
    similarity: np.ndarray  # (m,) exact shingle Jaccard
    n_candidates: int
    n_with_shingles: int


def find_near_duplicates(
    shingles: Shingles,
    config: MinHashConfig,
    usable: np.ndarray | None = None,
    sets: ShingleSets | None = None,
) -> NearDuplicates:
    """Steps 2-4 on precomputed shingles: signatures, LSH candidates, exact verification.

    `usable` (bool per document) leaves documents out, e.g. exact copies already handled; documents without
    shingles (fewer than `ngram` words) are always left out.
    """
    usable = (shingles.counts > 0) & (True if usable is None else usable)
    sigs = signatures(shingles, config)
    candidates = candidate_pairs(sigs, config, usable)
    pairs, similarity = verify_pairs(candidates, sets or ShingleSets(shingles), config.jaccard_threshold)
    log.info(
        "%s: %d docs with shingles, %d candidates, %d pairs kept", config, usable.sum(), len(candidates), len(pairs)
    )
    return NearDuplicates(pairs, similarity, len(candidates), int(usable.sum()))
