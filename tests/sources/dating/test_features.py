import numpy as np

from sources.dating.features import CharNgramHasher


def test_hashing_is_deterministic_and_batch_independent():
    texts = ["In the beginning God created the heaven and the earth.", "ab", "", "Þat was in þe olde tyme"] * 50
    one = CharNgramHasher(bits=16, batch_texts=7, n_jobs=2).transform(texts)
    other = CharNgramHasher(bits=16, batch_texts=1024, n_jobs=1).transform(texts)
    assert (one != other).nnz == 0
    assert one.shape == (len(texts), 1 << 16)


def test_counts_every_ngram_and_never_crosses_texts():
    hasher = CharNgramHasher(ngram_min=2, ngram_max=4, bits=20)
    together = hasher.transform(["abcd", "efgh"])
    apart = [hasher.transform([t]) for t in ("abcd", "efgh")]
    assert (together[0] != apart[0]).nnz == 0 and (together[1] != apart[1]).nnz == 0
    assert together[0].sum() == 3 + 2 + 1  # bigrams, trigrams, the one 4-gram of "abcd"
    assert hasher.transform([""]).nnz == 0
    repeated = hasher.transform(["abab"]).toarray().ravel()
    assert np.sort(repeated[repeated > 0]).tolist() == [1, 1, 1, 1, 2]  # ab x2, ba, aba, bab, abab
