"""`chronoprism why ID`: the chain of one row from its source file to the published dataset, and where it stopped.

Any id works: a document (doc_id or the source's own id such as `kjv/01.001`), a passage, a situation, a VRD
candidate, a published row (candidate, sft example, preference pair) or a teacher call; `--text` finds the row by
its text. The chain is rebuilt from the tables themselves (ids link candidate -> situation -> passage -> document),
read through the id index (pipelines/id_index.py) so each step reads one partition file filtered on one id. For a
row that stopped somewhere it gives the stage, reason and detail of its reject (the kept copy and its Jaccard, the
relevance score against the threshold, ...); a row that vanished without a reject is reported as such, with the
blocking checks that failed on that partition. Teacher steps carry the call's prompt and raw answer from the cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.id_index import IdIndex, Location
from sources.schema import SNIPPET_CHARS
from teacher.cache import cached_calls

# entity kinds, in the order an ambiguous id is resolved (a candidate id also appears in rejects, splits...)
KIND_BY_COLUMN = (
    ("candidate_id", "vrd_candidates", "candidate"),
    ("situation_id", "situations", "situation"),
    ("passage_id", "passages", "passage"),
    ("doc_id", "documents", "document"),
    ("doc_id", "documents_clean", "document"),
    ("doc_id", None, "document"),
    ("source_doc_id", None, "document"),
    ("example_id", None, "example"),
    ("pair_id", None, "pair"),
    ("teacher_call_id", None, "teacher_call"),
    ("row_ref", None, "rejected_row"),
)
# where --text looks, most specific first: (table, text column, id column)
TEXT_COLUMNS = (
    ("vrd_candidates", "text", "candidate_id"),
    ("situations", "situation", "situation_id"),
    ("passages", "text", "passage_id"),
    ("documents", "text", "doc_id"),
)
MAX_MATCHES = 10


@dataclass(slots=True)
class Step:
    """One stage the row passed (`status` "kept"), stopped at ("dropped"), went missing at ("missing"), or a
    remark ("note")."""

    stage: str
    status: str
    summary: str
    table: str | None = None
    partition: str | None = None
    id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Explanation:
    query: str
    kind: str  # document / passage / situation / candidate / example / pair / teacher_call / rejected_row / unknown
    id: str | None
    steps: list[Step] = field(default_factory=list)
    teacher_calls: list[dict[str, Any]] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)  # every id the query matched (--text, an id prefix)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


class Lineage:
    """Reads the home's tables through the id index; one instance answers many questions."""

    def __init__(
        self,
        home: Path,
        relevance_threshold: float | None = None,
        refresh: bool = True,
        asset_graph: Callable[[], Any] | None = None,
    ):
        """`asset_graph` returns the Definitions' asset graph (only asked when a row went missing, to name the
        blocking check that stopped it; the CLI passes it, since pipelines/ below definitions cannot import it)."""
        self.home = Path(home)
        self.index = IdIndex(self.home)
        self.relevance_threshold = relevance_threshold
        self.asset_graph = asset_graph
        self._located: dict[str, list[Location]] = {}
        if refresh:
            self.index.refresh()

    # --- reading ---
    def rows(self, id_: str, table: str | None = None, column: str | None = None) -> list[tuple[Location, dict]]:
        """Every row holding `id_` (optionally only in `table` / `column`), with where it was found."""
        found = []
        for loc in self.locate(id_):
            if (table is not None and loc.table != table) or (column is not None and loc.column != column):
                continue
            found += [(loc, row) for row in _read_row(loc)]
        return found

    def locate(self, id_: str) -> list[Location]:
        if id_ not in self._located:
            self._located[id_] = self.index.locate([id_])
        return self._located[id_]

    def first(self, id_: str, table: str, column: str) -> tuple[Location, dict] | None:
        rows = self.rows(id_, table, column)
        return rows[0] if rows else None

    def rejects(self, id_: str, stage: str | None = None) -> list[tuple[Location, dict]]:
        rows = self.rows(id_, column="row_ref")
        wanted = "rejects/" if stage is None else f"rejects/{stage}"
        return [(loc, row) for loc, row in rows if loc.table.startswith(wanted)]

    def published(self, id_: str, column: str) -> list[Step]:
        steps = []
        for loc in self.locate(id_):
            if loc.table.startswith("publish/") and loc.column == column:
                relative = loc.path.relative_to(self.home / "publish").as_posix()
                config = loc.table.rsplit("/", 1)[-1]
                steps.append(
                    Step("published", "kept", f"{config} / {loc.partition}: {relative}", loc.table, loc.partition, id_)
                )
        return steps

    # --- resolving a query ---
    def resolve(self, query: str) -> tuple[str, str | None, list[str]]:
        """(kind, full id, every id matched) for an id, an id prefix or a teacher call id."""
        ids = [query]
        if not self.locate(query) and len(query) >= 6:
            ids = self.index.locate_prefix(query) or ids
        locations = self.locate(ids[0])
        for column, table, kind in KIND_BY_COLUMN:
            hits = [loc for loc in locations if loc.column == column and (table is None or loc.table == table)]
            if hits and column == "source_doc_id":  # the source's own id: answer with the doc_id
                row = pl.scan_parquet(hits[0].path).filter(pl.col(column) == ids[0]).select("doc_id").collect()
                return kind, row["doc_id"][0], ids
            if hits:
                return kind, ids[0], ids
        if cached_calls(self.home, ids[:1]):
            return "teacher_call", ids[0], ids
        return "unknown", None, []

    def find_text(self, text: str) -> list[tuple[str, str]]:
        """(kind, id) of rows whose text contains `text` (literally), most specific table first."""
        from sources.storage import Store

        store = Store(self.home)
        kinds = {"vrd_candidates": "candidate", "situations": "situation", "passages": "passage"}
        for table, column, id_column in TEXT_COLUMNS:
            lazy = store.scan(table)
            if lazy is None:
                continue
            hits = (
                lazy.filter(pl.col(column).str.contains(text, literal=True))
                .select(id_column)
                .unique(maintain_order=True)
                .head(MAX_MATCHES)
                .collect()
            )
            if hits.height:
                return [(kinds.get(table, "document"), i) for i in hits[id_column].to_list()]
        return []

    # --- chains ---
    def explain(self, query: str) -> Explanation:
        with self.index.session():
            kind, id_, matches = self.resolve(query)
            out = Explanation(query, kind, id_, matches=matches)
            self._explain_into(out, kind, id_)
        return out

    def explain_text(self, text: str) -> Explanation:
        hits = self.find_text(text)
        if not hits:
            return Explanation(f"--text {text!r}", "unknown", None)
        kind, id_ = hits[0]
        out = Explanation(f"--text {text!r}", kind, id_, matches=[i for _, i in hits])
        with self.index.session():
            self._explain_into(out, kind, id_)
        return out

    def _explain_into(self, out: Explanation, kind: str, id_: str | None) -> None:
        if id_ is None:
            return
        chain = {
            "document": self.document_chain,
            "passage": self.passage_chain,
            "situation": self.situation_chain,
            "candidate": self.candidate_chain,
            "example": self.example_chain,
            "pair": self.pair_chain,
            "teacher_call": self.call_chain,
            "rejected_row": self.rejected_chain,
        }[kind]
        out.steps = chain(id_)
        self._name_blocking_checks(out.steps)
        call_ids = [s.fields.get("teacher_call_id") for s in out.steps]
        calls = cached_calls(self.home, [c for c in call_ids if c])
        out.teacher_calls = [calls[c] for c in dict.fromkeys(call_ids) if c in calls]

    def document_chain(self, doc_id: str, downstream: bool = True) -> list[Step]:
        if self.first(doc_id, "documents", "doc_id") is None and (hit := self.rows(doc_id, column="source_doc_id")):
            doc_id = hit[0][1]["doc_id"]  # asked by the source's own id
        steps = [self._source_step(doc_id)]
        for stage, table, reject_stage in (
            ("documents", "documents", "documents"),
            ("clean", "documents_clean", "clean"),
            ("dedup", "documents_dedup", "dedup"),
            ("pretrain_corpus", "pretrain_corpus", None),
        ):
            step = self._stage_step(doc_id, stage, table, "doc_id", reject_stage)
            steps.append(step)
            if step.status == "dropped" and step.fields.get("kept_doc_id"):
                kept = self._source_step(step.fields["kept_doc_id"])
                if kept.status == "kept":
                    step.summary = (
                        f"{step.fields['reason']} of {kept.fields['source']} {kept.fields['source_doc_id']} "
                        f"({kept.fields['title']}, {kept.fields['year']}, kept), Jaccard {step.fields['jaccard']}; "
                        f"kept doc_id {step.fields['kept_doc_id']}"
                    )
            if step.status != "kept":
                return steps
            if stage == "dedup":
                copies = self.rows(doc_id, "near_duplicate_clusters", "kept_doc_id")
                if copies:
                    step.summary += f"; kept copy of a cluster of {len(copies) + 1} (its {len(copies)} copies dropped)"
                    step.fields["dropped_copies"] = [row["doc_id"] for _, row in copies[:MAX_MATCHES]]
        if not downstream:
            return steps
        steps += self.published(doc_id, "doc_id")
        passages = self.rows(doc_id, "passages", "doc_id")
        if passages:
            spans = [f"{r['char_start']}-{r['char_end']}" for _, r in passages]
            steps.append(
                Step(
                    "passages",
                    "kept",
                    f"{len(passages)} passage(s) sent to the teacher, char spans {', '.join(spans)}",
                    "passages",
                    passages[0][0].partition,
                    fields={"passage_ids": [r["passage_id"] for _, r in passages]},
                )
            )
        else:
            steps.append(self._stage_step(doc_id, "passages", "passages", "doc_id", "passages"))
        return steps

    def passage_chain(self, passage_id: str, downstream: bool = True) -> list[Step]:
        hit = self.first(passage_id, "passages", "passage_id")
        if hit is None:
            return [Step("passages", "missing", "no passage row with this id", id=passage_id)]
        loc, row = hit
        steps = self.document_chain(row["doc_id"], downstream=False)
        steps.append(
            Step(
                "passages",
                "kept",
                f"chars {row['char_start']}-{row['char_end']} of the document: {_snippet(row['text'])}",
                loc.table,
                loc.partition,
                passage_id,
                {"char_start": row["char_start"], "char_end": row["char_end"]},
            )
        )
        if downstream:
            situations = self.rows(passage_id, "situations", "passage_id")
            if situations:
                steps.append(Step("situations", "kept", f"{len(situations)} situation(s) extracted", "situations"))
            else:
                steps.append(self._stage_step(passage_id, "situations", "situations", "passage_id", "situations"))
        return steps

    def situation_chain(self, situation_id: str, downstream: bool = True) -> list[Step]:
        hit = self.first(situation_id, "situations", "situation_id")
        if hit is None:
            return [Step("situations", "missing", "no situation row with this id", id=situation_id)]
        loc, row = hit
        steps = self.passage_chain(row["passage_id"], downstream=False)
        steps.append(
            Step(
                "situations",
                "kept",
                f"teacher situation: {_snippet(row['situation'])}",
                loc.table,
                loc.partition,
                situation_id,
                {"teacher_call_id": row["teacher_call_id"]},
            )
        )
        if downstream:
            candidates = self.rows(situation_id, "vrd_candidates", "situation_id")
            if candidates:
                steps.append(Step("vrd_candidates", "kept", f"{len(candidates)} candidate(s)", "vrd_candidates"))
            else:
                steps.append(
                    self._stage_step(
                        situation_id, "vrd_candidates", "vrd_candidates", "situation_id", "vrd_candidates"
                    )
                )
            steps += self.published(situation_id, "situation_id")[:MAX_MATCHES]
        return steps

    def candidate_chain(self, candidate_id: str) -> list[Step]:
        hit = self.first(candidate_id, "vrd_candidates", "candidate_id")
        if hit is None:
            return [Step("vrd_candidates", "missing", "no candidate row with this id", id=candidate_id)]
        loc, row = hit
        steps = self.situation_chain(row["situation_id"], downstream=False)
        steps.append(
            Step(
                "vrd_candidates",
                "kept",
                f"{row['kind']}: {_snippet(row['text'])} ({row['valence']})",
                loc.table,
                loc.partition,
                candidate_id,
                {"teacher_call_id": row["teacher_call_id"], "kind": row["kind"], "valence": row["valence"]},
            )
        )
        relevant = self._stage_step(candidate_id, "relevance", "vrd_relevant", "candidate_id", "relevance")
        steps.append(relevant)
        if relevant.status != "kept":
            return steps
        score = relevant.fields.get("relevance")
        threshold = self.relevance_threshold
        relevant.summary = f"relevance {score:.3f}" + (f" >= threshold {threshold}" if threshold is not None else "")
        deduped = self._stage_step(candidate_id, "vrd_dedup", "vrd", "candidate_id", "vrd_dedup")
        steps.append(deduped)
        if deduped.status != "kept":
            return steps
        deduped.summary = (
            f"kept ({deduped.fields.get('keep_reason')}), dedup group {str(deduped.fields.get('dedup_group'))[:12]}"
        )
        split = self.first(candidate_id, "vrd_splits", "candidate_id")
        if split is None:  # judged wrong by a human reviewer, or the run stopped
            steps.append(self._stage_step(candidate_id, "vrd_splits", "vrd_splits", "candidate_id", "human_review"))
            return steps
        which = split[1]["split"]
        steps.append(Step("vrd_splits", "kept", f"split {which} (hash of its content group)", "vrd_splits", None))
        if which == "test":
            if self.first(candidate_id, "benchmark", "candidate_id"):
                steps.append(Step("benchmark", "kept", "in the decontaminated benchmark", "benchmark"))
            else:
                steps.append(
                    Step(
                        "benchmark",
                        "dropped",
                        "removed by benchmark decontamination (shares a situation, item or n-gram with training "
                        "text or the pretrain corpus)",
                        "benchmark",
                    )
                )
        for loc, pair in self.rows(candidate_id, "preference_pairs"):
            role = "chosen" if loc.column == "chosen_id" else "rejected"
            steps.append(Step("preference_pairs", "kept", f"{role} in pair {pair['pair_id'][:12]}", loc.table))
        steps += self.published(candidate_id, "candidate_id")
        return steps

    def example_chain(self, example_id: str) -> list[Step]:
        hit = self.first(example_id, "sft_mixture", "example_id")
        if hit is None:
            return [Step("sft_mixture", "missing", "no sft example with this id", id=example_id)]
        loc, row = hit
        steps = self.situation_chain(row["situation_id"], downstream=False)
        steps.append(
            Step("sft_mixture", "kept", f"{row['task']} example ({row['split']})", loc.table, None, example_id)
        )
        return steps + self.published(example_id, "example_id")

    def pair_chain(self, pair_id: str) -> list[Step]:
        hit = self.first(pair_id, "preference_pairs", "pair_id")
        if hit is None:
            return [Step("preference_pairs", "missing", "no preference pair with this id", id=pair_id)]
        loc, row = hit
        steps = self.candidate_chain(row["chosen_id"])
        steps.append(
            Step(
                "preference_pairs",
                "kept",
                f"chosen over {row['rejected_id'][:12]} ({row['rejected_reason']})",
                loc.table,
                None,
                pair_id,
                {"rejected_id": row["rejected_id"], "rejected_reason": row["rejected_reason"]},
            )
        )
        return steps + self.published(pair_id, "pair_id")

    def call_chain(self, call_id: str) -> list[Step]:
        users = self.rows(call_id, column="teacher_call_id")
        for loc, row in users:
            if loc.table == "vrd_candidates":
                return self.candidate_chain(row["candidate_id"])
        for loc, row in users:
            if loc.table == "situations":
                return self.situation_chain(row["situation_id"])
        return [Step("teacher", "note", "a cached call no table row uses", fields={"teacher_call_id": call_id})]

    def rejected_chain(self, row_ref: str) -> list[Step]:
        return [_reject_step(loc, row) for loc, row in self.rejects(row_ref)]

    def _name_blocking_checks(self, steps: list[Step]) -> None:
        """A row that went missing after a kept step: name the blocking checks that failed on that step's table
        partition (a failed gate stops every downstream asset of the run, so no reject is written)."""
        for before, step in zip(steps, steps[1:], strict=False):
            if step.status == "missing" and before.status == "kept" and before.table and self.asset_graph:
                problems = blocking_check_problems(self.asset_graph(), before.table, before.partition)
                if problems:
                    step.summary = f"not in {step.table}: blocked by {', '.join(problems)} on {before.table}"
                    step.fields["blocking_checks"] = problems

    # --- steps ---
    def _source_step(self, doc_id: str) -> Step:
        for loc, row in self.rows(doc_id, column="doc_id"):
            if loc.table.startswith("raw_") or loc.table in ("documents", "estimated_documents"):
                low, high = row.get("year_min"), row.get("year_max")
                span = f"{low}-{high}" if low != high else ""
                confidence = row.get("date_confidence")
                dated = f"year {row.get('year')}" + (f" ({span})" if span else "") + f" by {row.get('date_method')}"
                if confidence is not None:
                    dated += f", confidence {confidence:.2f}"
                return Step(
                    "source",
                    "kept",
                    f"{row.get('source')} {row.get('source_doc_id')}: {row.get('title') or '(untitled)'} "
                    f"[{row.get('provenance')}], {dated}",
                    loc.table,
                    loc.partition,
                    doc_id,
                    {
                        key: row.get(key)
                        for key in ("source", "source_doc_id", "title", "author", "year", "date_method", "provenance")
                    }
                    | {"date_confidence": confidence},
                )
        return Step("source", "missing", "no source row holds this document", id=doc_id)

    def _stage_step(self, id_: str, stage: str, table: str, column: str, reject_stage: str | None) -> Step:
        """kept (the row is in `table`), dropped (a reject names it) or missing (neither)."""
        hit = self.first(id_, table, column)
        if hit is not None:
            loc, row = hit
            fields = {k: row[k] for k in ("relevance", "dedup_group", "keep_reason", "century") if k in row}
            where = f" {loc.partition}" if loc.partition != "all" else ""
            return Step(stage, "kept", f"in {table}{where}", table, loc.partition, id_, fields)
        rejects = self.rejects(id_, reject_stage) if reject_stage else []
        if rejects:
            return _reject_step(*rejects[0])
        return Step(
            stage,
            "missing",
            f"not in {table} and no reject recorded: the run stopped upstream (a failed blocking check, or not "
            f"built yet: see `chronoprism status`)",
            table,
            id=id_,
        )


def blocking_check_problems(graph: Any, table: str, partition: str | None) -> list[str]:
    """Blocking checks of `table`'s asset that did not pass in the run that last wrote `partition`; [] when there
    is no Dagster instance to ask (DAGSTER_HOME unset) or no such asset."""
    import os

    if not os.environ.get("DAGSTER_HOME"):
        return []
    import dagster as dg

    from pipelines.freshness import RunFacts

    key = dg.AssetKey(table)
    if not graph.has(key):
        return []
    with dg.DagsterInstance.get() as instance:
        return RunFacts(instance, graph).blocking_check_problems(
            key, None if partition in (None, "all") else partition
        )


def _read_row(loc: Location) -> list[dict]:
    """The indexed row (one row group read), or, when the file changed since the index saw it, every row that holds
    the id now."""
    frame = pl.scan_parquet(loc.path).slice(loc.row, 1).collect()
    if frame.height == 1 and frame[loc.column][0] == loc.id:
        return frame.to_dicts()
    return pl.scan_parquet(loc.path).filter(pl.col(loc.column) == loc.id).collect().to_dicts()


def _reject_step(loc: Location, row: dict) -> Step:
    fields = {"reason": row["reason"], "detail": row["detail"], "reject_table": loc.table}
    kept = _detail_value(row["detail"], "kept_doc_id")
    if kept:
        fields["kept_doc_id"] = kept
        fields["jaccard"] = _detail_value(row["detail"], "jaccard")
    return Step(
        row["stage"],
        "dropped",
        f"{row['reason']}: {row['detail']}",
        loc.table,
        loc.partition,
        row["row_ref"],
        fields,
    )


def _detail_value(detail: str | None, key: str) -> str | None:
    for token in (detail or "").split():
        if token.startswith(f"{key}="):
            return token.split("=", 1)[1]
    return None


def _snippet(text: str | None, limit: int = SNIPPET_CHARS // 2) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit] + "…"


def render(explanation: Explanation, prompt_chars: int = 600) -> str:
    """The explanation as the CLI prints it: numbered steps, then each teacher call's prompt and raw answer."""
    e = explanation
    if e.id is None:
        return f"nothing found for {e.query}: not an id, id prefix or text in this home's tables"
    lines = [f"why {e.query}: {e.kind} {e.id}"]
    if len(e.matches) > 1:
        lines.append(
            f"  ({len(e.matches)} matches; showing the first. Others: {', '.join(m[:12] for m in e.matches[1:])})"
        )
    marks = {"kept": "✓", "dropped": "✗", "missing": "?", "note": "·"}
    for number, step in enumerate(e.steps, 1):
        where = f" [{step.partition}]" if step.partition and step.partition != "all" else ""
        lines.append(f"{number:>3}. {marks.get(step.status, ' ')} {step.stage:<16}{where} {step.summary}")
    for call in e.teacher_calls:
        lines.append(
            f"teacher call {call['call_id'][:12]} ({call['task']}, prompt {call['prompt_version'] or '-'}, "
            f"{call['backend']}:{call['model']}, {call['status']}):"
        )
        messages = call["request"].get("messages", [])
        prompt = messages[-1]["content"] if messages else ""
        lines.append("  prompt: " + _indent(prompt[-prompt_chars:]))
        lines.append("  answer: " + _indent(call["response"] or ""))
    return "\n".join(lines)


def _indent(text: str) -> str:
    return text.strip().replace("\n", "\n          ")
