"""Per-stage accounting that adds across partitions and feeds Dagster metadata.

Every stage ends with `stats.check()`: rows in must equal rows out plus rows rejected, or the stage raises.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl


class AccountingError(RuntimeError):
    """A stage lost or invented rows: n_in != n_out + n_rejected."""


@dataclass(slots=True)
class MetricStats:
    """Running total/count/min/max/mean/variance of one measured quantity (Welford), mergeable with +."""

    unit: str = ""
    total: float = 0.0
    n: int = 0
    min: float = math.inf
    max: float = -math.inf
    mean: float = 0.0
    m2: float = 0.0

    def update(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def __add__(self, other: MetricStats) -> MetricStats:
        if other.n == 0:
            return MetricStats(self.unit, self.total, self.n, self.min, self.max, self.mean, self.m2)
        if self.n == 0:
            return MetricStats(other.unit, other.total, other.n, other.min, other.max, other.mean, other.m2)
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        return MetricStats(
            self.unit or other.unit,
            self.total + other.total,
            n,
            min(self.min, other.min),
            max(self.max, other.max),
            mean,
            m2,
        )

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        if self.n == 0:
            return {"n": 0, "unit": self.unit}
        return {
            "n": self.n,
            "total": round(self.total, 4),
            "mean": round(self.mean, 4),
            "std": round(self.std, 4),
            "min": self.min,
            "max": self.max,
            "unit": self.unit,
        }


@dataclass(slots=True)
class StageStats:
    """Counts for one stage run: rows in, out, rejected by reason, and measured values."""

    stage: str
    n_in: int = 0
    n_out: int = 0
    rejected: Counter = field(default_factory=Counter)
    metrics: dict[str, MetricStats] = field(default_factory=dict)

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, count: int = 1) -> None:
        self.rejected[reason] += count

    def measure(self, name: str, value: float, unit: str = "") -> None:
        self.metrics.setdefault(name, MetricStats(unit=unit)).update(value)

    def check(self) -> StageStats:
        """Raise unless every row that came in went out or was rejected."""
        if self.n_in != self.n_out + self.n_rejected:
            raise AccountingError(
                f"stage {self.stage!r}: n_in={self.n_in} != n_out={self.n_out} + n_rejected={self.n_rejected} "
                f"({dict(self.rejected)})"
            )
        return self

    def __add__(self, other: StageStats) -> StageStats:
        metrics = dict(self.metrics)
        for name, value in other.metrics.items():
            metrics[name] = metrics[name] + value if name in metrics else value
        return StageStats(
            self.stage, self.n_in + other.n_in, self.n_out + other.n_out, self.rejected + other.rejected, metrics
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_rejected": self.n_rejected,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "metrics": {name: m.to_dict() for name, m in sorted(self.metrics.items())},
        }

    def to_metadata(self) -> dict[str, Any]:
        """Plain values ready for `dg.MaterializeResult(metadata=...)` (assets wrap JSON where needed)."""
        meta: dict[str, Any] = {
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_rejected": self.n_rejected,
            "rejected_by_reason": json.dumps(dict(sorted(self.rejected.items()))),
        }
        for name, m in sorted(self.metrics.items()):
            if m.n:
                meta[f"{name}_total"] = float(m.total)
                meta[f"{name}_mean"] = float(round(m.mean, 4))
        return meta


def counts_by(df: pl.DataFrame, column: str) -> dict[Any, int]:
    """{value: rows} of one column, sorted by value: the per-century / per-reason counts metadata reports."""
    return dict(df.group_by(column).len().sort(column).iter_rows())
