"""Builders for evaluation tests: a hand-built benchmark, one century model's answers to it, a data-side trend."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from sources.schema import BENCHMARK, VALUE_EVAL, VALUE_TREND, conform, frame_of


def benchmark_rows() -> pl.DataFrame:
    """Five hand-built benchmark items over two centuries; 'Honesty' twice, once spelled differently."""
    rows = [
        ("C017", "Forgiving a debt owed by a poor neighbour", "value", "Compassion", "supports"),
        ("C017", "Stealing bread from a starving family", "value", "Honesty", "opposes"),
        ("C017", "Stealing bread from a starving family", "duty", "Duty to feed one's children", "supports"),
        ("C020", "Telling a white lie to spare a friend's feelings", "value", "honesty.", "either"),
        ("C020", "Paying taxes on time", "duty", "Duty to obey the law", "supports"),
    ]
    return frame_of(
        [
            {"candidate_id": f"k{i}", "situation_id": f"s{situation}", "century": century, "doc_id": "d",
             "situation": situation, "kind": kind, "text": text, "valence": valence, "explanation": ""}
            for i, (century, situation, kind, text, valence) in enumerate(rows)
        ],
        BENCHMARK,
    )  # fmt: skip


def scored_by(century: str, predictions: list[str]) -> pl.DataFrame:
    """The benchmark as one century's model answered it (base = gold)."""
    items = benchmark_rows()
    return conform(
        items.with_columns(
            model_century=pl.lit(century), predicted=pl.Series(predictions), base_predicted=pl.col("valence"),
            logp_supports=pl.lit(-1.0), logp_opposes=pl.lit(-2.0), logp_either=pl.lit(-3.0),
            p_supports=pl.Series([1.0 if p == "supports" else 0.0 for p in predictions]),
        ),
        VALUE_EVAL,
    )  # fmt: skip


def data_trend() -> pl.DataFrame:
    rows = [  # century, kind, item, rank, n, share_of_situations, supports, opposes, either
        ("C017", "value", "honesty", 1, 10, 0.5, 1.0, 0.0, 0.0),
        ("C017", "value", "compassion", 2, 5, 0.2, 1.0, 0.0, 0.0),
        ("C018", "value", "honesty", 1, 4, 0.4, 0.5, 0.5, 0.0),
        ("C020", "value", "honesty", 1, 6, 0.3, 0.0, 1.0, 0.0),
    ]
    return pl.DataFrame(rows, schema=list(VALUE_TREND), orient="row").cast(VALUE_TREND)


def perturbed_model(base_dir: Path, out_dir: Path, seed: int = 0, scale: float = 1.0) -> Path:
    """A copy of the model in `base_dir` with seeded Gaussian noise (`scale` x each tensor's std) added to every
    weight: a "finetuned" model that really differs from its base, so a test can tell which one was scored."""
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(base_dir, out_dir)  # tokenizer and config as the base's
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in model.parameters():
            noise = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
            weight.add_(noise * scale * (weight.std() if weight.numel() > 1 else 1.0))
    model.save_pretrained(out_dir)
    return out_dir
