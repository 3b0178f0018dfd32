"""[issue 14] Throughput of a long document stage: documents/s, MB/s and an ETA, for progress lines.

Stages call `progress(documents, bytes)` after each batch; `Throughput.counters` turns that into the numbers a
`progress {json}` line carries (Dagster log) and `describe_rates` into the words the CLI prints.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RATE_KEYS = ("docs_per_s", "mb_per_s", "eta_s")


@dataclass(slots=True)
class Throughput:
    """Rates since `started`; the ETA extrapolates from bytes when their total is known, else from documents."""

    total_docs: int | None = None
    total_bytes: int | None = None
    started: float = field(default_factory=time.monotonic)

    def counters(self, docs: int, n_bytes: int, now: float | None = None) -> dict[str, Any]:
        seconds = max((time.monotonic() if now is None else now) - self.started, 1e-6)
        out: dict[str, Any] = {
            "bytes": int(n_bytes),
            "docs_per_s": round(docs / seconds, 1),
            "mb_per_s": round(n_bytes / seconds / 1e6, 2),
        }
        if self.total_bytes and n_bytes:
            out["eta_s"] = round(max(self.total_bytes - n_bytes, 0) * seconds / n_bytes, 1)
        elif self.total_docs and docs:
            out["eta_s"] = round(max(self.total_docs - docs, 0) * seconds / docs, 1)
        return out


def describe_rates(payload: Mapping[str, Any]) -> str:
    """'1,234 docs/s, 21.5 MB/s, ETA 3m20s' from the rate keys present in a progress payload ('' when none)."""
    parts = []
    if isinstance(payload.get("docs_per_s"), int | float):
        parts.append(f"{payload['docs_per_s']:,.0f} docs/s")
    if isinstance(payload.get("mb_per_s"), int | float):
        parts.append(f"{payload['mb_per_s']:.1f} MB/s")
    if isinstance(payload.get("eta_s"), int | float):
        parts.append(f"ETA {format_seconds(payload['eta_s'])}")
    return ", ".join(parts)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
