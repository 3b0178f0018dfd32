"""Quality gates as Great Expectations 1.x suites, behind one plain function: `validate_table`.

Each table has a suite of rules; a rule is one GX expectation tagged with a failure kind (`schema`, `not_null`,
`unique`, `year_in_century`, `valence_domain`, ...) and a level: `blocking` rules guard what would poison
downstream stages, `warn` rules are soft signals (teacher quality, short texts). Frames are polars up to the
boundary: dtypes are compared on the polars side (pandas cannot tell Int32 from Int64 reliably), then only the
columns the suite reads are handed to pandas, so a documents partition never copies its text to pandas.
Cross-table gates (split disjointness, benchmark overlap) build a small derived frame and validate that.

GX runs in an ephemeral context (nothing written to disk) created once per process; GX is imported lazily
because its import takes seconds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import polars as pl

from sources import schema as S

log = logging.getLogger(__name__)

Level = Literal["blocking", "warn"]
SAMPLE_VALUES = 5


@dataclass(frozen=True, slots=True)
class Rule:
    """One expectation: `expectation` is a GX expectation class name, `kwargs` its arguments."""

    kind: str
    expectation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    level: Level = "blocking"

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    @property
    def columns(self) -> set[str]:
        named = {self.kwargs.get(key) for key in ("column", "column_A", "column_B")}
        return {c for c in named if c}


@dataclass(slots=True)
class ValidationResult:
    """Outcome of one suite on one table: pass/fail, failing rows (or 1 for table-level rules) by kind."""

    table: str
    level: Level
    n_rows: int
    success: bool = True
    failures: dict[str, int] = field(default_factory=dict)
    details: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, kind: str, count: int, **detail: Any) -> None:
        self.success = False
        self.failures[kind] = self.failures.get(kind, 0) + max(int(count), 1)
        self.details.append({"kind": kind, **detail})

    def summary(self) -> str:
        if self.success:
            return f"{self.table}: {self.level} rules pass on {self.n_rows} rows"
        return f"{self.table}: {self.level} rules fail on {self.n_rows} rows: {self.failures}"


SCHEMAS: dict[str, Mapping[str, pl.DataType]] = {
    "documents": S.DOCUMENTS,
    "pretrain": S.PRETRAIN,
    "vrd_candidates": S.VRD_CANDIDATES,
    "vrd_relevant": S.VRD_CANDIDATES,
    "vrd": S.VRD,
    "vrd_splits": S.VRD_SPLIT,
    "sft_mixture": S.MIXTURE,
    "preference_pairs": S.PREFERENCE,
    "benchmark": S.BENCHMARK,
}
ID_COLUMNS = {
    "documents": "doc_id",
    "pretrain": "doc_id",
    "vrd_candidates": "candidate_id",
    "vrd_relevant": "candidate_id",
    "vrd": "candidate_id",
    "vrd_splits": "candidate_id",
    "sft_mixture": "example_id",
    "preference_pairs": "pair_id",
    "benchmark": "candidate_id",
}
# ids that must never be null besides the table's own id: the lineage columns (DESIGN.md §2, M16)
LINEAGE_COLUMNS = {
    "documents": ["source", "century", "year"],
    "pretrain": ["year", "source"],
    "vrd_candidates": ["situation_id"],
    "vrd_relevant": ["situation_id"],
    "vrd": ["situation_id", "dedup_group"],
    "vrd_splits": ["situation_id", "century", "split"],
    "sft_mixture": ["situation_id", "century", "split", "task"],
    "preference_pairs": ["situation_id", "century"],
    "benchmark": ["situation_id", "century"],
}


def suite_for(table: str, partition: str | None = None) -> list[Rule]:
    """Every rule for one table (both levels); `partition` is the century for century-partitioned tables."""
    if table not in SCHEMAS:
        raise KeyError(f"no suite for table {table!r}; known: {sorted(SCHEMAS)}")
    id_column = ID_COLUMNS[table]
    rules = [
        Rule("schema", "ExpectTableColumnsToMatchSet", {"column_set": list(SCHEMAS[table]), "exact_match": True}),
        Rule("not_null", "ExpectColumnValuesToNotBeNull", {"column": id_column}),
        Rule("unique", "ExpectColumnValuesToBeUnique", {"column": id_column}),
    ]
    rules += [Rule("not_null", "ExpectColumnValuesToNotBeNull", {"column": c}) for c in LINEAGE_COLUMNS[table]]
    columns = SCHEMAS[table]
    if "year" in columns and partition is not None:
        low, high = S.century_bounds(partition)
        rules.append(
            Rule(
                "year_in_century",
                "ExpectColumnValuesToBeBetween",
                {"column": "year", "min_value": low, "max_value": high},
            )
        )
    if "century" in columns and partition is not None:
        rules.append(
            Rule("year_in_century", "ExpectColumnValuesToBeInSet", {"column": "century", "value_set": [partition]})
        )
    if "kind" in columns:
        rules.append(
            Rule("kind_domain", "ExpectColumnValuesToBeInSet", {"column": "kind", "value_set": list(S.VRD_KINDS)})
        )
    if "valence" in columns:
        rules.append(
            Rule("valence_domain", "ExpectColumnValuesToBeInSet", {"column": "valence", "value_set": list(S.VALENCES)})
        )
    if "relevance" in columns:
        # vrd_candidates may still be unscored (the relevance filter scores them); later tables may not
        if table != "vrd_candidates":
            rules.append(Rule("relevance_range", "ExpectColumnValuesToNotBeNull", {"column": "relevance"}))
        rules.append(
            Rule(
                "relevance_range",
                "ExpectColumnValuesToBeBetween",
                {"column": "relevance", "min_value": 0.0, "max_value": 1.0},
            )
        )
    if table == "vrd_splits":
        rules.append(
            Rule("split_domain", "ExpectColumnValuesToBeInSet", {"column": "split", "value_set": list(S.SPLITS)})
        )
    if table == "sft_mixture":
        rules += [
            Rule(
                "split_domain",
                "ExpectColumnValuesToBeInSet",
                {"column": "split", "value_set": ["train", "validation"]},
            ),
            Rule("task_domain", "ExpectColumnValuesToBeInSet", {"column": "task", "value_set": list(S.MIXTURE_TASKS)}),
        ]
    rules += _warn_rules(table, columns)
    return rules


def _warn_rules(table: str, columns: Mapping[str, pl.DataType]) -> list[Rule]:
    """Soft signals: a weak teacher or a thin corpus shows up here without stopping the build."""
    rules = [Rule("empty_table", "ExpectTableRowCountToBeBetween", {"min_value": 1}, "warn")]
    if table in ("vrd_candidates", "vrd_relevant", "vrd", "vrd_splits", "benchmark"):
        rules += [
            Rule(
                "item_length",
                "ExpectColumnValueLengthsToBeBetween",
                {"column": "text", "min_value": 3, "max_value": 200, "mostly": 0.95},
                "warn",
            ),
            Rule(
                "explanation_missing",
                "ExpectColumnValuesToNotBeNull",
                {"column": "explanation", "mostly": 0.9},
                "warn",
            ),
        ]
    if table == "documents":
        rules.append(
            Rule(
                "year_range_order",
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "year", "column_B": "year_min", "or_equal": True},
                "warn",
            )
        )
    if table == "preference_pairs":
        rules.append(Rule("rejected_missing", "ExpectColumnValuesToNotBeNull", {"column": "rejected"}, "warn"))
    return rules


def columns_read(table: str, partition: str | None = None, level: Level = "blocking") -> set[str]:
    """[issue 14] The columns `table`'s suite at `level` looks at (besides the column set and dtypes)."""
    return set().union(*(rule.columns for rule in suite_for(table, partition) if rule.level == level))


def validate_table(
    df: pl.DataFrame, table: str, partition: str | None = None, level: Level = "blocking"
) -> ValidationResult:
    """Run `table`'s suite at `level` on `df`: the one entry point the asset checks call."""
    rules = [rule for rule in suite_for(table, partition) if rule.level == level]
    result = ValidationResult(table=table, level=level, n_rows=df.height)
    expected = SCHEMAS[table]
    if level == "blocking":
        _compare_dtypes(df, expected, result)
    runnable = [rule for rule in rules if rule.columns <= set(df.columns)]
    for rule in rules:
        if rule not in runnable:
            result.fail("schema", 1, expectation=rule.expectation, column=rule.column, note="column missing")
    _run_gx(df, runnable, f"{table}.{level}", result)
    log.info(result.summary())
    return result


def validate_rules(df: pl.DataFrame, rules: list[Rule], name: str, level: Level = "blocking") -> ValidationResult:
    """Run ad-hoc rules on a derived frame (the cross-table gates below use it)."""
    result = ValidationResult(table=name, level=level, n_rows=df.height)
    _run_gx(df, rules, name, result)
    return result


def validate_split_disjointness(tables: Mapping[str, pl.DataFrame]) -> ValidationResult:
    """Every situation lives in exactly one split across all split tables (a frame per table with
    `situation_id` and `split`; the benchmark counts as `test`)."""
    pairs = [
        frame.select("situation_id", pl.col("split") if "split" in frame.columns else pl.lit("test").alias("split"))
        for frame in tables.values()
    ]
    distinct = (
        pl.concat(pairs).unique() if pairs else pl.DataFrame(schema={"situation_id": pl.String, "split": pl.String})
    )
    rule = Rule("split_disjoint", "ExpectColumnValuesToBeUnique", {"column": "situation_id"})
    return validate_rules(distinct, [rule], "split_disjointness")


def validate_benchmark_overlap(benchmark: pl.DataFrame, rules: list[str | None]) -> ValidationResult:
    """Zero benchmark rows may share an exact text or an n-gram with training text: `rules` holds, per benchmark
    row, the contamination rule that fired or None (`dataset.decontam.find_contamination` computes them)."""
    flagged = pl.DataFrame({"candidate_id": benchmark["candidate_id"], "rule": pl.Series(rules, dtype=pl.String)})
    rule = Rule("benchmark_overlap", "ExpectColumnValuesToBeNull", {"column": "rule"})
    result = validate_rules(flagged, [rule], "benchmark_overlap")
    if not result.success:
        result.details.append({"kind": "benchmark_overlap", "by_rule": dict(Counter(r for r in rules if r))})
    return result


def _compare_dtypes(df: pl.DataFrame, expected: Mapping[str, pl.DataType], result: ValidationResult) -> None:
    for name, dtype in expected.items():
        if name in df.columns and df.schema[name] != dtype:
            result.fail("schema", 1, column=name, expected=str(dtype), observed=str(df.schema[name]))


def _run_gx(df: pl.DataFrame, rules: list[Rule], name: str, result: ValidationResult) -> None:
    if not rules:
        return
    import great_expectations as gx

    used = set().union(*(rule.columns for rule in rules))
    # keep the column set, hand pandas only the columns some rule reads
    light = df.select([pl.col(c) if c in used else pl.lit(None, dtype=pl.Null).alias(c) for c in df.columns])
    batch = _batch_definition(name).get_batch(batch_parameters={"dataframe": light.to_pandas()})
    suite = gx.ExpectationSuite(name=name, expectations=[_expectation(rule) for rule in rules])
    outcome = batch.validate(suite)
    for item in outcome.results:
        if item.success:
            continue
        config = item.expectation_config
        info = item.result or {}
        exception = (item.exception_info or {}).get("exception_message")
        result.fail(
            config.meta.get("kind", "other"),
            info.get("unexpected_count") or 1,
            expectation=config.type,
            column=config.kwargs.get("column"),
            sample=[_plain(v) for v in (info.get("partial_unexpected_list") or [])[:SAMPLE_VALUES]],
            observed=_plain(info.get("observed_value")),
            **({"error": exception} if exception else {}),
        )


def _expectation(rule: Rule):
    import great_expectations.expectations as gxe

    return getattr(gxe, rule.expectation)(**rule.kwargs, meta={"kind": rule.kind})


@cache
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # it announces its temp docs dir at INFO
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


@cache
def _batch_definition(name: str):
    source = _source()
    return source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(f"{name}.whole")


@cache
def _source():
    return _context().data_sources.add_pandas("chronoprism")


def _plain(value: Any) -> Any:
    """JSON-safe sample values for check metadata (NaN -> None, numpy scalars -> Python)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) else str(value)
