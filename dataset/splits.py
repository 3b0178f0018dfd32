"""Training and benchmark splits (DESIGN.md §5), all keyed by content group.

A situation's split is a pure function of its content group (`group_keys`: one Bible chapter in every edition,
one document with all its passages and their situations): sha256(salt, group key) read as a number in [0, 1), so
no group spans two splits. Reruns and new data never move an existing group to another split, and every row
derived from a situation (its VRD items, its Kaleido task rows, its preference pairs, its benchmark rows) follows
it.

Formats:
- `vrd` rows: ValuePrism-like (situation, kind, text, valence, explanation, relevance) with lineage ids.
- `sft_mixture`: the four Kaleido tasks as (task, input, output) rows: generate (situation -> its values, rights
  and duties), relevance (kept items -> "yes", items sampled from other situations of the same split -> "no"),
  valence, explanation. Templates follow Kaleido's task-tagged style; they are ours, not Kaleido's strings.
- `preference_pairs`: for a training situation, a kept item (chosen) vs one the pipeline filtered out
  (rejected): an irrelevant item for "name a value", a near-duplicate for "name another value".
- `benchmark`: the test split's gold items, decontaminated afterwards (dataset/decontam.py).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import polars as pl

from quality.normalize import normalise
from quality.vrd_dedup import duplicate_of
from sources.schema import (
    BENCHMARK,
    MIXTURE,
    PREFERENCE,
    PRETRAIN,
    VRD,
    VRD_SPLIT,
    conform,
    frame_of,
    stable_id,
)
from sources.storage import Store

log = logging.getLogger(__name__)

KIND_LABEL = {"value": "Value", "right": "Right", "duty": "Duty"}


@dataclass(frozen=True, slots=True)
class SplitConfig:
    validation_fraction: float = 0.1
    test_fraction: float = 0.1  # held-out situations: the benchmark
    salt: str = "chronoprism-split-v1"  # changing it reshuffles every split
    relevance_negatives: int = 1  # negatives per positive in the relevance task (Kaleido: balanced)


def split_of(key: str, config: SplitConfig) -> str:
    """test for the first `test_fraction` of the hash range, validation for the next slice, train otherwise; `key` is
    a content group key (`group_keys`)."""
    position = position_of(key, config)
    if position < config.test_fraction:
        return "test"
    if position < config.test_fraction + config.validation_fraction:
        return "validation"
    return "train"


def position_of(key: str, config: SplitConfig) -> float:
    digest = hashlib.sha256(f"{config.salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(keys: list[str], config: SplitConfig) -> dict[str, str]:
    """`split_of` for every content group, except that with three or more groups neither held-out split is left
    empty: a small corpus has few groups (a Bible chapter is one group in every edition), and hashing alone then
    often puts none in test, which would publish an empty benchmark. The train group nearest the start of the hash
    range moves to the empty split, so the result stays a deterministic function of the set of groups."""
    splits = {key: split_of(key, config) for key in keys}
    for wanted, fraction in (("test", config.test_fraction), ("validation", config.validation_fraction)):
        if len(splits) >= 3 and fraction > 0 and wanted not in splits.values():
            train = sorted((position_of(key, config), key) for key, split in splits.items() if split == "train")
            if len(train) > 1:
                splits[train[0][1]] = wanted
    return splits


def group_keys(rows: pl.DataFrame, documents: pl.DataFrame | None = None) -> pl.Series:
    """[issue 13] The content group of each row, which decides its split, so no group spans two splits:
    - a Bible chapter: its position (`bible:01.003`, the dating module's content key), the same in every edition,
      so Genesis 3 lands on one side in Wycliffe, the KJV and the WEB although they are situations of three
      centuries;
    - any other document (a SOTU address, a play, a user's file): the document, so all situations of all its
      passages stay together;
    - without lineage: the passage, else the situation itself.
    `documents` (doc_id, source, source_doc_id) is only needed for the Bible rule."""
    from sources.dating.passages import content_key

    source_of: dict[str, tuple[str, str]] = {}
    if documents is not None and not documents.is_empty():
        for doc_id, source, source_doc_id in documents.select("doc_id", "source", "source_doc_id").iter_rows():
            source_of[doc_id] = (source, source_doc_id or "")
    keys = []
    for situation_id, passage_id, doc_id in rows.select("situation_id", "passage_id", "doc_id").iter_rows():
        if doc_id:
            source, source_doc_id = source_of.get(doc_id, ("", ""))
            keys.append(content_key(source, source_doc_id, doc_id, 0, small_source=False))
        else:
            keys.append(f"passage:{passage_id}" if passage_id else f"situation:{situation_id}")
    return pl.Series("group_key", keys, dtype=pl.String)


def build_vrd_rows(
    vrd: pl.DataFrame,
    situations: pl.DataFrame,
    passages: pl.DataFrame | None,
    config: SplitConfig,
    documents: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Kept VRD items joined to their situation text, century and source passage/document, with the split of their
    content group (`group_keys`)."""
    vrd = conform(vrd, VRD)
    rows = vrd.join(situations.select("situation_id", "situation", "century", "passage_id"), on="situation_id")
    if passages is not None and not passages.is_empty():
        rows = rows.join(passages.select("passage_id", "doc_id"), on="passage_id", how="left")
    else:
        rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias("doc_id"))
    keys = group_keys(rows, documents)
    splits = assign_splits(keys.unique().to_list(), config)
    rows = rows.with_columns(keys.replace_strict(splits, return_dtype=pl.String).alias("split"))
    dropped = vrd.height - rows.height
    if dropped:
        log.warning("%d vrd rows have no situation row and are left out of the splits", dropped)
    return conform(rows, VRD_SPLIT).sort("century", "situation_id", "kind", "candidate_id")


def item_line(kind: str, text: str) -> str:
    return f"{KIND_LABEL.get(kind, kind.title())}: {text}"


def build_sft_mixture(rows: pl.DataFrame, config: SplitConfig) -> pl.DataFrame:
    """Kaleido task rows for the train and validation situations (the test split stays out of training)."""
    out: list[dict] = []
    for split in ("train", "validation"):
        part = rows.filter(pl.col("split") == split).sort("situation_id", "kind", "candidate_id")
        out += _generate_rows(part)
        out += _relevance_rows(part, config)
        for row in part.iter_rows(named=True):
            context = f"Situation: {row['situation']}\n{item_line(row['kind'], row['text'])}"
            out.append(
                _task(
                    row,
                    "valence",
                    f"[Valence] {context}\nDoes it support or oppose the action, or either?",
                    row["valence"],
                )
            )
            if row["explanation"]:
                out.append(
                    _task(row, "explanation", f"[Explanation] {context} ({row['valence']})\nWhy?", row["explanation"])
                )
    mixture = frame_of(out, MIXTURE)
    return mixture.unique(subset="example_id", keep="first", maintain_order=True)


def _task(row: dict, task: str, prompt: str, output: str) -> dict:
    return {
        "example_id": stable_id(task, row["situation_id"], prompt, output),
        "task": task,
        "input": prompt,
        "output": output,
        "situation_id": row["situation_id"],
        "century": row["century"],
        "split": row["split"],
    }


def _generate_rows(part: pl.DataFrame) -> list[dict]:
    out = []
    for (_,), items in part.group_by(["situation_id"], maintain_order=True):
        first = items.row(0, named=True)
        listing = "\n".join(item_line(k, t) for k, t in zip(items["kind"], items["text"], strict=True))
        prompt = f"[Generate] Situation: {first['situation']}\nList the values, rights and duties at stake."
        out.append(_task(first, "generate", prompt, listing))
    return out


def _relevance_rows(part: pl.DataFrame, config: SplitConfig) -> list[dict]:
    """Each kept item is a positive; negatives are items of other situations in the same split, drawn with a
    generator seeded by the positive's id, skipping texts the situation has or was already given as negatives.
    A small split may run out of distinct negatives; then it gets fewer (the tries are bounded)."""
    items = part.select("candidate_id", "situation_id", "kind", "text").to_dicts()
    taken: dict[str, set[str]] = {}  # situation -> normalised texts it has or was already given as negatives
    for item in items:
        taken.setdefault(item["situation_id"], set()).add(normalise(item["text"]))
    out = []
    for row in part.iter_rows(named=True):
        out.append(_task(row, "relevance", _relevance_prompt(row["situation"], row["kind"], row["text"]), "yes"))
        rng = np.random.default_rng(int(stable_id(config.salt, row["candidate_id"])[:16], 16))
        seen = taken[row["situation_id"]]
        wanted = config.relevance_negatives
        for _ in range(20 * config.relevance_negatives if len(items) > 1 else 0):
            if not wanted:
                break
            other = items[int(rng.integers(len(items)))]
            key = normalise(other["text"])
            if other["situation_id"] == row["situation_id"] or key in seen:
                continue
            seen.add(key)
            prompt = _relevance_prompt(row["situation"], other["kind"], other["text"])
            out.append(_task(row, "relevance", prompt, "no"))
            wanted -= 1
    return out


def _relevance_prompt(situation: str, kind: str, text: str) -> str:
    return f"[Relevance] Situation: {situation}\n{item_line(kind, text)}\nIs it relevant to the situation? yes or no"


def build_preference_pairs(rows: pl.DataFrame, candidates: pl.DataFrame, rejects: pl.DataFrame) -> pl.DataFrame:
    """Chosen = a kept item, rejected = a filtered candidate of the same situation and kind (train split only).

    `rejects` are the relevance and vrd_dedup rejects (row_ref = candidate_id, reason, detail)."""
    train = rows.filter(pl.col("split") == "train")
    kept = {}
    for row in train.sort("relevance", "candidate_id", descending=[True, False]).iter_rows(named=True):
        kept.setdefault((row["situation_id"], row["kind"]), []).append(row)
    reasons = {
        ref: (reason, detail) for ref, reason, detail in rejects.select("row_ref", "reason", "detail").iter_rows()
    }
    kept_ids = set(train["candidate_id"])
    dropped = candidates.filter(
        pl.col("situation_id").is_in(train["situation_id"].unique().to_list())
        & ~pl.col("candidate_id").is_in(kept_ids)
    ).sort("situation_id", "kind", "candidate_id")
    pairs = []
    for bad in dropped.iter_rows(named=True):
        options = kept.get((bad["situation_id"], bad["kind"]), [])
        reason, detail = reasons.get(bad["candidate_id"], ("filtered", ""))
        label = KIND_LABEL.get(bad["kind"], bad["kind"])
        situation = options[0]["situation"] if options else None
        if reason == "near_duplicate":
            named = duplicate_of(detail)
            original = next((o for o in options if o["candidate_id"] == named), None)
            others = [o for o in options if o["candidate_id"] != named]
            if original is None or not others:
                continue
            chosen = others[0]
            prompt = (
                f"Situation: {situation}\nAlready named: {item_line(bad['kind'], original['text'])}\n"
                f"Name another {label.lower()} at stake."
            )
        else:
            if not options:
                continue
            chosen = options[0]
            prompt = f"Situation: {situation}\nName a {label.lower()} at stake."
        pairs.append(preference_pair(prompt, chosen, bad, reason, bad["situation_id"]))
    pairs += off_topic_pairs(kept, {pair["situation_id"] for pair in pairs})
    return frame_of(pairs, PREFERENCE).unique(subset="pair_id", keep="first", maintain_order=True)


def off_topic_pairs(kept: dict[tuple[str, str], list[dict]], paired: set[str]) -> list[dict]:
    """One pair for each training situation none of whose candidates was filtered: its most relevant item against
    the most relevant item of the same kind of the next training situation (an item that belongs elsewhere, as the
    relevance task's negatives do). A weak teacher filters little, so without these the split can be empty."""
    by_situation: dict[str, list[dict]] = {}
    for (situation_id, _kind), items in sorted(kept.items()):
        by_situation.setdefault(situation_id, []).extend(items)
    ring = sorted(by_situation)
    pairs = []
    for index, situation_id in enumerate(ring):
        if situation_id in paired or len(ring) < 2:
            continue
        chosen = max(by_situation[situation_id], key=lambda row: (row["relevance"] or 0.0, row["candidate_id"]))
        other = by_situation[ring[(index + 1) % len(ring)]]
        bad = next((row for row in other if row["kind"] == chosen["kind"]), other[0])
        label = KIND_LABEL.get(chosen["kind"], chosen["kind"]).lower()
        prompt = f"Situation: {chosen['situation']}\nName a {label} at stake."
        pairs.append(preference_pair(prompt, chosen, bad, "off_topic", situation_id))
    return pairs


def preference_pair(prompt: str, chosen: dict, rejected: dict, reason: str, situation_id: str) -> dict:
    """One PREFERENCE row: the prompt, both items as lines, why the rejected one lost, and their lineage ids."""
    return {
        "pair_id": stable_id(prompt, chosen["candidate_id"], rejected["candidate_id"]),
        "prompt": prompt,
        "chosen": item_line(chosen["kind"], chosen["text"]),
        "rejected": item_line(rejected["kind"], rejected["text"]),
        "rejected_reason": reason,
        "situation_id": situation_id,
        "century": chosen["century"],
        "chosen_id": chosen["candidate_id"],
        "rejected_id": rejected["candidate_id"],
    }


def build_benchmark(rows: pl.DataFrame) -> pl.DataFrame:
    """The test split's situations with their gold items (before decontamination)."""
    return conform(rows.filter(pl.col("split") == "test"), BENCHMARK)


def training_texts(vrd_rows: pl.DataFrame, mixture: pl.DataFrame, pairs: pl.DataFrame):
    """Every text unit a model trains on: train/validation `vrd` rows' situation, item text and explanation (bare,
    so an identical text elsewhere counts as an exact match), Kaleido inputs/outputs, preference prompt, chosen and
    rejected. Streamed for decontamination."""
    seen = vrd_rows.filter(pl.col("split") != "test")
    for column in ("situation", "text", "explanation"):
        yield from seen[column].unique(maintain_order=True)
    for column in ("input", "output"):
        yield from mixture[column]
    for column in ("prompt", "chosen", "rejected"):
        yield from pairs[column]


def read_split_rows(store: Store, table: str, schema: dict, splits: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Rows of a split table (one unpartitioned file with a `split` column), optionally only some splits."""
    rows = store.read(table, schema=schema, missing_ok=True)
    return rows.filter(pl.col("split").is_in(list(splits))) if splits is not None else rows


def pretrain_texts(store: Store):
    """The pretrain corpus, streamed one century at a time."""
    for century in store.partitions("pretrain_corpus"):
        yield from store.read("pretrain_corpus", century, schema=PRETRAIN)["text"]


def benchmark_references(store: Store) -> dict:
    """What the benchmark must not overlap: every training text, then the pretrain corpus (both streamed)."""
    vrd_rows = read_split_rows(store, "vrd_splits", VRD_SPLIT)
    mixture = read_split_rows(store, "sft_mixture", MIXTURE)
    pairs = store.read("preference_pairs", schema=PREFERENCE, missing_ok=True)  # unpartitioned: all train split
    return {"train": training_texts(vrd_rows, mixture, pairs), "pretrain": pretrain_texts(store)}
