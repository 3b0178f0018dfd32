"""Corpus scale: ingest -> clean -> near-dedup of ProgressGym-shaped corpora through the real CLI, at growing sizes.

Input, built once per size and seed (cached under --work): JSONL files of ~18 kB documents of real English from the
bundled packages (random slices of the 14 Bible editions, the State of the Union addresses and the Shakespeare
plays, joined), each with a random `year` in 1250-2020, like ProgressGym's 1.83 M documents of ~20 kB. A share of
the documents (--planted) get a near-copy: words replaced or deleted at the rate that gives a word 5-gram Jaccard
of 0.85-0.95 (benchmarks/planted.py), written as its own row with its own year.

Each size runs `chronoprism build --no-bundled --corpus DIR --select near_duplicate_clusters` in a fresh home
(ingest, documents, documents_clean, near_duplicate_clusters) and reports per size: wall time, MB/s of JSONL input,
the peak memory of the whole process tree (the CLI and every worker it starts, sampled every 0.2 s) summed two ways,
and the recall of the planted copies (a copy counts when it and its original end in one cluster). Summed RSS counts
a page that forked workers share with their server once per process; summed PSS (/proc/PID/smaps_rollup) splits it
among them, so it is the memory the tree really holds. With --trace, every sample (per process, with the steps then
running) is written out, and each run prints which steps ran and what each process held at the two peaks. Then the
growth from the smallest to the largest size: time and memory ratios against the size ratio (time linear: ratio ~
size ratio; memory flat: ~1). No peer runs here: benchmarks/dedup.py compares the dedup step with datasketch.

    python benchmarks/scale.py                          # 0.25, 0.5, 1, 2 GB (about 30 min on 2 cores)
    python benchmarks/scale.py --sizes 0.5 2 --trace /tmp/traces  # where the memory goes
    python benchmarks/scale.py --sizes 0.05 0.1         # quick
    python benchmarks/scale.py --sizes 4 8 --workers 8  # more
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402

SIZES_GB = (0.25, 0.5, 1.0, 2.0)
DOC_CHARS = 18_000  # ProgressGym: 38 GB / 1.83 M documents ~ 20 kB
SLICE_CHARS = 600  # a document is ~30 slices of running text from random places
PLANTED = 0.05  # share of documents given a near-copy
LEVELS = (0.85, 0.9, 0.95)
FILE_DOCS = 5_000  # documents per JSONL file
YEARS = (1250, 2020)
SEED = 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=list(SIZES_GB), help="corpus sizes in GB")
    parser.add_argument("--planted", type=float, default=PLANTED, help="share of documents given a near-copy")
    parser.add_argument("--workers", type=int, default=None, help="`chronoprism build --workers` (default: cores)")
    parser.add_argument("--budget-gb", type=float, default=None, help="settings memory_budget_gb (default: 4)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local", help="settings executor")
    parser.add_argument("--repeats", type=int, default=1, help="runs per size (median and spread when > 1)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/chronoprism-scale"), help="corpora and homes")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--trace", type=Path, help="write every memory sample (per process, with steps) here")
    return parser.parse_args()


def text_pool() -> str:
    """All bundled English running text, one string (~60 MB): Bibles, SOTU addresses, Shakespeare plays."""
    from planted import EDITIONS, verses_of

    from sources.shakespeare import ShakespeareReader
    from sources.sotu import SotuReader

    parts = [" ".join(verses_of(code)) for code in (*EDITIONS, "wesley", "wmth", "mont")]
    for reader in (SotuReader(), ShakespeareReader()):
        parts += [row.text for row in reader.iter_raw() if hasattr(row, "text")]
    return " ".join(" ".join(part.split()) for part in parts)


def make_corpus(directory: Path, size_gb: float, planted: float, seed: int) -> list[tuple[str, str]]:
    """Write the corpus (cached by a marker); return the planted (original id, copy id) pairs."""
    from planted import edit_rate_for, edit_words

    marker = directory.with_name(directory.name + ".planted.json")  # beside the corpus: not a corpus file
    if (directory / "planted.json").is_file():  # where earlier versions kept it
        (directory / "planted.json").replace(marker)
    if marker.is_file():
        return [tuple(pair) for pair in json.loads(marker.read_text())]
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = text_pool()
    vocabulary = sorted(set(pool[:2_000_000].split()))
    n_docs = max(2, int(size_gb * 1e9 / DOC_CHARS / (1 + planted)))
    pairs, rows, file_no = [], [], 0

    def flush() -> None:
        nonlocal rows, file_no
        if rows:
            path = directory / f"part-{file_no:05d}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
            rows, file_no = [], file_no + 1

    for i in range(n_docs):
        starts = rng.integers(0, len(pool) - SLICE_CHARS, size=DOC_CHARS // SLICE_CHARS)
        text = "\n".join(pool[s : s + SLICE_CHARS].partition(" ")[2].rpartition(" ")[0] for s in starts.tolist())
        rows.append({"id": f"d{i}", "text": text, "year": int(rng.integers(YEARS[0], YEARS[1] + 1))})
        if rng.random() < planted:
            level = LEVELS[len(pairs) % len(LEVELS)]
            copy = edit_words(text, edit_rate_for(level), rng, vocabulary)
            rows.append({"id": f"c{i}", "text": copy, "year": int(rng.integers(YEARS[0], YEARS[1] + 1))})
            pairs.append((f"d{i}", f"c{i}"))
        if len(rows) >= FILE_DOCS:
            flush()
    flush()
    marker.write_text(json.dumps(pairs))
    return pairs


ROLLUP_FIELDS = {"Rss:": "rss", "Pss:": "pss", "Pss_Anon:": "pss_anon"}


def process_memory(pid: int) -> dict[str, int]:
    """Resident (RSS), proportional (PSS: a page shared by k processes counts 1/k) and anonymous PSS bytes of one
    process, from /proc/PID/smaps_rollup; RSS alone where that file is missing (not Linux)."""
    import psutil

    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            lines = [line.split() for line in rollup]
    except OSError:
        rss = psutil.Process(pid).memory_info().rss
        return {"rss": rss, "pss": rss, "pss_anon": rss}
    found = {ROLLUP_FIELDS[parts[0]]: int(parts[1]) << 10 for parts in lines if parts and parts[0] in ROLLUP_FIELDS}
    return {name: found.get(name, 0) for name in ROLLUP_FIELDS.values()}


def tree_memory(root: int) -> list[dict]:
    """Memory of a process and all its descendants, one dict a process: pid, role, rss, pss, pss_anon (bytes).

    Summed RSS counts a page shared by forked processes (the forkserver's imports) once per process; summed PSS
    counts it once in all, so it is the memory the tree really holds. Both are reported."""
    import psutil

    try:
        process = psutil.Process(root)
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    samples = []
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            samples.append({"pid": member.pid, "role": process_role(member, root), **process_memory(member.pid)})
    return samples


def process_role(process, root: int) -> str:
    """cli, forkserver (the server that build workers fork from), worker (forked by it), resource_tracker or other
    (e.g. Dagster's log tails); a forked worker keeps its server's command line, so the parent tells them apart."""
    if process.pid == root:
        return "cli"
    parent = process.parent()
    command = " ".join(process.cmdline())
    if "forkserver" in command:
        return "forkserver" if parent is not None and parent.pid == root else "worker"
    return "resource_tracker" if "resource_tracker" in command else "other"


class RunningSteps:
    """Which steps the build is running now, from its progress lines (`[2/3] documents ... [C014] ...` opens one,
    the same label with `ok` or `FAILED` closes it); build workers print their own lines to the same log."""

    def __init__(self, log: Path):
        self.log = log
        self.offset = 0
        self.running: list[str] = []

    def update(self) -> list[str]:
        with self.log.open("rb") as handle:
            handle.seek(self.offset)
            text = handle.read()
        complete = text[: text.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            if not line.startswith("["):
                continue
            if line.endswith(" ...") or " ... (" in line:
                self.running.append(line.partition(" ...")[0])
            else:
                for label in self.running:
                    if line.startswith(label + " ok") or line.startswith(label + " FAILED"):
                        self.running.remove(label)
                        break
        return list(self.running)


def kill_tree(root: int) -> None:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(root)
        for member in [*process.children(recursive=True), process]:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()


@dataclass(slots=True)
class BuildRun:
    """One build: its wall time, and the tree's memory at its summed-RSS and its summed-PSS peaks."""

    seconds: float
    peak_rss: int = 0
    peak_pss: int = 0
    at_rss_peak: dict = field(default_factory=dict)  # one trace sample (see `sample`)
    at_pss_peak: dict = field(default_factory=dict)


def sample(root: int, started: float, steps: RunningSteps) -> dict:
    """The tree's memory now, per process and summed, with the steps running."""
    processes = tree_memory(root)
    return {
        "t": round(time.monotonic() - started, 2),
        "running": steps.update(),
        "rss": sum(p["rss"] for p in processes),
        "pss": sum(p["pss"] for p in processes),
        "processes": processes,
    }


def run_build(
    corpus: Path,
    home: Path,
    workers: int | None,
    budget_gb: float | None,
    executor: str = "local",
    trace: Path | None = None,
) -> BuildRun:
    """One CLI build in a fresh home, its tree's memory sampled every 0.2 s (every sample written to `trace`, a
    JSONL file, when given)."""
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {**os.environ, "CHRONOPRISM_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("DAGSTER_HOME", None)
    env["CHRONOPRISM__EXECUTOR"] = executor  # "ray": a local Ray instance started by the build (in the tree)
    if budget_gb is not None:
        env["CHRONOPRISM__MEMORY_BUDGET_GB"] = str(budget_gb)
    command = [sys.executable, "-m", "pipelines.cli", "build", "--no-bundled", "--corpus", str(corpus)]
    command += ["--select", "near_duplicate_clusters"] + (["--workers", str(workers)] if workers else [])
    log = home / "build.log"
    started = time.monotonic()
    run = BuildRun(0.0)
    with log.open("w") as out, trace.open("w") if trace else contextlib.nullcontext() as trace_out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        steps = RunningSteps(log)
        try:
            while process.poll() is None:
                now = sample(process.pid, started, steps)
                if trace_out is not None:
                    trace_out.write(json.dumps(now) + "\n")
                if now["rss"] > run.peak_rss:
                    run.peak_rss, run.at_rss_peak = now["rss"], now
                if now["pss"] > run.peak_pss:
                    run.peak_pss, run.at_pss_peak = now["pss"], now
                time.sleep(0.2)
        finally:  # interrupted: take the build and its workers down too
            if process.poll() is None:
                kill_tree(process.pid)
    run.seconds = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"build failed ({process.returncode}):\n{log.read_text()[-3000:]}")
    return run


def describe_peak(name: str, at_peak: dict) -> str:
    """One line: when the peak came, which steps ran, and each process's share."""
    if not at_peak:
        return f"{name}: no sample"
    parts = ", ".join(
        f"{p['role']} {p['pid']} rss {p['rss'] / 2**30:.2f} pss {p['pss'] / 2**30:.2f}" for p in at_peak["processes"]
    )
    running = "; ".join(at_peak["running"]) or "-"
    return f"{name} at {at_peak['t']:.0f}s (running: {running}): {parts}"


def recall(home: Path, pairs: list[tuple[str, str]]) -> float:
    """Share of planted pairs whose two documents end in one cluster (kept copy, or the same kept document)."""
    import polars as pl

    from sources.storage import Store

    store = Store(home)
    ids = store.scan("documents_clean").select("doc_id", "source_doc_id").collect()
    doc_of = dict(zip(ids["source_doc_id"].to_list(), ids["doc_id"].to_list(), strict=True))
    duplicates = store.read("near_duplicate_clusters")
    kept_of = dict(zip(duplicates["doc_id"].to_list(), duplicates["kept_doc_id"].to_list(), strict=True))
    found = 0
    for original, copy in pairs:
        a, b = doc_of.get(original), doc_of.get(copy)
        if a is not None and b is not None and kept_of.get(a, a) == kept_of.get(b, b):
            found += 1
    del pl
    return found / len(pairs) if pairs else 1.0


def machine() -> str:
    import platform

    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.processor() or platform.machine()}, {cores} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, load {load:.1f} at start"
    )


def main() -> int:
    args = parse_args()
    if args.trace:
        args.trace.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; executor {args.executor}")
    results = []
    for size in args.sizes:
        corpus = args.work / f"corpus-{size:g}gb-seed{args.seed}"
        started = time.monotonic()
        pairs = make_corpus(corpus, size, args.planted, args.seed)
        input_bytes = sum(p.stat().st_size for p in corpus.glob("*.jsonl"))
        docs = sum(1 for p in corpus.glob("*.jsonl") for _ in p.open("rb"))
        print(
            f"{size:g} GB: {docs:,} documents, {input_bytes / 1e6:,.0f} MB, {len(pairs):,} planted copies "
            f"(corpus ready in {time.monotonic() - started:.0f}s)",
            flush=True,
        )
        runs = []
        for repeat in range(args.repeats):
            home = args.work / f"home-{size:g}gb"
            trace = args.trace / f"trace-{size:g}gb-run{repeat + 1}.jsonl" if args.trace else None
            run = run_build(corpus, home, args.workers, args.budget_gb, args.executor, trace)
            runs.append((run, recall(home, pairs)))
            print(
                f"    run {repeat + 1}: {run.seconds:.1f}s, {input_bytes / 1e6 / run.seconds:.2f} MB/s, "
                f"peak RSS {run.peak_rss / 2**30:.2f} GiB, peak PSS {run.peak_pss / 2**30:.2f} GiB, "
                f"recall {runs[-1][1]:.4f}, load {os.getloadavg()[0]:.1f} at the end",
                flush=True,
            )
            for name, at_peak in (("    peak RSS", run.at_rss_peak), ("    peak PSS", run.at_pss_peak)):
                print(describe_peak(name, at_peak), flush=True)
        seconds = statistics.median(run.seconds for run, _ in runs)
        spread = (max(r.seconds for r, _ in runs) - min(r.seconds for r, _ in runs)) / seconds if len(runs) > 1 else 0
        results.append(
            {
                "size_gb": size,
                "documents": docs,
                "input_mb": round(input_bytes / 1e6, 1),
                "seconds": round(seconds, 1),
                "time_spread": round(spread, 3),
                "mb_per_s": round(input_bytes / 1e6 / seconds, 2),
                "peak_rss_gib": round(statistics.median(run.peak_rss for run, _ in runs) / 2**30, 2),
                "peak_pss_gib": round(statistics.median(run.peak_pss for run, _ in runs) / 2**30, 2),
                "recall": round(min(found for _, found in runs), 4),
                "planted": len(pairs),
            }
        )
    print()
    print("| size | documents | input MB | wall s | MB/s | peak RSS GiB (sum) | peak PSS GiB (sum) | recall |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        spread = f" ±{r['time_spread']:.0%}" if args.repeats > 1 else ""
        print(
            f"| {r['size_gb']:g} GB | {r['documents']:,} | {r['input_mb']:,.0f} | {r['seconds']:.0f}{spread} | "
            f"{r['mb_per_s']:.2f} | {r['peak_rss_gib']:.2f} | {r['peak_pss_gib']:.2f} | {r['recall']:.4f} |"
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        ratio = {key: last[key] / first[key] for key in ("input_mb", "seconds", "peak_rss_gib", "peak_pss_gib")}
        print(
            f"growth {first['size_gb']:g} -> {last['size_gb']:g} GB: size x{ratio['input_mb']:.2f}, "
            f"time x{ratio['seconds']:.2f}, peak RSS x{ratio['peak_rss_gib']:.2f}, "
            f"peak PSS x{ratio['peak_pss_gib']:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
