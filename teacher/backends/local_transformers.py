"""The default teacher: a local causal LM through transformers, on CPU unless a GPU is there.

Requests are batched for real: prompts rendered with the model's chat template (plus any assistant prefix), left
padded, one `generate` per group of requests that share sampling parameters. Greedy decoding (temperature 0) is
the default so a rebuild reproduces its outputs. The loaded model is kept per process, so several assets (or
partitions) run in one process load it once.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from teacher.backends.base import TeacherRequest, TeacherResponse
from teacher.models import resolve_model_dir

logger = logging.getLogger(__name__)

MIN_SHARED_PREFIX = 32  # tokens; below this a prefix cache is not worth its bookkeeping
MAX_PREFIXES = 8  # prefix KV caches kept per backend (one per prompt kind in practice)
STOP_WINDOW = 4  # tokens decoded per step to look for a stop string (ours are one or two characters)
REPEAT_NGRAM = 16  # an answer that repeats a 16-token span verbatim is looping; stop it (the parser salvages)

_LOADED: dict[str, tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def load_model(model_dir: Path) -> tuple[Any, Any]:
    """(model, tokenizer) for a local HF dir, loaded once per process."""
    key = str(Path(model_dir).resolve())
    with _LOAD_LOCK:
        if key not in _LOADED:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            started = time.perf_counter()
            tokenizer = AutoTokenizer.from_pretrained(key)
            tokenizer.padding_side = "left"
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = torch.bfloat16 if device == "cuda" else torch.float32
            model = AutoModelForCausalLM.from_pretrained(key, dtype=dtype).to(device).eval()
            if device == "cpu":
                decode_friendly_layout(model)
            logger.info("loaded %s on %s in %.1fs", key, device, time.perf_counter() - started)
            _LOADED[key] = (model, tokenizer)
        return _LOADED[key]


def decode_friendly_layout(model: Any) -> None:
    """Store every Linear weight as the transpose of a contiguous (in, out) matrix, in place.

    `nn.Linear` computes x @ W.T; MKL's sgemm with a transposed (out, in) operand is ~4x slower for the few rows a
    decoding step has (16 x 576 @ 576 x 1536: 1.7 ms vs 0.4 ms on 2 AVX-512 cores) and no faster for prefill.
    Same values, same module API (tied embeddings see the same tensor); greedy answers are unchanged (checked on
    the demo's teacher calls) and the demo's teacher stages run ~1.45x faster.
    """
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.weight.is_contiguous():
                module.weight.data = module.weight.data.t().contiguous().t()


class TransformersBackend:
    """SmolLM2 (or any local HF causal LM dir) with batched, left-padded generation."""

    name = "transformers"
    supports_logprobs = True
    supports_prefix = True

    def __init__(self, model: str, models_dir: Path, threads: int | None = None):
        self.model = model
        self.threads = threads
        self.model_dir = resolve_model_dir(model, Path(models_dir))
        self._loaded: tuple[Any, Any] | None = None  # loaded on the first generate: a cached rebuild never needs it
        self._prefixes: dict[tuple[int, ...], Any] = {}

    @property
    def _lm(self) -> Any:
        return self._model_and_tokenizer()[0]

    @property
    def _tokenizer(self) -> Any:
        return self._model_and_tokenizer()[1]

    def _model_and_tokenizer(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = load_model(self.model_dir)
        return self._loaded

    def render(self, request: TeacherRequest) -> str:
        """The exact prompt text: chat template with the generation prompt, then the assistant prefix."""
        prompt = self._tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        return prompt + request.assistant_prefix

    def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        responses: list[TeacherResponse | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            key = (
                request.max_new_tokens,
                request.temperature,
                request.top_p,
                request.seed,
                request.top_logprobs,
                tuple(request.stop),
            )
            groups.setdefault(key, []).append(i)
        with torch_threads(self.threads):
            for indices in groups.values():
                for i, response in zip(indices, self._generate_group([requests[i] for i in indices]), strict=True):
                    responses[i] = response
        return [r for r in responses if r is not None]

    def _generate_group(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        import torch

        first = requests[0]
        tokenizer, lm = self._tokenizer, self._lm
        ids = [tokenizer(self.render(r), add_special_tokens=False)["input_ids"] for r in requests]
        inputs = self._shared_prefix_inputs(ids)
        kwargs: dict[str, Any] = {
            "max_new_tokens": first.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id,
            "return_dict_in_generate": True,
            "output_logits": first.top_logprobs > 0,
        }
        if first.temperature > 0:
            torch.manual_seed(first.seed)
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        kwargs["stopping_criteria"] = [answer_guard(inputs["input_ids"].shape[1], first.stop, tokenizer)]
        started = time.perf_counter()
        with torch.inference_mode():
            out = lm.generate(**inputs, **kwargs)
        latency = (time.perf_counter() - started) / len(requests)
        generated = out.sequences[:, inputs["input_ids"].shape[1] :]
        stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
        responses = []
        for row, request in enumerate(requests):
            new_ids = generated[row].tolist()
            end = next((j for j, t in enumerate(new_ids) if t in stop_ids), len(new_ids))
            logprobs = self._top_logprobs(out.logits[0][row], request.top_logprobs) if request.top_logprobs else None
            responses.append(
                TeacherResponse(
                    text=request.assistant_prefix + tokenizer.decode(new_ids[:end], skip_special_tokens=True),
                    completion_tokens=end,
                    prompt_tokens=len(ids[row]),
                    finish_reason="stop" if end < len(new_ids) else "length",
                    first_token_logprobs=logprobs,
                    latency_s=latency,
                )
            )
        return responses

    def _shared_prefix_inputs(self, ids: list[list[int]]) -> dict[str, Any]:
        """input_ids / attention_mask (and a KV cache of the shared prefix, when there is one worth reusing).

        Requests of one prompt kind share their system prompt and few-shot turns (~250 tokens, most of the
        prompt): that prefix is run through the model once (and kept for later batches), each request's own
        suffix is padded on its left, between the prefix and the suffix. Greedy outputs are the same as without
        the cache; only the prefill work shrinks.
        """
        import torch

        prefix_len = self._prefix_len(ids)
        width = max(len(x) for x in ids)
        if prefix_len < MIN_SHARED_PREFIX:
            input_ids = torch.full((len(ids), width), self._tokenizer.pad_token_id)
            mask = torch.zeros((len(ids), width), dtype=torch.long)
            for row, x in enumerate(ids):
                input_ids[row, width - len(x) :] = torch.tensor(x)
                mask[row, width - len(x) :] = 1
            return {"input_ids": input_ids.to(self._lm.device), "attention_mask": mask.to(self._lm.device)}
        prefix = ids[0][:prefix_len]
        input_ids = torch.full((len(ids), width), self._tokenizer.pad_token_id)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, :prefix_len] = torch.tensor(prefix)
            mask[row, :prefix_len] = 1
            input_ids[row, width - (len(x) - prefix_len) :] = torch.tensor(x[prefix_len:])
            mask[row, width - (len(x) - prefix_len) :] = 1
        cache = copy.deepcopy(self._prefix_cache(tuple(prefix)))
        cache.batch_repeat_interleave(len(ids))
        return {
            "input_ids": input_ids.to(self._lm.device),
            "attention_mask": mask.to(self._lm.device),
            "past_key_values": cache,
        }

    def _prefix_len(self, ids: list[list[int]]) -> int:
        """The shared prefix of a batch; a lone request reuses the longest prefix already cached, if any."""
        if len(ids) > 1:
            return _common_prefix_len(ids, set(self._tokenizer.all_special_ids))
        known = [len(p) for p in self._prefixes if len(ids[0]) > len(p) and tuple(ids[0][: len(p)]) == p]
        return max(known, default=0)

    def _prefix_cache(self, prefix: tuple[int, ...]) -> Any:
        import torch
        from transformers import DynamicCache

        if prefix not in self._prefixes:
            cache = DynamicCache(config=self._lm.config)
            with torch.inference_mode():
                self._lm(
                    input_ids=torch.tensor([prefix], device=self._lm.device), past_key_values=cache, use_cache=True
                )
            self._prefixes[prefix] = cache
            while len(self._prefixes) > MAX_PREFIXES:
                self._prefixes.pop(next(iter(self._prefixes)))
        return self._prefixes[prefix]

    def _top_logprobs(self, logits: Any, k: int) -> dict[str, float]:
        import torch

        logprobs = torch.log_softmax(logits.float(), dim=-1)
        values, ids = torch.topk(logprobs, k)
        result: dict[str, float] = {}
        for value, token_id in zip(values.tolist(), ids.tolist(), strict=True):
            token = self._tokenizer.decode([token_id])
            result[token] = math.log(math.exp(result[token]) + math.exp(value)) if token in result else value
        return result

    def close(self) -> None:
        """The model stays loaded for the process (shared by later backends); nothing to release per instance."""


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU thread count for one block, restored after (it is process-wide, and other stages share it)."""
    import torch

    if not threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def answer_guard(prompt_width: int, stop: list[str], tokenizer: Any, ngram: int = REPEAT_NGRAM) -> Any:
    """One stopping criterion per sequence: a stop string in the last few decoded tokens, or a loop (the last
    `ngram` generated tokens already occurred earlier in the answer: small models repeat a key/value pair until
    max tokens, which costs the whole batch its full budget, and nothing after the loop starts is usable).
    Cheaper than transformers' `stop_strings`, which prepares tables over the whole vocabulary on every call."""
    import torch
    from transformers import StoppingCriteria

    class AnswerGuard(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            generated = input_ids[:, prompt_width:].tolist()
            done = [False] * len(generated)
            for row, seq in enumerate(generated):
                if stop and any(s in tokenizer.decode(seq[-STOP_WINDOW:]) for s in stop):
                    done[row] = True
                elif len(seq) > ngram:
                    tail = seq[-ngram:]
                    done[row] = any(seq[i : i + ngram] == tail for i in range(len(seq) - ngram))
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return AnswerGuard()


def _common_prefix_len(ids: list[list[int]], boundaries: set[int]) -> int:
    """Tokens every prompt starts with, cut back to the last special token (the start of the final chat turn), so
    the prefix is the same for every batch of one prompt kind; each prompt keeps at least one token of its own."""
    limit = min(len(x) for x in ids) - 1
    n = 0
    while n < limit and all(x[n] == ids[0][n] for x in ids):
        n += 1
    while n > 0 and ids[0][n] not in boundaries:
        n -= 1
    return n
