"""SFT and DPO: prompt + completion rows, the completion-only loss, the DPO objective, and real LoRA on SmolLM2."""

import math
from types import SimpleNamespace

import pytest
import torch

from training.data import (
    PairRows,
    TokenRows,
    fingerprint,
    pack_examples,
    pad_examples,
    prepare_dpo_data,
    prepare_sft_data,
    trim,
)
from training.finetune import ADAPTER_DIR, MODEL_DIR, DPOLoss, LanguageModelLoss, evaluate, stack_pairs, train
from training.presets import make_config

EOS = 2
SFT = [
    ("[Valence] Situation: Forgiving a debt\nValue: Compassion\nDoes it support or oppose?", "supports"),
    ("[Valence] Situation: Stealing bread\nValue: Honesty\nDoes it support or oppose?", "opposes"),
    ("[Relevance] Situation: Paying taxes\nDuty: Duty to obey the law\nIs it relevant? yes or no", "yes"),
    ("[Generate] Situation: Sparing an enemy\nList the values, rights and duties at stake.", "Value: Mercy"),
] * 4
PAIRS = [
    ("Situation: Forgiving a debt\nName a value at stake.", "Value: Compassion", "Value: Thrift"),
    ("Situation: Stealing bread\nName a value at stake.", "Value: Honesty", "Value: Hunger"),
    ("Situation: Paying taxes\nName a duty at stake.", "Duty: Duty to obey the law", "Duty: Duty to spend"),
] * 4


def test_pack_examples_puts_the_loss_on_completions_and_never_splits_an_example():
    examples = [([10, 11, 12], [20, 21]), ([13, 14], [22]), ([15] * 6, [23])]
    rows = pack_examples(examples, seq_len=10, eos_id=EOS, pad_id=0)
    # row 0: 3 + 2 + EOS = 6, then 2 + 1 + EOS = 4 -> full; row 1: the third example (8 tokens) on its own
    assert rows.ids[0].tolist() == [10, 11, 12, 20, 21, EOS, 13, 14, 22, EOS]
    assert rows.loss_mask[0].tolist() == [False] * 3 + [True] * 3 + [False] * 2 + [True] * 2
    assert rows.ids[1].tolist() == [15] * 6 + [23, EOS, 0, 0] and rows.mask[1].tolist() == [True] * 8 + [False] * 2
    assert rows.loss_mask[1].tolist() == [False] * 6 + [True, True, False, False]
    # an example longer than a row keeps its end: the completion survives, the prompt's start goes
    (long,) = pack_examples([(list(range(30, 40)), [24, 25])], seq_len=5, eos_id=EOS).ids.tolist()
    assert long == [38, 39, 24, 25, EOS]


def test_trim_and_take_keep_the_loss_mask():
    rows = pad_examples([([10, 11], [20]), ([12], [21, 22, 23])], seq_len=8, eos_id=EOS)
    trimmed = trim(rows.take(torch.tensor([1, 0])))
    assert trimmed.ids.shape == (2, 5) and trimmed.loss_mask.tolist()[0] == [False, True, True, True, True]
    assert fingerprint(rows) != fingerprint(TokenRows(rows.ids, rows.mask))  # the loss mask is part of the data


def test_dpo_pairs_stack_chosen_then_rejected():
    pairs = PairRows(
        pad_examples([([10], [20, 21, 22])], 8, EOS), pad_examples([([10], [30])], 8, EOS)
    )  # fmt: skip
    batch = stack_pairs(trim(pairs))
    assert batch.ids.tolist() == [[10, 20, 21, 22, EOS], [10, 30, EOS, 0, 0]]
    assert batch.targets.tolist() == [[False, True, True, True, True], [False, True, True, False, False]]


def tiny_stage_config(tiny_model, out_dir, stage: str, **overrides):
    values = dict(base_model=str(tiny_model), out_dir=str(out_dir), seq_len=64, batch_size=4, eval_batches=2,
                  warmup_steps=1, checkpoint_interval=100)  # fmt: skip
    return make_config("cpu-tiny", stage=stage, **{**values, **overrides})


def test_sft_learns_the_completions_only(tiny_model, tiny_tokenizer, tmp_path):
    cfg = tiny_stage_config(tiny_model, tmp_path, "sft", max_steps=12, eval_interval=12, learning_rate=5e-3)
    data = prepare_sft_data(SFT, SFT[:4], tiny_tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed)
    assert data.train.loss_mask.sum() < data.train.mask.sum()  # prompts carry no loss
    result = train(cfg, data)
    assert result.val_history[-1]["val_loss"] < result.val_history[0]["val_loss"] - 2.0
    # the validation loss is measured on the completion tokens only: ~uniform for the random model at step 0
    assert result.val_history[0]["val_loss"] == pytest.approx(math.log(len(tiny_tokenizer)), rel=0.05)


@pytest.mark.parametrize("lora_rank", [0, 4])  # full finetune: frozen copy as reference; LoRA: adapters off
def test_dpo_starts_at_log2_and_learns_the_preference(tiny_model, tiny_tokenizer, tmp_path, lora_rank):
    cfg = tiny_stage_config(tiny_model, tmp_path, "dpo", max_steps=10, eval_interval=10, lora_rank=lora_rank,
                            learning_rate=1e-2 if lora_rank else 2e-3, val_fraction=0.25)  # fmt: skip
    assert cfg.objective == "dpo"
    data = prepare_dpo_data(PAIRS, tiny_tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed)
    assert isinstance(data.train, PairRows) and len(data.train) + len(data.val) == len(PAIRS)
    result = train(cfg, data)
    # policy == reference at step 0: every margin is 0 and the loss is -log sigmoid(0) = log 2
    assert result.val_history[0]["val_loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert result.val_history[-1]["val_loss"] < math.log(2) - 0.05  # the repeated pairs are learnt
    assert (tmp_path / MODEL_DIR / "config.json").is_file()


class UnigramLM(torch.nn.Module):
    """The same next-token logits at every position: log-probs are known in closed form."""

    def __init__(self, logits: list[float]):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(logits))

    def forward(self, input_ids):
        return SimpleNamespace(logits=self.table.expand(*input_ids.shape, len(self.table)))


def test_dpo_loss_by_hand():
    """Chosen completion [3], rejected [4], both + EOS; the policy prefers token 3 by 2 nats, the reference is flat:
    the margin is 2 and the loss -log sigmoid(2 beta)."""
    pairs = PairRows(pad_examples([([1], [3])], 4, EOS), pad_examples([([1], [4])], 4, EOS))
    policy, reference = UnigramLM([0.0, 0.0, 0.0, 2.0, 0.0]), UnigramLM([0.0] * 5)
    losses = DPOLoss(beta=0.5, reference=reference).pair_losses(policy, trim(pairs))
    assert losses.tolist() == pytest.approx([math.log(1 + math.exp(-1.0))])
    losses.sum().backward()  # gradients reach the policy, not the reference
    assert policy.table.grad is not None and reference.table.grad is None
    assert LanguageModelLoss()(policy, trim(pairs.chosen)) > 0


@pytest.fixture(scope="module")
def smollm2_dir(models_dir):
    from teacher.models import smollm2_hf_dir

    return smollm2_hf_dir(models_dir)


def test_real_lora_steps_on_the_packaged_smollm2(smollm2_dir, tmp_path):
    """A few LoRA steps on SmolLM2-135M-Instruct: the loss falls, and the saved adapter loads back onto the base and
    reproduces the merged model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    cfg = make_config("cpu-small", stage="sft", base_model=str(smollm2_dir), out_dir=str(tmp_path), seq_len=48,
                      max_steps=3, eval_interval=3, learning_rate=2e-3, checkpoint_interval=100)  # fmt: skip
    assert cfg.lora_rank == 8
    data = prepare_sft_data(SFT[:4], SFT[:2], tokenizer, cfg.seq_len, cfg.val_fraction, cfg.seed)
    result = train(cfg, data)
    assert result.n_trainable < result.n_params / 20
    assert result.val_history[-1]["val_loss"] < result.val_history[0]["val_loss"]
    assert result.history[-1]["loss"] < result.history[0]["loss"]

    base = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    adapted = PeftModel.from_pretrained(base, tmp_path / ADAPTER_DIR).eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / MODEL_DIR).eval()
    batch = trim(data.val)
    with torch.no_grad():
        assert torch.allclose(adapted(input_ids=batch.ids).logits, merged(input_ids=batch.ids).logits, atol=1e-3)
    assert evaluate(merged, [batch]) == pytest.approx(result.val_history[-1]["val_loss"], rel=1e-3)
