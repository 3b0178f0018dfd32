"""MinHash LSH near-duplicate detection: chronoprism vs datasketch's MinHashLSH, on one planted corpus.

Input (built once, fed to every system): documents of 6-16 consecutive verses from 11 bundled Bible editions, plus an
edited copy of 10% of them at target word 5-gram Jaccard levels 0.5-0.95 (benchmarks/planted.py). Systems:
  ours             quality.dedup.minhash: polars/numpy shingles, rensa signatures, numpy LSH buckets, exact-Jaccard
                   verification at 0.8, union-find (20 bands x 8 rows = 160 permutations by default)
  datasketch b x r MinHashLSH(num_perm=b*r, params=(b, r)): our LSH parameters
  datasketch 0.8   MinHashLSH(threshold=0.8, num_perm=128): datasketch's usual setting
datasketch runs as its docs show it: per document, shingles from a word regex, MinHash.update_batch (SHA-1 per
shingle), query then insert; its candidate pairs are its duplicates (it has no verification step) and are clustered
with the same union-find. Each system runs in a forked child after a 200-document warm-up, single-threaded by default
(POLARS_MAX_THREADS / RAYON_NUM_THREADS = --threads), so docs/s is per core; peak memory is the child's peak RSS
growth over the shared input.

Truth is measured, never assumed: every planted pair and every pair any system reports gets its exact word 5-gram
Jaccard; positives are those >= 0.8. Recall = positives whose two documents end in one cluster; precision = reported
pairs that are positives. Exits non-zero only if ours and datasketch (same parameters) disagree on recall by > 0.05.

    python benchmarks/dedup.py              # 20k documents (~2 min on 2 cores)
    python benchmarks/dedup.py --docs 2000  # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# defaults: overridable by flags
DOCS = 20_000  # documents before planting
PLANTED_FRACTION = 0.10
SEED = 0
THREADS = 1  # per-core numbers; datasketch is single-threaded
THRESHOLD = 0.8
WARMUP_DOCS = 200


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=DOCS, help="documents before planting copies")
    parser.add_argument("--fraction", type=float, default=PLANTED_FRACTION, help="share of documents given a copy")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=THREADS, help="polars/rensa threads for ours")
    parser.add_argument("--skip-peer", action="store_true", help="run ours only")
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # thread pools read these at import time
    os.environ["POLARS_MAX_THREADS"] = os.environ["RAYON_NUM_THREADS"] = str(ARGS.threads)
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import multiprocessing as mp  # noqa: E402
import re  # noqa: E402
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from benchmarks.planted import plant_near_duplicates, verse_windows  # noqa: E402
from quality.dedup.clusters import UnionFind  # noqa: E402
from quality.dedup.minhash import (  # noqa: E402
    MinHashConfig,
    ShingleSets,
    candidate_pairs,
    shingle_hashes,
    signatures,
    verify_pairs,
)

_WORD = re.compile(r"\w+")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ours(texts: list[str], config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """(verified pairs, cluster labels)."""
    series = pl.Series("text", texts)
    shingles = shingle_hashes(series, config.ngram)
    usable = shingles.counts > 0
    candidates = candidate_pairs(signatures(shingles, config), config, usable)
    pairs, _ = verify_pairs(candidates, ShingleSets(shingles), config.jaccard_threshold)
    return pairs, UnionFind(len(texts)).union_pairs(pairs).labels()


def datasketch_run(texts: list[str], num_perm: int, params=None, threshold=None) -> tuple[np.ndarray, np.ndarray]:
    """datasketch as documented: MinHash per document, query then insert; candidates are the duplicates."""
    from datasketch import MinHash, MinHashLSH

    lsh = (
        MinHashLSH(num_perm=num_perm, params=params) if params else MinHashLSH(threshold=threshold, num_perm=num_perm)
    )
    pairs = []
    for i, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        shingles = {" ".join(words[k : k + 5]).encode("utf-8") for k in range(len(words) - 4)}
        if not shingles:
            continue
        minhash = MinHash(num_perm=num_perm, seed=1)
        minhash.update_batch(list(shingles))
        pairs.extend((j, i) for j in lsh.query(minhash))
        lsh.insert(i, minhash)
    found = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return found, UnionFind(len(texts)).union_pairs(found).labels()


def _child(queue, fn, texts, kwargs):
    fn(texts[:WARMUP_DOCS], **kwargs)  # burn-in: imports, thread pools, allocator
    start_rss = current_rss_mib()
    start = time.perf_counter()
    pairs, labels = fn(texts, **kwargs)
    seconds = time.perf_counter() - start
    queue.put((pairs, labels, seconds, peak_rss_mib() - start_rss))


def measure(fn, texts, **kwargs):
    """Run `fn(texts, **kwargs)` in a forked child; (pairs, labels, seconds, peak RSS growth MiB)."""
    context = mp.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue, fn, texts, kwargs))
    child.start()
    result = queue.get()
    child.join()
    return result


def evaluate(pairs, labels, truth: dict[tuple[int, int], float]) -> tuple[float, float]:
    positives = [pair for pair, j in truth.items() if j >= THRESHOLD]
    recall = float(np.mean([labels[a] == labels[b] for a, b in positives])) if positives else float("nan")
    reported = {tuple(sorted(p)) for p in pairs.tolist()}
    precision = float(np.mean([truth[p] >= THRESHOLD for p in reported])) if reported else float("nan")
    return recall, precision


def main(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    corpus = plant_near_duplicates(verse_windows(args.docs, rng), args.fraction, rng)
    texts = corpus.texts
    n_words = sum(len(t.split()) for t in texts)
    print(
        f"corpus: {len(texts)} documents ({len(corpus.planted)} planted copies), "
        f"{n_words / len(texts):.0f} words/doc, {sum(map(len, texts)) / 1e6:.1f} M chars, "
        f"built in {time.perf_counter() - start:.1f}s"
    )
    config = MinHashConfig(jaccard_threshold=THRESHOLD)
    print(f"ours: {config}; threads={args.threads}; datasketch {version('datasketch')}, rensa {version('rensa')}")

    systems = {"ours (verified)": (ours, {"config": config})}
    if not args.skip_peer:
        same = f"datasketch {config.bands}x{config.rows}"
        systems[same] = (datasketch_run, {"num_perm": config.num_perm, "params": (config.bands, config.rows)})
        systems["datasketch t=0.8/128"] = (datasketch_run, {"num_perm": 128, "threshold": 0.8})
    results = {name: measure(fn, texts, **kwargs) for name, (fn, kwargs) in systems.items()}

    # ground truth: exact Jaccard of every planted pair and every reported pair
    sets = ShingleSets(shingle_hashes(pl.Series("text", texts)))
    keys = {tuple(sorted((a, b))) for a, b, _ in corpus.planted}
    for pairs, *_ in results.values():
        keys |= {tuple(sorted(p)) for p in pairs.tolist()}
    truth = {key: sets.jaccard(*key) for key in keys}
    print(f"truth: {sum(j >= THRESHOLD for j in truth.values())} pairs with Jaccard >= {THRESHOLD}\n")

    print(f"{'system':<22} {'docs/s':>9} {'seconds':>8} {'recall':>7} {'precision':>9} {'pairs':>7} {'peak MiB':>9}")
    scores = {}
    for name, (pairs, labels, seconds, peak) in results.items():
        recall, precision = evaluate(pairs, labels, truth)
        scores[name] = (len(texts) / seconds, recall, precision)
        print(
            f"{name:<22} {len(texts) / seconds:>9.0f} {seconds:>8.2f} {recall:>7.3f} {precision:>9.3f} "
            f"{len(pairs):>7} {peak:>9.0f}"
        )
    if args.skip_peer:
        return 0
    ours_rate, ours_recall, _ = scores["ours (verified)"]
    for name in list(scores)[1:]:
        print(f"ratio ours/{name}: {ours_rate / scores[name][0]:.1f}x docs/s")
    same = f"datasketch {config.bands}x{config.rows}"
    gap = abs(ours_recall - scores[same][1])
    print(f"agreement: recall ours {ours_recall:.3f} vs {same} {scores[same][1]:.3f}")
    if gap > 0.05:
        print(f"DISAGREE: recall differs by {gap:.3f} at the same LSH parameters")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
