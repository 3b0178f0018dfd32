import math
from types import SimpleNamespace

import polars as pl
import pytest
import torch

from quality.normalize import normalise
from training.valence import (
    CHOICES,
    choice_logprobs,
    continuation_logprobs,
    load_scorer,
    normalise_item,
    score_valence,
    valence_accuracy,
    valence_prompt,
    value_profile,
)

# three hand-built items, one per valence; two share the value text, so the situation must decide
ITEMS = pl.DataFrame(
    {
        "situation": [
            "Forgiving a debt owed by a poor neighbour",
            "Stealing bread from a starving family",
            "Telling a white lie to spare a friend's feelings",
        ],
        "kind": ["value", "value", "value"],
        "text": ["Compassion", "Honesty", "Honesty"],
        "valence": ["supports", "opposes", "either"],
    }
)


def test_the_prompt_template_is_fixed():
    prompt = valence_prompt(" Forgiving a debt ", "right", "Right to property")
    assert prompt == (
        "Situation: Forgiving a debt\nRight: Right to property\n"
        "Question: Does the right support or oppose the situation, or either?\nAnswer:"
    )
    assert list(CHOICES.values()) == [" supports", " opposes", " either"]


def test_batched_scores_equal_one_at_a_time_scores(tiny_model, tiny_tokenizer):
    model, _ = load_scorer(tiny_model, device="cpu")
    contexts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    continuations = [[20], [21, 22, 23], [24, 25]]
    batched = continuation_logprobs(model, contexts, continuations, batch_size=3)
    alone = [continuation_logprobs(model, [c], [k])[0] for c, k in zip(contexts, continuations, strict=True)]
    assert batched == pytest.approx(alone, abs=1e-4)
    # by hand for the second pair: log p(21|11,12) + log p(22|..21) + log p(23|..22)
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([[11, 12, 21, 22, 23]])).logits.log_softmax(-1)[0]
    assert batched[1] == pytest.approx(float(logp[1, 21] + logp[2, 22] + logp[3, 23]), abs=1e-4)
    scores = choice_logprobs(model, tiny_tokenizer, ["a", "b c"], [" supports", " opposes", " either"])
    assert scores.shape == (2, 3) and bool((scores < 0).all())


class KeywordLM(torch.nn.Module):
    """A hand-built language model: once a keyword has appeared, it prefers one continuation token by 4 nats."""

    def __init__(self, tokenizer, rules: dict[str, str]):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the scorer a device to read
        self.vocab = len(tokenizer)
        self.rules = [(tokenizer(k, add_special_tokens=False)["input_ids"][0],
                       tokenizer(v, add_special_tokens=False)["input_ids"][0]) for k, v in rules.items()]  # fmt: skip

    def forward(self, input_ids):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        for row in range(input_ids.shape[0]):
            for keyword, preferred in self.rules:
                seen = (input_ids[row] == keyword).cumsum(0) > 0
                logits[row, seen, preferred] += 4.0
        return SimpleNamespace(logits=logits)


def test_log_likelihood_scoring_on_a_hand_built_example(tiny_tokenizer):
    model = KeywordLM(tiny_tokenizer, {" Forgiving": CHOICES["supports"], " Stealing": CHOICES["opposes"],
                                       " Telling": CHOICES["either"]})  # fmt: skip
    scored = score_valence(model, tiny_tokenizer, ITEMS, batch_size=2)
    assert scored["predicted"].to_list() == ["supports", "opposes", "either"]
    assert valence_accuracy(scored)["accuracy"] == 1.0
    # one preferred token out of 49152: log p = 4 - log(49151 + e^4) for it, -log(49151 + e^4) for the others
    log_z = math.log(len(tiny_tokenizer) - 1 + math.exp(4))
    assert scored.row(0, named=True)["logp_supports"] == pytest.approx(4 - log_z, abs=1e-4)
    assert scored.row(0, named=True)["logp_opposes"] == pytest.approx(-log_z, abs=1e-4)
    assert scored["p_supports"][0] == pytest.approx(math.exp(4) / (math.exp(4) + 2), abs=1e-4)
    assert valence_accuracy(scored.with_columns(predicted=pl.lit("supports")))["accuracy"] == pytest.approx(1 / 3)


def test_accuracy_and_value_profile_on_a_hand_built_frame():
    scored = pl.DataFrame(
        {
            "kind": ["value", "value", "value", "value", "duty"],
            "text": ["Honesty", "honesty.", " HONESTY ", "Compassion", "Duty to repay debts"],
            "valence": ["supports", "opposes", "supports", "supports", None],
            "predicted": ["supports", "supports", "supports", "opposes", "supports"],
            "p_supports": [0.9, 0.6, 0.7, 0.2, 0.8],
        }
    )
    accuracy = valence_accuracy(scored)
    assert accuracy["n"] == 4 and accuracy["correct"] == 2 and accuracy["accuracy"] == 0.5
    assert accuracy["confusion"] == {"opposes->supports": 1, "supports->opposes": 1, "supports->supports": 2}
    assert accuracy["majority_baseline"] == 0.75
    profile = value_profile(scored)
    honesty = profile.filter(pl.col("item") == "honesty").row(0, named=True)
    assert honesty["n"] == 3 and honesty["support_share"] == 1.0
    assert honesty["mean_p_supports"] == pytest.approx((0.9 + 0.6 + 0.7) / 3)
    gold = value_profile(scored, valence="valence").filter(pl.col("item") == "honesty").row(0, named=True)
    assert gold["support_share"] == pytest.approx(2 / 3) and gold["oppose_share"] == pytest.approx(1 / 3)
    assert profile["item"].to_list()[0] == "honesty"  # most frequent first
    assert value_profile(scored, min_count=2).height == 1


def test_normalise_item_groups_spellings():
    assert normalise_item("  Right to life! ") == normalise_item("right   to LIFE") == "right to life"
    assert normalise_item("Duty-bound, self-reliance.") == "duty bound self reliance"
    assert normalise_item("Parents' rights") == "parents rights"
    assert normalise_item("Honeſty") == normalise("honesty")  # the data-side trend's key: the two sides join
