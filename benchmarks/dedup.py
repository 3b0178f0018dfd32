"""MinHash LSH near-duplicate detection: chronoprism vs datasketch (its fast path) vs datatrove's MinHash pipeline.

Input (built once, fed to every system): documents of 6-16 consecutive verses from 11 bundled Bible editions, plus an
edited copy of 10% of them at target word 5-gram Jaccard levels 0.5-0.95 (benchmarks/planted.py). Systems, all at
the same LSH parameters (20 bands x 8 rows = 160 permutations, word 5-grams):
  ours                 quality.dedup.minhash: polars/numpy shingles, rensa signatures, numpy LSH buckets,
                       exact-Jaccard verification at 0.8, union-find
  ours (unverified)    the same without the verification step (LSH candidates are the duplicates)
  datasketch           its documented fast path: one `MinHash.bulk` call (shared permutations, batched hashing),
                       `LeanMinHash` objects, `MinHashLSH.insertion_session` to index, then one query per document;
                       unverified (candidates are the duplicates)
  datasketch+verify    the same, then the same verification as ours: each candidate's exact shingle Jaccard >= 0.8,
                       computed the idiomatic Python way on the shingle sets it already built
  datatrove            its own four-step MinHash dedup (MinhashDedupSignature -> MinhashDedupBuckets ->
                       MinhashDedupCluster -> MinhashDedupFilter) on local disk, one task per bucket, unverified
Each system runs RUNS times, each in a forked child after a 200-document warm-up, single-threaded (POLARS_MAX_THREADS =
RAYON_NUM_THREADS = --threads), so docs/s is per core; the table gives the median and the spread (min-max) over the
runs, then the median seconds of each step. Peak memory is the child's peak RSS growth over the shared input.

Truth is measured, never assumed: every planted pair and every pair any system reports gets its exact word 5-gram
Jaccard (our shingles); positives are those >= 0.8. Recall = positives whose two documents end in one cluster;
precision = reported pairs that are positives (datatrove's pairs are the ones its bucket step writes to `.dups`).
Compare verified with verified and unverified with unverified. Exits non-zero only if ours and datasketch (same
parameters) disagree on recall by > 0.05.

    python benchmarks/dedup.py              # 20k documents, 3 runs each (~6 min on 2 cores)
    python benchmarks/dedup.py --docs 2000 --runs 1   # quick
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
RUNS = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=DOCS, help="documents before planting copies")
    parser.add_argument("--fraction", type=float, default=PLANTED_FRACTION, help="share of documents given a copy")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=THREADS, help="polars/rensa threads for ours")
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs per system (median and spread)")
    parser.add_argument("--skip-peer", action="store_true", help="run ours only")
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # thread pools read these at import time
    os.environ["POLARS_MAX_THREADS"] = os.environ["RAYON_NUM_THREADS"] = str(ARGS.threads)
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import multiprocessing as mp  # noqa: E402
import re  # noqa: E402
from dataclasses import replace  # noqa: E402
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


Steps = dict[str, float]


class Timer:
    """Seconds per named step, in order."""

    def __init__(self) -> None:
        self.steps: Steps = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.steps[name] = self.steps.get(name, 0.0) + now - self._last
        self._last = now


def ours(texts: list[str], config: MinHashConfig) -> tuple[np.ndarray, np.ndarray, Steps]:
    """(pairs, cluster labels, step seconds); `config.jaccard_threshold=None` skips verification."""
    timer = Timer()
    shingles = shingle_hashes(pl.Series("text", texts), config.ngram)
    usable = shingles.counts > 0
    timer.lap("shingles")
    sigs = signatures(shingles, config)
    timer.lap("signatures")
    candidates = candidate_pairs(sigs, config, usable)
    timer.lap("lsh")
    pairs = candidates
    if config.jaccard_threshold is not None:
        pairs, _ = verify_pairs(candidates, ShingleSets(shingles), config.jaccard_threshold)
        timer.lap("verify")
    labels = UnionFind(len(texts)).union_pairs(pairs).labels()
    timer.lap("clusters")
    return pairs, labels, timer.steps


def datasketch_run(
    texts: list[str], num_perm: int, params: tuple[int, int], verify: float | None = None
) -> tuple[np.ndarray, np.ndarray, Steps]:
    """datasketch's fast path: MinHash.bulk (one set of permutations for all documents), LeanMinHash, an insertion
    session, one query per document; `verify` keeps candidates whose exact shingle Jaccard reaches it."""
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    timer = Timer()
    sets = []
    for text in texts:
        words = _WORD.findall(text.lower())
        sets.append({" ".join(words[k : k + 5]).encode("utf-8") for k in range(len(words) - 4)})
    usable = [i for i, shingles in enumerate(sets) if shingles]
    timer.lap("shingles")
    minhashes = [LeanMinHash(m) for m in MinHash.bulk([sets[i] for i in usable], num_perm=num_perm, seed=1)]
    timer.lap("signatures")
    lsh = MinHashLSH(num_perm=num_perm, params=params)
    with lsh.insertion_session() as session:
        for i, minhash in zip(usable, minhashes, strict=True):
            session.insert(i, minhash, check_duplication=False)
    found = {(min(i, j), max(i, j)) for i, m in zip(usable, minhashes, strict=True) for j in lsh.query(m) if j != i}
    pairs = np.array(sorted(found), dtype=np.int64).reshape(-1, 2)
    timer.lap("lsh")
    if verify is not None:
        keep = [len(sets[a] & sets[b]) / len(sets[a] | sets[b]) >= verify for a, b in pairs.tolist()]
        pairs = pairs[np.array(keep, dtype=bool)] if len(pairs) else pairs
        timer.lap("verify")
    labels = UnionFind(len(texts)).union_pairs(pairs).labels()
    timer.lap("clusters")
    return pairs, labels, timer.steps


def datatrove_run(texts: list[str], bands: int, rows: int) -> tuple[np.ndarray, np.ndarray, Steps]:
    """datatrove's MinHash dedup, its four stock steps on a temporary local folder (one task per bucket, as its
    example runs them); pairs from the bucket step's `.dups` files, clusters from the filter's cluster ids."""
    import struct
    import tempfile

    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from loguru import logger

    logger.remove()  # its per-bucket progress lines, not the benchmark's output
    timer = Timer()
    config = MinhashConfig(n_grams=5, num_buckets=bands, hashes_per_bucket=rows, seed=1)
    docs = [Document(text=text, id=str(i)) for i, text in enumerate(texts)]
    with tempfile.TemporaryDirectory() as tmp:
        sigs, buckets, clusters = f"{tmp}/sigs", f"{tmp}/buckets", f"{tmp}/clusters"
        timer.lap("setup")
        signature = MinhashDedupSignature(output_folder=sigs, config=config)
        signature._hash_func = _xxhash64  # its default xxhash64, made to run on xxhash >= 4 (see _xxhash64)
        signature.run(iter(docs))
        timer.lap("signatures")
        for bucket in range(bands):
            MinhashDedupBuckets(input_folder=sigs, output_folder=buckets, config=config).run(
                rank=bucket, world_size=bands
            )
        timer.lap("buckets")
        MinhashDedupCluster(input_folder=buckets, output_folder=clusters, config=config, save_cluster_id=True).run()
        timer.lap("clusters")
        kept = list(MinhashDedupFilter(input_folder=clusters, load_cluster_ids=True).run(iter(docs)))
        timer.lap("filter")
        found = []
        for path in sorted(Path(buckets).glob("*.dups")):
            data = path.read_bytes()
            found += [(b, d) for _, b, _, d in struct.iter_unpack("<4I", data)]
    del kept
    pairs = np.array(sorted({(min(a, b), max(a, b)) for a, b in found}), dtype=np.int64).reshape(-1, 2)
    labels = np.arange(len(texts))
    cluster_of = {}
    for doc in docs:
        cluster = doc.metadata.get("minhash_cluster_id", -1)
        if cluster != -1:
            labels[int(doc.id)] = cluster_of.setdefault(cluster, int(doc.id))
    return pairs, labels, timer.steps


def _xxhash64(text: str) -> int:
    """datatrove's default shingle hash (xxhash64 of the n-gram string). xxhash 4 no longer hashes `str`, which
    datatrove 0.10 passes; encoding to UTF-8 first is what xxhash 3 did internally, so the hashes are unchanged."""
    import xxhash

    return xxhash.xxh64_intdigest(text.encode("utf-8"))


def _child(queue, fn, texts, kwargs):
    fn(texts[:WARMUP_DOCS], **kwargs)  # burn-in: imports, thread pools, allocator
    start_rss = current_rss_mib()
    start = time.perf_counter()
    pairs, labels, steps = fn(texts, **kwargs)
    seconds = time.perf_counter() - start
    queue.put((pairs, labels, steps, seconds, peak_rss_mib() - start_rss))


def measure(fn, texts, **kwargs):
    """Run `fn(texts, **kwargs)` in a forked child; (pairs, labels, steps, seconds, peak RSS growth MiB)."""
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
    peers = "" if args.skip_peer else f"; datasketch {version('datasketch')}, datatrove {version('datatrove')}"
    print(f"ours: {config}; threads={args.threads}; rensa {version('rensa')}{peers}; {args.runs} runs each")

    lsh = (config.bands, config.rows)
    systems = {
        "ours": (ours, {"config": config}),
        "ours (unverified)": (ours, {"config": replace(config, jaccard_threshold=None)}),
    }
    if not args.skip_peer:
        verified = {"num_perm": config.num_perm, "params": lsh, "verify": THRESHOLD}
        systems["datasketch+verify"] = (datasketch_run, verified)
        systems["datasketch"] = (datasketch_run, {"num_perm": config.num_perm, "params": lsh})
        systems["datatrove"] = (datatrove_run, {"bands": config.bands, "rows": config.rows})
    runs = {name: [measure(fn, texts, **kwargs) for _ in range(args.runs)] for name, (fn, kwargs) in systems.items()}

    # ground truth: exact Jaccard of every planted pair and every reported pair
    sets = ShingleSets(shingle_hashes(pl.Series("text", texts)))
    keys = {tuple(sorted((a, b))) for a, b, _ in corpus.planted}
    for results in runs.values():
        keys |= {tuple(sorted(p)) for p in results[0][0].tolist()}
    truth = {key: sets.jaccard(*key) for key in keys}
    print(f"truth: {sum(j >= THRESHOLD for j in truth.values())} pairs with Jaccard >= {THRESHOLD}\n")

    print(
        f"{'system':<20} {'docs/s':>8} {'spread':>13} {'recall':>7} {'precision':>9} {'pairs':>7} {'peak MiB':>9}  "
        "median seconds per step"
    )
    rates = {}
    scores = {}
    for name, results in runs.items():
        seconds = np.array([r[3] for r in results])
        rate = len(texts) / seconds
        pairs, labels = results[0][0], results[0][1]
        recall, precision = evaluate(pairs, labels, truth)
        rates[name], scores[name] = float(np.median(rate)), (recall, precision)
        steps = {step: float(np.median([r[2].get(step, 0.0) for r in results])) for step in results[0][2]}
        step_text = ", ".join(f"{step} {value:.2f}" for step, value in steps.items())
        print(
            f"{name:<20} {np.median(rate):>8.0f} {rate.min():>6.0f}-{rate.max():<6.0f} {recall:>7.3f} "
            f"{precision:>9.3f} {len(pairs):>7} {np.median([r[4] for r in results]):>9.0f}  {step_text}"
        )
    met = scores["ours"][0] >= 0.95 and scores["ours"][1] >= 0.99
    print(
        f"ours at Jaccard >= {THRESHOLD}: recall {scores['ours'][0]:.3f}, precision {scores['ours'][1]:.3f} "
        f"({'meets' if met else 'MISSES'} recall >= 0.95 and precision >= 0.99)"
    )
    if args.skip_peer:
        return 0
    for ours_name, peer in (("ours", "datasketch+verify"), ("ours (unverified)", "datasketch"), ("ours", "datatrove")):
        print(f"ratio {ours_name}/{peer}: {rates[ours_name] / rates[peer]:.1f}x docs/s (median of {args.runs})")
    gap = abs(scores["ours"][0] - scores["datasketch+verify"][0])
    print(f"agreement: recall ours {scores['ours'][0]:.3f} vs datasketch+verify {scores['datasketch+verify'][0]:.3f}")
    if gap > 0.05:
        print(f"DISAGREE: recall differs by {gap:.3f} at the same LSH parameters")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
