"""Training data: token rows of one fixed length, packed (the default) or one document chunk per row (padded).

Packing concatenates documents, each followed by EOS, and cuts the stream into rows of exactly `seq_len` tokens,
so no compute is spent on padding; only the last row can be short, and its tail is masked out. Attention crosses
document boundaries inside a row (the usual GPT/ProgressGym pretraining practice; EOS marks the boundary).
The padded layout (one chunk of one document per row) exists as the baseline `benchmarks/train.py` compares with.

Which rows make step s's batch is a pure function of (seed, step): every epoch is a seeded permutation of the
rows, and step s takes the next `batch_size` positions of that endless sequence. A resumed run therefore sees
exactly the batches the uninterrupted run would have seen, with no data-loader state in the checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class TokenRows:
    """Fixed-length token rows: ids (n, seq_len) int64 and mask (n, seq_len) bool, True on real tokens.

    `loss_mask` (same shape) marks the tokens the loss is taken on when that is not every real token: SFT and DPO
    learn the completion, not the prompt. None means the loss covers every real token (continued pretraining).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    loss_mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def n_tokens(self) -> int:
        return int(self.mask.sum())

    @property
    def targets(self) -> torch.Tensor:
        """The mask the loss reads: loss_mask when set, else every real token."""
        return self.mask if self.loss_mask is None else self.loss_mask

    def take(self, index: torch.Tensor) -> TokenRows:
        loss_mask = None if self.loss_mask is None else self.loss_mask[index]
        return TokenRows(self.ids[index], self.mask[index], loss_mask)

    def to(self, device: str) -> TokenRows:
        loss_mask = None if self.loss_mask is None else self.loss_mask.to(device, non_blocking=True)
        return TokenRows(self.ids.to(device, non_blocking=True), self.mask.to(device, non_blocking=True), loss_mask)


@dataclass(slots=True)
class PairRows:
    """Preference pairs for DPO: row i of `chosen` and row i of `rejected` answer the same prompt."""

    chosen: TokenRows
    rejected: TokenRows

    def __len__(self) -> int:
        return len(self.chosen)

    @property
    def n_tokens(self) -> int:
        return self.chosen.n_tokens + self.rejected.n_tokens

    def take(self, index: torch.Tensor) -> PairRows:
        return PairRows(self.chosen.take(index), self.rejected.take(index))

    def to(self, device: str) -> PairRows:
        return PairRows(self.chosen.to(device), self.rejected.to(device))


@dataclass(slots=True)
class TrainData:
    """Train and validation rows plus the fingerprint a checkpoint records (resume only on the same data)."""

    train: TokenRows | PairRows
    val: TokenRows | PairRows
    fingerprint: str
    n_docs: int


def sample_texts(texts: Sequence[str], max_chars: int | None, seed: int) -> list[str]:
    """At most `max_chars` characters of `texts`: whole documents in a seeded random order, the last one cut.

    CPU presets train for a few dozen steps; tokenizing a whole century (C019 holds several Bible translations) would
    take longer than the training itself, and a seeded sample keeps the data fingerprint (and resumption) stable.
    """
    if max_chars is None or sum(len(text) for text in texts) <= max_chars:
        return list(texts)
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
    sample, budget = [], max_chars
    for index in order:
        if budget <= 0:
            break
        sample.append(texts[index][:budget])
        budget -= len(sample[-1])
    return sample


def tokenize(texts: Sequence[str], tokenizer) -> list[list[int]]:
    """Token ids per document, without special tokens (packing adds the EOS separators)."""
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def pack(docs: Sequence[Sequence[int]], seq_len: int, eos_id: int, pad_id: int = 0) -> TokenRows:
    """Concatenate docs (each + EOS) and cut into rows of `seq_len`; the last row is padded and masked."""
    stream = [token for doc in docs for token in (*doc, eos_id)]
    n_rows = -(-len(stream) // seq_len)  # ceil
    ids = torch.full((n_rows, seq_len), pad_id, dtype=torch.long)
    mask = torch.zeros((n_rows, seq_len), dtype=torch.bool)
    flat = torch.tensor(stream, dtype=torch.long)
    ids.view(-1)[: len(stream)] = flat
    mask.view(-1)[: len(stream)] = True
    return TokenRows(ids, mask)


def pad(docs: Sequence[Sequence[int]], seq_len: int, eos_id: int, pad_id: int = 0) -> TokenRows:
    """No packing: every doc (+ EOS) is cut into `seq_len` chunks and each chunk gets a row of its own."""
    chunks = []
    for doc in docs:
        tokens = [*doc, eos_id]
        chunks.extend(tokens[start : start + seq_len] for start in range(0, len(tokens), seq_len))
    ids = torch.full((len(chunks), seq_len), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chunks), seq_len), dtype=torch.bool)
    for row, chunk in enumerate(chunks):
        ids[row, : len(chunk)] = torch.tensor(chunk, dtype=torch.long)
        mask[row, : len(chunk)] = True
    return TokenRows(ids, mask)


def split_rows(rows: TokenRows | PairRows, val_fraction: float, seed: int) -> tuple:
    """Hold out a seeded `val_fraction` of rows (at least one); a single row serves as both, with a warning."""
    n = len(rows)
    if n == 0:
        raise ValueError("no training text: 0 token rows")
    if n == 1:
        logger.warning("only one token row: validation loss is measured on the training row")
        return rows, rows
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return rows.take(order[n_val:].sort().values), rows.take(order[:n_val].sort().values)


def fingerprint(*parts: TokenRows | PairRows) -> str:
    """sha256 over the token ids and masks: equal fingerprints mean the very same training data."""
    digest = hashlib.sha256()
    for rows in parts:
        if isinstance(rows, PairRows):
            digest.update(b"pairs")
            digest.update(fingerprint(rows.chosen, rows.rejected).encode())
            continue
        digest.update(str(tuple(rows.ids.shape)).encode())
        digest.update(rows.ids.numpy().tobytes())
        digest.update(rows.mask.numpy().tobytes())
        if rows.loss_mask is not None:
            digest.update(rows.loss_mask.numpy().tobytes())
    return digest.hexdigest()


def prepare_data(
    texts: Sequence[str], tokenizer, seq_len: int, val_fraction: float, seed: int, packing: bool = True
) -> TrainData:
    """Tokenize, pack (or pad) to `seq_len`, split off validation rows and fingerprint the result."""
    docs = tokenize(texts, tokenizer)
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    rows = (pack if packing else pad)(docs, seq_len, eos_id, pad_id)
    train, val = split_rows(rows, val_fraction, seed)
    return TrainData(train=train, val=val, fingerprint=fingerprint(train, val), n_docs=len(docs))


# -- SFT and DPO rows: prompt + completion, the loss on the completion only

Example = tuple[Sequence[int], Sequence[int]]  # (prompt ids, completion ids)


def tokenize_examples(prompts: Sequence[str], completions: Sequence[str], tokenizer) -> list[Example]:
    """(prompt ids, completion ids) per example; the prompt ends with a newline, the completion follows it."""
    prompt_ids = tokenize([f"{prompt.rstrip()}\n" for prompt in prompts], tokenizer)
    completion_ids = tokenize([completion.strip() for completion in completions], tokenizer)
    return list(zip(prompt_ids, completion_ids, strict=True))


def _example_tokens(example: Example, seq_len: int, eos_id: int) -> tuple[list[int], list[bool]]:
    """Tokens and loss flags of one example (+ EOS); longer than seq_len keeps its end, so the completion stays."""
    prompt, completion = example
    tokens = [*prompt, *completion, eos_id]
    flags = [False] * len(prompt) + [True] * (len(completion) + 1)
    return tokens[-seq_len:], flags[-seq_len:]


def _rows_of(chunks: Sequence[tuple[list[int], list[bool]]], seq_len: int, pad_id: int) -> TokenRows:
    ids = torch.full((len(chunks), seq_len), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chunks), seq_len), dtype=torch.bool)
    loss_mask = torch.zeros((len(chunks), seq_len), dtype=torch.bool)
    for row, (tokens, flags) in enumerate(chunks):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = True
        loss_mask[row, : len(flags)] = torch.tensor(flags, dtype=torch.bool)
    return TokenRows(ids, mask, loss_mask)


def pack_examples(examples: Sequence[Example], seq_len: int, eos_id: int, pad_id: int = 0) -> TokenRows:
    """SFT rows: examples (prompt + completion + EOS) packed in order; one that does not fit the current row starts
    the next, so a completion never loses its prompt to a row boundary. The loss mask covers completions only."""
    rows: list[tuple[list[int], list[bool]]] = []
    for example in examples:
        tokens, flags = _example_tokens(example, seq_len, eos_id)
        if rows and len(rows[-1][0]) + len(tokens) <= seq_len:
            rows[-1][0].extend(tokens)
            rows[-1][1].extend(flags)
        else:
            rows.append((list(tokens), list(flags)))
    return _rows_of(rows, seq_len, pad_id)


def pad_examples(examples: Sequence[Example], seq_len: int, eos_id: int, pad_id: int = 0) -> TokenRows:
    """One example per row, right-padded (DPO compares whole sequences, so they are never packed together)."""
    return _rows_of([_example_tokens(example, seq_len, eos_id) for example in examples], seq_len, pad_id)


def _special_ids(tokenizer) -> tuple[int, int]:
    eos_id = tokenizer.eos_token_id
    return eos_id, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id


def prepare_sft_data(
    train: Sequence[tuple[str, str]], val: Sequence[tuple[str, str]], tokenizer, seq_len: int, val_fraction: float,
    seed: int,
) -> TrainData:  # fmt: skip
    """(prompt, completion) pairs packed into SFT rows; `val` (the mixture's validation split) is held out as is, and
    without it a seeded `val_fraction` of the packed rows is."""
    eos_id, pad_id = _special_ids(tokenizer)
    rows = pack_examples(tokenize_examples(*_columns(train, 2), tokenizer), seq_len, eos_id, pad_id)
    if val:
        val_rows = pack_examples(tokenize_examples(*_columns(val, 2), tokenizer), seq_len, eos_id, pad_id)
    else:
        rows, val_rows = split_rows(rows, val_fraction, seed)
    return TrainData(train=rows, val=val_rows, fingerprint=fingerprint(rows, val_rows), n_docs=len(train) + len(val))


def prepare_dpo_data(
    pairs: Sequence[tuple[str, str, str]], tokenizer, seq_len: int, val_fraction: float, seed: int
) -> TrainData:
    """(prompt, chosen, rejected) triples as PairRows, a seeded `val_fraction` of the pairs held out."""
    prompts, chosen, rejected = _columns(pairs, 3)
    eos_id, pad_id = _special_ids(tokenizer)
    rows = PairRows(
        pad_examples(tokenize_examples(prompts, chosen, tokenizer), seq_len, eos_id, pad_id),
        pad_examples(tokenize_examples(prompts, rejected, tokenizer), seq_len, eos_id, pad_id),
    )
    train, val = split_rows(rows, val_fraction, seed)
    return TrainData(train=train, val=val, fingerprint=fingerprint(train, val), n_docs=len(pairs))


def _columns(rows: Sequence[tuple], width: int) -> list[list[str]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


@lru_cache(maxsize=4)
def _epoch_order(n_rows: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batch_index(position: int, batch_size: int, n_rows: int, seed: int) -> torch.Tensor:
    """Row indices of the batch that starts at `position` of the endless, per-epoch-shuffled row sequence."""
    picks = []
    for pos in range(position, position + batch_size):
        epoch, offset = divmod(pos, n_rows)
        picks.append(int(_epoch_order(n_rows, seed, epoch)[offset]))
    return torch.tensor(picks, dtype=torch.long)


def grouped_batch_index(position: int, batch_size: int, lengths: torch.Tensor, seed: int) -> torch.Tensor:
    """Length-grouped batches (HF Trainer's `group_by_length`, without its mega-batches): rows sorted by length are
    cut into batches of `batch_size`, and each epoch visits those batches in a seeded order. A batch then holds rows
    of similar length, so trimming leaves little padding; still a pure function of (seed, position)."""
    by_length = torch.argsort(lengths, descending=True, stable=True)
    n_batches = -(-len(lengths) // batch_size)
    epoch, offset = divmod(position // batch_size, n_batches)
    start = int(_epoch_order(n_batches, seed, epoch)[offset]) * batch_size
    return by_length[start : start + batch_size]


def trim(rows: TokenRows | PairRows) -> TokenRows | PairRows:
    """Drop columns past the longest real row (right padding), so padded batches cost only their longest row."""
    if isinstance(rows, PairRows):
        return PairRows(trim(rows.chosen), trim(rows.rejected))
    length = int(rows.mask.sum(dim=1).max()) if len(rows) else 0
    if length == rows.ids.shape[1]:
        return rows
    loss_mask = None if rows.loss_mask is None else rows.loss_mask[:, :length]
    return TokenRows(rows.ids[:, :length], rows.mask[:, :length], loss_mask)


def eval_batches(rows: TokenRows | PairRows, batch_size: int, max_batches: int) -> Iterator[TokenRows | PairRows]:
    """The first `max_batches` validation batches, in a fixed order, so every evaluation scores the same rows."""
    for start in range(0, min(len(rows), batch_size * max_batches), batch_size):
        yield trim(rows.take(torch.arange(start, min(start + batch_size, len(rows)))))
