"""Log-likelihood valence scoring: which of supports / opposes / either does a model find most likely?

Each benchmark item (a situation and one value, right or duty) is written into one fixed prompt template; the model
scores the three continuations " supports", " opposes" and " either" by the sum of their token log-probabilities
given the prompt (lm-eval-harness's multiple-choice `acc`), and the most likely one is its answer. No sampling and no
parsing: a 135M model and an 8B one are compared on exactly the same footing. From the scored items come the
model's accuracy against the gold valence and its value profile: per normalised item text, the share of items the
model says the value supports (the model-side counterpart of the data-side valence trend).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch

from quality.normalize import normalise
from sources.schema import VALENCES

logger = logging.getLogger(__name__)

# The fixed prompt. The answer follows "Answer:", so each choice is one leading-space word (one token for SmolLM2).
VALENCE_TEMPLATE = (
    "Situation: {situation}\n"
    "{kind_title}: {text}\n"
    "Question: Does the {kind} support or oppose the situation, or either?\n"
    "Answer:"
)
CHOICES = {valence: f" {valence}" for valence in VALENCES}  # supports / opposes / either
SCORED_COLUMNS = [f"logp_{valence}" for valence in VALENCES]


def valence_prompt(situation: str, kind: str, text: str) -> str:
    """The prompt for one item; `kind` is value, right or duty."""
    return VALENCE_TEMPLATE.format(situation=situation.strip(), kind=kind, kind_title=kind.title(), text=text.strip())


@torch.no_grad()
def continuation_logprobs(
    model: torch.nn.Module, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
    batch_size: int = 16,
) -> list[float]:  # fmt: skip
    """Sum of log p(continuation | context) for each pair, batched with right padding (eval mode, restored)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(contexts), batch_size):
        pairs = list(zip(contexts[start : start + batch_size], continuations[start : start + batch_size], strict=True))
        width = max(len(ctx) + len(cont) for ctx, cont in pairs)
        ids = torch.zeros((len(pairs), width), dtype=torch.long)  # pads sit right of every real token: never seen
        for row, (ctx, cont) in enumerate(pairs):
            ids[row, : len(ctx) + len(cont)] = torch.tensor([*ctx, *cont], dtype=torch.long)
        logprobs = model(input_ids=ids.to(device)).logits.float().log_softmax(dim=-1)  # (B, T, V)
        for row, (ctx, cont) in enumerate(pairs):
            positions = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1, device=device)  # t predicts t+1
            targets = torch.tensor(cont, dtype=torch.long, device=device)
            scores.append(float(logprobs[row, positions, targets].sum()))
    model.train(was_training)
    return scores


def choice_logprobs(
    model: torch.nn.Module, tokenizer, prompts: Sequence[str], choices: Sequence[str], batch_size: int = 16
) -> torch.Tensor:
    """(n_prompts, n_choices) log-likelihoods of each choice string after each prompt."""
    prompt_ids = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    choice_ids = [tokenizer(choice, add_special_tokens=False)["input_ids"] for choice in choices]
    contexts = [ids for ids in prompt_ids for _ in choice_ids]
    continuations = [ids for _ in prompt_ids for ids in choice_ids]
    scores = continuation_logprobs(model, contexts, continuations, batch_size)
    return torch.tensor(scores, dtype=torch.float64).reshape(len(prompts), len(choices))


def score_valence(model: torch.nn.Module, tokenizer, items: pl.DataFrame, batch_size: int = 16) -> pl.DataFrame:
    """`items` (situation, kind, text, optionally valence = gold) plus logp_* per choice, p_supports, predicted."""
    prompts = [valence_prompt(s, k, t) for s, k, t in items.select("situation", "kind", "text").iter_rows()]
    if not prompts:
        return items.with_columns(
            *[pl.lit(None, pl.Float64).alias(c) for c in [*SCORED_COLUMNS, "p_supports"]],
            pl.lit(None, pl.String).alias("predicted"),
        )
    logp = choice_logprobs(model, tokenizer, prompts, list(CHOICES.values()), batch_size)
    probs = logp.softmax(dim=1)  # renormalised over the three choices
    predicted = [VALENCES[i] for i in logp.argmax(dim=1).tolist()]
    return items.with_columns(
        *[pl.Series(col, logp[:, i].tolist(), dtype=pl.Float64) for i, col in enumerate(SCORED_COLUMNS)],
        pl.Series("p_supports", probs[:, VALENCES.index("supports")].tolist(), dtype=pl.Float64),
        pl.Series("predicted", predicted, dtype=pl.String),
    )


def valence_accuracy(scored: pl.DataFrame, gold: str = "valence") -> dict:
    """Accuracy of `predicted` against the gold column over rows that have a gold label, plus the confusion counts."""
    labelled = scored.filter(pl.col(gold).is_in(list(VALENCES)))
    n = labelled.height
    correct = labelled.filter(pl.col(gold) == pl.col("predicted")).height
    confusion = {
        f"{g}->{p}": count for g, p, count in labelled.group_by(gold, "predicted").len().sort(gold, "predicted").rows()
    }
    majority = labelled[gold].value_counts().sort("count", descending=True)["count"][0] / n if n else None
    return {"n": n, "correct": correct, "accuracy": correct / n if n else None, "majority_baseline": majority,
            "confusion": confusion}  # fmt: skip


def normalise_item(text: str) -> str:
    """Group spellings of one value: NFKC, lower case, words only. The data-side trend (dataset/trend.py) keys its
    items the same way, so a model's profile and the data's join on `item`."""
    return normalise(text)


def value_profile(scored: pl.DataFrame, valence: str = "predicted", min_count: int = 1) -> pl.DataFrame:
    """Per (kind, normalised item): n items and the share judged supports / opposes / either by `valence`.

    Use `valence="predicted"` for a model's profile and `valence="valence"` for the gold (data-side) one.
    """
    frame = scored.with_columns(pl.col("text").map_elements(normalise_item, return_dtype=pl.String).alias("item"))
    aggregates = [
        pl.len().alias("n"),
        *[(pl.col(valence) == v).mean().alias(f"{v.removesuffix('s')}_share") for v in VALENCES],
    ]
    if "p_supports" in frame.columns:
        aggregates.append(pl.col("p_supports").mean().alias("mean_p_supports"))
    return (
        frame.group_by("kind", "item")
        .agg(aggregates)
        .filter(pl.col("n") >= min_count)
        .sort(["n", "kind", "item"], descending=[True, False, False])
    )


@dataclass(slots=True)
class ValenceReport:
    """One model's evaluation: every scored item, accuracy vs gold, and its value profile."""

    scored: pl.DataFrame
    accuracy: dict
    profile: pl.DataFrame


def load_scorer(model_dir: str | Path, device: str = "auto"):
    """(model, tokenizer) from a local HF dir, in eval mode: float32 on CPU, bfloat16 on a GPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def evaluate_valence(
    model_dir: str | Path, items: pl.DataFrame, batch_size: int = 16, min_count: int = 1
) -> ValenceReport:
    """Score `items` with the model in `model_dir`: the one call a `value_eval` asset needs."""
    model, tokenizer = load_scorer(model_dir)
    scored = score_valence(model, tokenizer, items, batch_size)
    report = ValenceReport(scored, valence_accuracy(scored), value_profile(scored, min_count=min_count))
    logger.info("valence: %s items, accuracy %s", report.accuracy["n"], report.accuracy["accuracy"])
    return report
