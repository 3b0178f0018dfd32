"""Our teacher generation on a GPU, for benchmarks/teacher_gpu.sh: the vLLM offline backend or an OpenAI-compatible
server (`vllm serve`), on the same prompts the script also hands to `vllm bench throughput`.

    python benchmarks/teacher_gpu.py prompts --model-dir DIR --n 2000 --out prompts.jsonl
    python benchmarks/teacher_gpu.py offline --model-dir DIR --n 2000
    python benchmarks/teacher_gpu.py http --base-url http://127.0.0.1:8000/v1 --model DIR --n 2000 --in-flight 256

Each run prints one JSON line: requests, prompt and completion tokens, seconds, output tokens/s. Decoding is
greedy, unconstrained and without truncation retries, so every system does the same work per prompt; `vllm bench
throughput` ignores EOS and always writes `--output-len` tokens, so compare output tokens/s, not seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from teacher.client import Job, Teacher  # noqa: E402
from teacher.prompts import vrd_request  # noqa: E402

MAX_NEW_TOKENS = 128
VERBS = ["Forgiving", "Refusing", "Repaying", "Sharing", "Defending", "Punishing", "Promising", "Protecting"]
OBJECTS = ["a debt", "a stranger", "the poor", "a neighbour's field", "the king's law", "a widow", "a promise"]


def requests(n: int) -> list:
    """`n` distinct per-kind VRD requests over synthetic situations (our real prompt, few-shot included)."""
    kinds = ("value", "right", "duty")
    out = []
    for i in range(n):
        situation = f"{VERBS[i % len(VERBS)]} {OBJECTS[(i // len(VERBS)) % len(OBJECTS)]} in year {1500 + i}"
        out.append(vrd_request(situation, kind=kinds[i % 3], max_new_tokens=MAX_NEW_TOKENS))
    return out


def run_teacher(backend, n: int) -> dict:
    teacher = Teacher(backend, None, batch_size=n, max_retries=0, truncation_retry=False)
    started = time.perf_counter()
    teacher.run([Job(r) for r in requests(n)])  # raw answers: every system parses nothing
    seconds = time.perf_counter() - started
    c = teacher.stats.counters
    teacher.close()
    return {
        "requests": n,
        "errors": c.backend_errors,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "seconds": round(seconds, 2),
        "output_tokens_per_s": round(c.completion_tokens / seconds, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", choices=["prompts", "offline", "http"])
    p.add_argument("--model-dir", default="")
    p.add_argument("--model", default="", help="http: the served model name")
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--in-flight", type=int, default=256)
    p.add_argument("--out", default="prompts.jsonl")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    a = p.parse_args()
    if a.mode is None:  # `make bench` runs every script: this one needs a GPU and the script around it
        print("teacher_gpu: needs a CUDA GPU and vLLM; run benchmarks/teacher_gpu.sh on a GPU machine (skipped)")
        return
    if a.mode == "prompts":  # the same prompts, rendered with the chat template, for `vllm bench throughput`
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(a.model_dir)
        with open(a.out, "w") as f:
            for r in requests(a.n):
                text = tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
                f.write(json.dumps({"prompt": text}) + "\n")
        print(json.dumps({"prompts": a.n, "out": a.out}))
        return
    if a.mode == "offline":
        from teacher.backends.vllm_offline import VllmBackend

        backend = VllmBackend(
            "smollm2-135m-instruct",
            a.model_dir,
            constrained_decoding=False,
            gpu_memory_utilization=a.gpu_memory_utilization,
        )
    else:
        from teacher.backends.openai_http import OpenAIBackend

        backend = OpenAIBackend(
            a.base_url, a.model or a.model_dir, max_in_flight=a.in_flight, constrained_decoding=False, logprobs=False
        )
    print(json.dumps({"system": f"chronoprism {a.mode}", **run_teacher(backend, a.n)}))


if __name__ == "__main__":
    main()
