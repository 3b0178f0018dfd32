"""Training throughput: our packed rows against a fair padded baseline, with MFU; and a prepared one-GPU check.

CPU comparison (the default). The same documents (random token ids, log-normal lengths like passage-sized text) go
through the same `training.finetune.train` loop; only the row layout and batching differ:
- packed: documents + EOS concatenated and cut into full `seq_len` rows (training/data.py: pack)
- grouped: one chunk of one document per row, padded, batches of similar-length rows (`length_grouped`, HF
  Trainer's `group_by_length`), each batch trimmed to its longest row: the fair baseline, what a careful user of a
  padded loader does
- padded: the same rows in random batches (the naive baseline), for reference
Rate = real (unpadded) tokens per second after one untimed warm-up step; each layout runs `--repeats` times and the
median and spread are printed. MFU on the CPU = model FLOPs per token x rate / a nominal peak: cores x clock x FLOPs
per cycle per core (32 for AVX2 with two FMA units, 64 with AVX-512), from /proc/cpuinfo; a nominal, not a measured
peak, so compare MFU between layouts and runs, not with GPU figures.

    python benchmarks/train.py                          # tiny model, 3 repeats x 20 timed steps per layout
    python benchmarks/train.py --model smollm2 --steps 5 --seq-len 128 --batch-size 4 --lora-rank 8

GPU check (prepared for a lent GPU machine, not run here): a full finetune of the packaged SmolLM2-135M for a few
hundred steps on one GPU, bf16 autocast, the `gpu-small` preset's 1024-token rows, printing tokens/s and MFU against
the datasheet bf16 peak (training/finetune.py: PEAK_BF16_FLOPS):

    python benchmarks/train.py --gpu-check               # 300 steps of 32 x 1024 tokens
    python benchmarks/train.py --gpu-check --steps 100 --batch-size 16 --compile
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.base_models import count_params, model_summary, resolve_base_model  # noqa: E402
from training.data import TokenRows, TrainData, fingerprint, pack, pad, split_rows  # noqa: E402
from training.finetune import flops_per_token_of, train  # noqa: E402
from training.presets import make_config  # noqa: E402

STEPS = 20  # timed steps per run (the first, warm-up step is not timed)
REPEATS = 3
SEQ_LEN = 128
BATCH_SIZE = 8
DOCS = 600
MEAN_DOC_TOKENS = 60  # passage-sized documents: where padding wastes the most
SEED = 0
GPU_STEPS = 300  # a few hundred steps: past compile/warm-up, long enough for a steady rate
GPU_BATCH = 32  # 32 x 1024 tokens per step, the gpu-small preset's micro-batch
LAYOUTS = ("packed", "grouped", "padded")


def make_docs(n_docs: int, mean_tokens: int, vocab: int, seed: int) -> list[list[int]]:
    """Random token documents with log-normal lengths (sigma 0.8), at least 4 tokens each."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.empty(n_docs).log_normal_(
        mean=float(torch.tensor(mean_tokens).log()) - 0.32, std=0.8, generator=gen
    )
    return [torch.randint(3, vocab, (max(4, int(n)),), generator=gen).tolist() for n in lengths]


def cpu_peak_flops(threads: int) -> tuple[float | None, str]:
    """Nominal fp32 peak of `threads` cores: clock x FLOPs per cycle (FMA width), from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, "no /proc/cpuinfo"
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    if not mhz:
        return None, "no clock in /proc/cpuinfo"
    per_cycle = 64 if " avx512f" in flags else 32 if " fma" in flags and " avx2" in flags else 8
    ghz = max(mhz) / 1000
    return threads * ghz * 1e9 * per_cycle, f"{threads} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle"


def run(layout: str, docs: list[list[int]], model_dir: Path, args, eos_id: int) -> tuple[float, int]:
    rows = (pack if layout == "packed" else pad)(docs, args.seq_len, eos_id, eos_id)
    train_rows, val_rows = split_rows(rows, val_fraction=0.01, seed=SEED)
    data = TrainData(train_rows, val_rows, fingerprint(train_rows, val_rows), len(docs))
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = make_config(
            "cpu-tiny", base_model=str(model_dir), out_dir=out_dir, seq_len=args.seq_len, batch_size=args.batch_size,
            max_steps=args.steps + 1, eval_interval=10**9, eval_batches=1, checkpoint_interval=10**9, resume=False,
            log_interval=10**9, packing=layout == "packed", length_grouped=layout == "grouped",
            lora_rank=args.lora_rank,
        )  # fmt: skip
        result = train(cfg, data)
    return result.tokens_per_s or 0.0, len(rows)


def cpu_comparison(args) -> int:
    model_dir = resolve_base_model(args.model, args.models_dir)
    vocab = model_summary(model_dir)["vocab_size"]
    docs = make_docs(args.docs, args.mean_doc_tokens, vocab=vocab, seed=SEED)
    eos_id = 2
    packed, padded = pack(docs, args.seq_len, eos_id), pad(docs, args.seq_len, eos_id)
    # agreement before speed: both layouts carry exactly the same real tokens
    same = torch.equal(packed.ids[packed.mask].sort().values, padded.ids[padded.mask].sort().values)
    n_real = packed.n_tokens
    print(f"{len(docs)} docs, {n_real:,} tokens; packed {len(packed)} rows, padded {len(padded)} rows "
          f"({n_real / padded.mask.numel():.0%} of padded cells are real tokens); same tokens: {same}")  # fmt: skip
    if not same:
        return 1
    threads = torch.get_num_threads()
    peak, peak_note = cpu_peak_flops(threads)
    n_params = count_params(args.model)
    per_token = flops_per_token_of(n_params, model_summary(model_dir), args.seq_len, lora=args.lora_rank > 0)
    print(f"model {args.model} ({n_params / 1e6:.1f}M params, {per_token / 1e6:.1f} MFLOP/token"
          f"{', LoRA' if args.lora_rank else ''}); nominal CPU peak "
          f"{'n/a' if peak is None else f'{peak / 1e9:.0f} GFLOP/s'} ({peak_note})")  # fmt: skip
    medians = {}
    for layout in LAYOUTS:
        torch.manual_seed(SEED)
        rates = [run(layout, docs, model_dir, args, eos_id)[0] for _ in range(args.repeats)]
        medians[layout] = median = statistics.median(rates)
        mfu = f"{per_token * median / peak:.2%}" if peak else "n/a"
        print(f"{layout:8s} {median:10,.0f} real tokens/s  (min {min(rates):,.0f}, max {max(rates):,.0f}, "
              f"{args.repeats} runs x {args.steps} timed steps, batch {args.batch_size} x {args.seq_len}, "
              f"{threads} threads)  MFU {mfu}")  # fmt: skip
    print(f"ratio packed/grouped: {medians['packed'] / max(medians['grouped'], 1e-9):.2f}x   "
          f"packed/padded: {medians['packed'] / max(medians['padded'], 1e-9):.2f}x")  # fmt: skip
    return 0


def gpu_check(args) -> int:
    """Full finetune of SmolLM2-135M on one GPU with the training loop the pipeline uses; prints tokens/s and MFU."""
    if not torch.cuda.is_available():
        print("--gpu-check needs a CUDA GPU; none is visible here")
        return 2
    model_dir = resolve_base_model("smollm2", args.models_dir)
    # synthetic full rows (nanoGPT bench's option): throughput does not depend on the text; one epoch's worth
    gen = torch.Generator().manual_seed(SEED)
    n_rows = args.steps * args.batch_size + 8
    ids = torch.randint(3, model_summary(model_dir)["vocab_size"], (n_rows, 1024), generator=gen)
    train_rows, val_rows = split_rows(TokenRows(ids, torch.ones_like(ids, dtype=torch.bool)), 8 / n_rows, SEED)
    data = TrainData(train_rows, val_rows, fingerprint(train_rows, val_rows), n_rows)
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = make_config(
            "gpu-small", base_model=str(model_dir), out_dir=out_dir, max_steps=args.steps, batch_size=args.batch_size,
            grad_accum=1, eval_interval=10**9, eval_batches=1, checkpoint_interval=10**9, log_interval=50,
            resume=False, compile=args.compile,
        )  # fmt: skip
        print(f"{torch.cuda.get_device_name()}: SmolLM2-135M full finetune, {args.steps} steps x {args.batch_size}"
              f" x 1024 tokens, {len(train_rows)} rows, bf16 autocast, compile={args.compile}")  # fmt: skip
        result = train(cfg, data)
    mfu = "n/a (GPU not in PEAK_BF16_FLOPS)" if result.mfu is None else f"{result.mfu:.1%}"
    memory = torch.cuda.max_memory_allocated() / 2**30
    print(f"tokens/s {result.tokens_per_s:,.0f}  MFU {mfu}  final loss {result.train_loss:.3f}  "
          f"elapsed {result.elapsed_s:.0f} s  peak memory {memory:.1f} GiB")  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help=f"timed steps (CPU {STEPS}, GPU check {GPU_STEPS})")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--seq-len", type=int, default=SEQ_LEN)
    parser.add_argument("--batch-size", type=int, default=None, help=f"CPU {BATCH_SIZE}, GPU check {GPU_BATCH}")
    parser.add_argument("--docs", type=int, default=DOCS)
    parser.add_argument("--mean-doc-tokens", type=int, default=MEAN_DOC_TOKENS)
    parser.add_argument("--model", default="tiny", help="'tiny', 'smollm2' or a local HF dir (CPU comparison)")
    parser.add_argument("--lora-rank", type=int, default=0)
    parser.add_argument("--gpu-check", action="store_true", help="full finetune of SmolLM2 on one GPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (GPU check)")
    home = Path(os.environ.get("CHRONOPRISM_HOME", REPO / ".chronoprism"))
    parser.add_argument("--models-dir", type=Path, default=home / "models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.gpu_check else logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.gpu_check:
        args.steps, args.batch_size = args.steps or GPU_STEPS, args.batch_size or GPU_BATCH
        return gpu_check(args)
    args.steps, args.batch_size = args.steps or STEPS, args.batch_size or BATCH_SIZE
    return cpu_comparison(args)


if __name__ == "__main__":
    sys.exit(main())
