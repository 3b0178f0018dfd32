"""Teacher resilience: the situations + VRD stages with 20% of backend calls faulted (timeouts, exceptions that
fail a whole batch, garbage answers), seeded.

The run must complete, and every fault must end retried or quarantined: each stage's accounting balances
(inputs = outputs + rejects), the Teacher's backend-error and parse-failure counts cover what the fault wrapper
injected, and each quarantined row names `backend_error` or `malformed_output`. The same inputs without faults
give the reference output; the script prints how much survived and exits non-zero when any check fails.

    python benchmarks/teacher_faults.py                        # scripted backend, 200 passages, 20% faults
    python benchmarks/teacher_faults.py --backend transformers --passages 8
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sources.schema import PASSAGES, frame_of, stable_id  # noqa: E402
from teacher.backends.faults import FaultInjectingBackend  # noqa: E402
from teacher.backends.scripted import ScriptedBackend  # noqa: E402
from teacher.client import Teacher  # noqa: E402
from teacher.generate import GenerationConfig, extract_situations, generate_vrd  # noqa: E402

PASSAGES_N = 200
SHARE = 0.2
SEED = 0
BATCH_SIZE = 8
MAX_RETRIES = 2
TEXTS = [
    "He that hath two coats, let him impart to him that hath none; and he that hath meat, let him do likewise.",
    "It is the duty of the Government to protect the rights of every citizen and to pay its debts in good faith.",
    "Thou shalt not bear false witness against thy neighbour, nor covet thy neighbour's house.",
    "The liberty of the people must never be sacrificed to the greed of a few.",
]


def make_backend(name: str):
    if name == "scripted":
        return ScriptedBackend()
    from teacher.backends.local_transformers import TransformersBackend

    home = Path(os.environ.get("CHRONOPRISM_HOME", REPO / ".chronoprism"))
    models = Path(os.environ.get("CHRONOPRISM_TEST_MODELS", home / "models"))
    return TransformersBackend("smollm2-135m-instruct", models, threads=1)


def run(backend, passages, share: float, seed: int):
    faulty = FaultInjectingBackend(backend, share=share, seed=seed) if share else backend
    teacher = Teacher(faulty, None, batch_size=BATCH_SIZE, max_retries=MAX_RETRIES)
    cfg = GenerationConfig(max_situations=None)
    started = time.perf_counter()
    situations = extract_situations(passages, teacher, cfg)
    candidates = generate_vrd(situations.frame, teacher, cfg)
    return faulty, teacher, situations, candidates, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["scripted", "transformers"], default="scripted")
    parser.add_argument("--passages", type=int, default=PASSAGES_N)
    parser.add_argument("--share", type=float, default=SHARE)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    rows = [
        {
            "passage_id": stable_id("bench", i),
            "doc_id": "bench",
            "century": "C017",
            "char_start": 0,
            "char_end": 0,
            "text": f"{TEXTS[i % len(TEXTS)]} (passage {i})",
        }
        for i in range(args.passages)
    ]
    passages = frame_of(rows, PASSAGES)
    backend = make_backend(args.backend)
    _, ref_teacher, ref_sits, ref_cands, ref_s = run(backend, passages, 0.0, args.seed)
    faulty, teacher, sits, cands, seconds = run(backend, passages, args.share, args.seed)
    c = teacher.stats.counters
    injected = dict(faulty.injected)
    print(
        f"backend {args.backend}, {args.passages} passages, {args.share:.0%} faults (seed {args.seed}), "
        f"batch {BATCH_SIZE}, {MAX_RETRIES} retries"
    )
    share = faulty.faulted_calls / max(1, faulty.requests_seen)
    print(
        f"injected: {injected}: {faulty.faulted_calls} of {faulty.requests_seen} backend calls faulted ({share:.0%})"
    )
    print(
        f"teacher: backend_errors={c.backend_errors} parse_failures={c.parse_failures} "
        f"repairs={teacher.stats.repairs} quarantined={c.quarantined}"
    )
    for name, ref, got in (("situations", ref_sits, sits), ("vrd_candidates", ref_cands, cands)):
        print(
            f"{name:>15}: n_in={got.stats.n_in} n_out={got.stats.n_out} rejected={dict(got.stats.rejected)} "
            f"rows {got.frame.height} (no faults: {ref.frame.height})"
        )
    print(f"time: {seconds:.2f} s with faults, {ref_s:.2f} s without")

    quarantine_reasons = {"malformed_output", "backend_error"}
    problems = []
    for result in (sits, cands):
        if result.stats.n_in != result.stats.n_out + result.stats.n_rejected:
            problems.append(f"{result.stats.stage}: accounting does not balance")
        teacher_rejects = set(result.rejects["reason"]) - {"situation_cap", "no_valence"}
        if not teacher_rejects <= quarantine_reasons:
            problems.append(f"{result.stats.stage}: unexpected reasons {teacher_rejects}")
    if c.backend_errors < injected.get("timeout", 0) + injected.get("exception", 0):
        problems.append("fewer backend errors counted than injected")
    # the scripted answers all parse, so parse failures come from injected garbage only (a garbage answer to a
    # request that several jobs share, e.g. the same situation text twice, counts once per job)
    if args.backend == "scripted" and ref_teacher.stats.counters.parse_failures:
        problems.append("parse failures without injected faults")
    if args.backend == "scripted" and c.parse_failures and not injected.get("garbage"):
        problems.append("parse failures although no garbage was injected")
    quarantined_rows = sum(int(r.rejects["reason"].is_in(list(quarantine_reasons)).sum()) for r in (sits, cands))
    # every job ended parsed or quarantined; quarantined valence questions drop an item, not a row of their own
    if teacher.stats.jobs != teacher.stats.jobs_ok + c.quarantined or quarantined_rows > c.quarantined:
        problems.append("jobs neither answered nor quarantined, or more quarantined rows than quarantined jobs")
    survived = cands.frame.height / ref_cands.frame.height if ref_cands.frame.height else 1.0
    print(f"survived: {survived:.0%} of candidates ({quarantined_rows} rows quarantined)")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
