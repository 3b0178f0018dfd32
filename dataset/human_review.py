"""Human review of published VRD items through Label Studio: sample, label config, import, agreement, exclusion.

Value Kaleidoscope reports that annotators rated 91 % of ValuePrism's items high quality; this measures ours the
same way. `sample_for_review` draws a stratified sample (e.g. per century and kind) of published items, each with its
situation and source passage; `LABEL_CONFIG` asks three yes/no questions (relevant? valence right? explanation
right?); `read_label_studio_export` turns Label Studio's JSON export into HUMAN_REVIEW rows (the latest finished
annotation per item; a task it cannot read becomes a reject, never a silent skip); `agreement_table` gives the share
judged right per kind and century with Wilson 95 % intervals; `apply_human_review` removes items judged wrong with
reason `human_rejected`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from sources.schema import HUMAN_REVIEW, REJECTS, Reject, conform, empty, frame_of, stable_id

STAGE = "human_review"
REJECTED = "human_rejected"
VALUEPRISM_AGREEMENT = 0.91  # Sorensen et al. 2024, Value Kaleidoscope: share of ValuePrism items rated high quality
QUESTIONS = ("relevant", "valence_right", "explanation_right")
Z_95 = 1.959963984540054

LABEL_CONFIG = """<View>
  <Header value="Situation ($century, $source)"/>
  <Text name="situation" value="$situation"/>
  <Header value="$kind_label"/>
  <Text name="item" value="$item"/>
  <Text name="valence" value="$valence_line"/>
  <Text name="explanation" value="$explanation"/>
  <Header value="Source passage"/>
  <Text name="passage" value="$passage"/>
  <Header value="Is the item relevant to the situation?"/>
  <Choices name="relevant" toName="item" choice="single" showInline="true" required="true">
    <Choice value="yes"/>
    <Choice value="no"/>
  </Choices>
  <Header value="Is the valence right?"/>
  <Choices name="valence_right" toName="valence" choice="single" showInline="true" required="true">
    <Choice value="yes"/>
    <Choice value="no"/>
  </Choices>
  <Header value="Is the explanation right?"/>
  <Choices name="explanation_right" toName="explanation" choice="single" showInline="true" required="true">
    <Choice value="yes"/>
    <Choice value="no"/>
  </Choices>
</View>
"""
KIND_LABELS = {"value": "Value", "right": "Right", "duty": "Duty"}


def sample_for_review(rows: pl.DataFrame, n: int, stratify: Sequence[str] = ("century", "kind"), seed: int = 0):
    """About `n` rows spread evenly over the strata (every stratum gets n // strata, the remainder goes to the
    largest); within a stratum the order is a seeded hash of candidate_id, so the same call draws the same items."""
    if rows.is_empty() or n <= 0:
        return rows.head(0)
    keyed = rows.with_columns(
        pl.col("candidate_id").map_elements(lambda c: stable_id(seed, c), return_dtype=pl.String).alias("_order")
    ).sort("_order")
    strata = (
        keyed.group_by(list(stratify), maintain_order=True).len().sort("len", descending=True, maintain_order=True)
    )
    share, extra = divmod(n, max(strata.height, 1))
    picked = []
    for i, key in enumerate(strata.select(list(stratify)).iter_rows(named=True)):
        quota = share + (1 if i < extra else 0)
        mask = pl.all_horizontal([pl.col(c) == v for c, v in key.items()])
        picked.append(keyed.filter(mask).head(quota))
    return pl.concat(picked).drop("_order").sort(*stratify, "candidate_id")


def review_tasks(sample: pl.DataFrame) -> list[dict[str, Any]]:
    """Label Studio tasks (`[{"data": {...}}]`) for sampled rows that carry situation, kind, text, valence,
    explanation, century, candidate_id, and optionally passage and source."""
    tasks = []
    for row in sample.iter_rows(named=True):
        kind = row["kind"]
        tasks.append(
            {
                "data": {
                    "candidate_id": row["candidate_id"],
                    "century": row["century"],
                    "kind": kind,
                    "kind_label": KIND_LABELS.get(kind, kind),
                    "situation": row["situation"],
                    "item": row["text"],
                    "valence": row["valence"],
                    "valence_line": f"Valence: {row['valence']}",
                    "explanation": row.get("explanation") or "(none)",
                    "passage": row.get("passage") or "(not available)",
                    "source": row.get("source") or "unknown source",
                }
            }
        )
    return tasks


def read_label_studio_export(tasks: Iterable[Mapping[str, Any]], origin: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Label Studio JSON export -> (HUMAN_REVIEW, REJECTS). One review row per task with a finished annotation
    (the latest non-cancelled one); tasks without one are counted as unannotated rejects, and a task whose
    annotation lacks one of the three answers is a reject `incomplete_annotation`."""
    reviews, rejects = [], []
    for task in tasks:
        data = task.get("data") or {}
        ref = str(data.get("candidate_id") or task.get("id"))
        annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if not annotations:
            rejects.append(Reject.of(row_ref=ref, source=origin, stage=STAGE, reason="unannotated"))
            continue
        latest = max(
            annotations, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id", 0))
        )
        answers = {}
        for result in latest.get("result") or []:
            choices = (result.get("value") or {}).get("choices") or []
            if result.get("from_name") in QUESTIONS and choices:
                answers[result["from_name"]] = choices[0] == "yes"
        missing = [q for q in QUESTIONS if q not in answers]
        if missing or not data.get("candidate_id"):
            detail = f"missing answers {missing}" if missing else "task data has no candidate_id"
            rejects.append(
                Reject.of(row_ref=ref, source=origin, stage=STAGE, reason="incomplete_annotation", detail=detail)
            )
            continue
        reviews.append(
            {
                "candidate_id": data["candidate_id"],
                "century": data.get("century"),
                "kind": data.get("kind"),
                **answers,
                "accepted": all(answers.values()),
                "annotator": str(latest.get("completed_by")),
                "annotated_at": str(latest.get("updated_at") or latest.get("created_at") or ""),
                "label_studio_task": int(task.get("id") or 0),
                "origin": origin,
            }
        )
    frame = frame_of(reviews, HUMAN_REVIEW)
    # the same item reviewed in two rounds: the latest judgement counts
    frame = frame.sort("annotated_at").unique("candidate_id", keep="last", maintain_order=True).sort("candidate_id")
    return frame, frame_of(rejects, REJECTS)


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion (good at small n and near 0 or 1, unlike the normal approximation)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def agreement_table(review: pl.DataFrame) -> pl.DataFrame:
    """Per kind and century, plus an `all` row: items reviewed, judged right, the share and its Wilson 95 % CI."""
    review = conform(review, HUMAN_REVIEW)
    groups = [review.group_by("kind", "century").agg(pl.len().alias("n"), pl.col("accepted").sum().alias("k"))]
    groups.append(
        review.select(
            pl.lit("all").alias("kind"),
            pl.lit("all").alias("century"),
            pl.len().alias("n"),
            pl.col("accepted").sum().alias("k"),
        )
    )
    table = pl.concat([g.with_columns(pl.col("k").cast(pl.Int64), pl.col("n").cast(pl.Int64)) for g in groups])
    table = table.filter(pl.col("n") > 0)
    rows = []
    for row in table.sort("kind", "century").iter_rows(named=True):
        low, high = wilson_interval(row["k"], row["n"])
        rows.append({**row, "agreement": row["k"] / row["n"], "ci_low": low, "ci_high": high})
    return pl.DataFrame(
        rows,
        schema={
            "kind": pl.String,
            "century": pl.String,
            "n": pl.Int64,
            "k": pl.Int64,
            "agreement": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
        },
    )


def agreement_markdown(review: pl.DataFrame) -> str:
    """The card's section: agreement per kind and century beside ValuePrism's 91 %."""
    table = agreement_table(review)
    if table.is_empty():
        return ""
    lines = [
        "## Human review",
        "",
        f"Items sampled per century and kind were judged in Label Studio (relevant? valence right? explanation "
        f"right?); an item counts as right when all three are yes. ValuePrism, for comparison: "
        f"{VALUEPRISM_AGREEMENT:.0%} of its items rated high quality by annotators. Intervals are Wilson 95 %. "
        f"Items judged wrong are removed from the next build (reason `{REJECTED}`).",
        "",
        "| kind | century | reviewed | right | agreement | 95 % CI |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.iter_rows(named=True):
        lines.append(
            f"| {row['kind']} | {row['century']} | {row['n']} | {row['k']} | {row['agreement']:.0%} | "
            f"{row['ci_low']:.0%}–{row['ci_high']:.0%} |"
        )
    return "\n".join(lines) + "\n"


def apply_human_review(items: pl.DataFrame, review: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`items` (any table with candidate_id and text) without the ones judged wrong; each removed one is a
    REJECTS row (stage human_review, reason human_rejected) naming the failed questions."""
    if review is None or review.is_empty():
        return items, empty(REJECTS)
    wrong = conform(review, HUMAN_REVIEW).filter(~pl.col("accepted"))
    hit = items.join(wrong.select("candidate_id", *QUESTIONS), on="candidate_id", how="inner")
    rejects = [
        Reject.of(
            row_ref=row["candidate_id"],
            source="vrd",
            stage=STAGE,
            reason=REJECTED,
            detail="judged no: " + ", ".join(q for q in QUESTIONS if not row[q]),
            text=row.get("text") or "",
        )
        for row in hit.iter_rows(named=True)
    ]
    kept = items.join(wrong.select("candidate_id"), on="candidate_id", how="anti")
    return kept, frame_of(rejects, REJECTS)
