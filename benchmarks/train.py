"""Training throughput of the tiny model on CPU, with and without our data loader's packing.

Both layouts hold the same documents (random token ids, log-normal lengths like passage-sized text) and go through
the same `training.finetune.train` loop; only the row layout differs:
- packed: documents + EOS concatenated and cut into full `seq_len` rows (training/data.py: pack)
- padded: one chunk of one document per row, padded, each batch trimmed to its longest row (data.py: pad + trim)
Throughput counts real (unpadded) tokens per second, after one warm-up step, so a regression in packing, batching
or the step itself shows as a lower packed figure or a smaller ratio.

    python benchmarks/train.py                       # defaults below
    python benchmarks/train.py --steps 40 --seq-len 256
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.base_models import tiny_model_dir  # noqa: E402
from training.data import TrainData, fingerprint, pack, pad, split_rows  # noqa: E402
from training.finetune import train  # noqa: E402
from training.presets import make_config  # noqa: E402

STEPS = 20  # timed steps per layout (the first, warm-up step is not timed)
SEQ_LEN = 128
BATCH_SIZE = 8
DOCS = 600
MEAN_DOC_TOKENS = 60  # passage-sized documents: where padding wastes the most
SEED = 0


def make_docs(n_docs: int, mean_tokens: int, vocab: int, seed: int) -> list[list[int]]:
    """Random token documents with log-normal lengths (sigma 0.8), at least 4 tokens each."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.empty(n_docs).log_normal_(
        mean=float(torch.tensor(mean_tokens).log()) - 0.32, std=0.8, generator=gen
    )
    return [torch.randint(3, vocab, (max(4, int(n)),), generator=gen).tolist() for n in lengths]


def run(layout: str, docs: list[list[int]], model_dir: Path, args, eos_id: int) -> tuple[float, int]:
    rows = (pack if layout == "packed" else pad)(docs, args.seq_len, eos_id, eos_id)
    train_rows, val_rows = split_rows(rows, val_fraction=0.01, seed=SEED)
    data = TrainData(train_rows, val_rows, fingerprint(train_rows, val_rows), len(docs))
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = make_config(
            "cpu-tiny", base_model=str(model_dir), out_dir=out_dir, seq_len=args.seq_len, batch_size=args.batch_size,
            max_steps=args.steps + 1, eval_interval=10**9, eval_batches=1, checkpoint_interval=10**9, resume=False,
            log_interval=10**9, packing=layout == "packed",
        )  # fmt: skip
        result = train(cfg, data)
    return result.tokens_per_s or 0.0, len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seq-len", type=int, default=SEQ_LEN)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--docs", type=int, default=DOCS)
    parser.add_argument("--mean-doc-tokens", type=int, default=MEAN_DOC_TOKENS)
    home = Path(os.environ.get("CHRONOPRISM_HOME", REPO / ".chronoprism"))
    parser.add_argument("--models-dir", type=Path, default=home / "models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    model_dir = tiny_model_dir(args.models_dir)
    docs = make_docs(args.docs, args.mean_doc_tokens, vocab=49152, seed=SEED)
    eos_id = 2
    packed, padded = pack(docs, args.seq_len, eos_id), pad(docs, args.seq_len, eos_id)
    # agreement before speed: both layouts carry exactly the same real tokens
    same = torch.equal(packed.ids[packed.mask].sort().values, padded.ids[padded.mask].sort().values)
    n_real = packed.n_tokens
    print(f"{len(docs)} docs, {n_real:,} tokens; packed {len(packed)} rows, padded {len(padded)} rows "
          f"({n_real / padded.mask.numel():.0%} of padded cells are real tokens); same tokens: {same}")  # fmt: skip
    if not same:
        return 1
    torch.manual_seed(SEED)
    results = {layout: run(layout, docs, model_dir, args, eos_id) for layout in ("packed", "padded")}
    for layout, (rate, n_rows) in results.items():
        print(f"{layout:7s} {rate:10,.0f} real tokens/s  ({n_rows} rows of {args.seq_len}, batch {args.batch_size}, "
              f"{args.steps} timed steps, {torch.get_num_threads()} threads)")  # fmt: skip
    print(f"ratio packed/padded: {results['packed'][0] / max(results['padded'][0], 1e-9):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
