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
    """Fixed-length token rows: ids (n, seq_len) int64 and mask (n, seq_len) bool, True on real tokens."""

    ids: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def n_tokens(self) -> int:
        return int(self.mask.sum())

    def take(self, index: torch.Tensor) -> TokenRows:
        return TokenRows(self.ids[index], self.mask[index])


@dataclass(slots=True)
class TrainData:
    """Train and validation rows plus the fingerprint a checkpoint records (resume only on the same data)."""

    train: TokenRows
    val: TokenRows
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


def split_rows(rows: TokenRows, val_fraction: float, seed: int) -> tuple[TokenRows, TokenRows]:
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


def fingerprint(*parts: TokenRows) -> str:
    """sha256 over the token ids and masks: equal fingerprints mean the very same training data."""
    digest = hashlib.sha256()
    for rows in parts:
        digest.update(str(tuple(rows.ids.shape)).encode())
        digest.update(rows.ids.numpy().tobytes())
        digest.update(rows.mask.numpy().tobytes())
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


def trim(rows: TokenRows) -> TokenRows:
    """Drop columns past the longest real row (right padding), so padded batches cost only their longest row."""
    length = int(rows.mask.sum(dim=1).max()) if len(rows) else 0
    if length == rows.ids.shape[1]:
        return rows
    return TokenRows(rows.ids[:, :length], rows.mask[:, :length])


def eval_batches(rows: TokenRows, batch_size: int, max_batches: int) -> Iterator[TokenRows]:
    """The first `max_batches` validation batches, in a fixed order, so every evaluation scores the same rows."""
    for start in range(0, min(len(rows), batch_size * max_batches), batch_size):
        yield trim(rows.take(torch.arange(start, min(start + batch_size, len(rows)))))
