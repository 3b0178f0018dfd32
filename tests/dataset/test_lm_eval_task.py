"""[issue 16] The lm-eval task shipped with the dataset, run by lm-eval's own CLI on the tiny local model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from dataset.lm_eval_task import TASK_DIR, write_lm_eval_task
from sources.schema import BENCHMARK
from training.base_models import tiny_model_dir

SITUATIONS = {
    "s1": (
        "Forgiving a debt in a famine",
        [("value", "Compassion", "supports"), ("duty", "Duty to repay", "opposes")],
    ),
    "s2": ("Freeing an indentured servant", [("right", "Right to liberty", "supports"), ("value", "Order", "either")]),
    "s3": ("Lying to protect a friend", [("value", "Honesty", "opposes"), ("value", "Loyalty", "supports")]),
}


def benchmark() -> pl.DataFrame:
    rows = [
        {"candidate_id": f"{sid}-{i}", "situation_id": sid, "century": "C017", "doc_id": "d", "situation": situation,
         "kind": kind, "text": text, "valence": valence, "explanation": ""}
        for sid, (situation, items) in SITUATIONS.items() for i, (kind, text, valence) in enumerate(items)
    ]  # fmt: skip
    return pl.DataFrame(rows, schema=BENCHMARK)


@pytest.mark.slow
def test_lm_eval_scores_valence_and_relevance_like_our_own_value_eval(tmp_path, models_dir):
    pytest.importorskip("lm_eval")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.valence import score_valence, valence_accuracy

    dataset = tmp_path / "dataset"
    (dataset / "data" / "benchmark").mkdir(parents=True)
    bench = benchmark()
    bench.write_parquet(dataset / "data" / "benchmark" / "test.parquet")
    assert write_lm_eval_task(dataset, bench) == 6
    model = tiny_model_dir(models_dir)
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf_cache"), "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
        "--tasks", "chronoprism", "--include_path", str(dataset / TASK_DIR), "--device", "cpu",
        "--batch_size", "8", "--output_path", str(tmp_path / "out"), "--log_samples",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (results_file,) = Path(tmp_path / "out").rglob("results_*.json")
    results = json.loads(results_file.read_text())
    assert results["n-samples"]["chronoprism_valence"]["effective"] == 6
    assert results["n-samples"]["chronoprism_relevance"]["effective"] == 12  # each gold item + one negative
    valence_acc = results["results"]["chronoprism_valence"]["acc,none"]
    assert 0 <= results["results"]["chronoprism_relevance"]["acc,none"] <= 1

    # the same items scored by chronoprism's own value_eval give the same accuracy: one prompt, one metric
    tokenizer = AutoTokenizer.from_pretrained(model)
    ours = valence_accuracy(score_valence(AutoModelForCausalLM.from_pretrained(model), tokenizer, bench))
    assert valence_acc == pytest.approx(ours["accuracy"])
