"""What `chronoprism build` shows while it runs: a live rich display on a terminal, plain lines otherwise.

The build hands each reporter the plan, every run it starts and finishes, the partitions it found fresh, and every
Dagster event of the running step (`instance.add_event_listener`). From the events the reporter takes the asset
being computed, rows written (`dagster/row_count`) and `progress {json}` log lines (see
`pipelines.metadata.ProgressLog`), whose `teacher_calls` counter gives teacher calls per second.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import dagster as dg

from pipelines.metadata import PROGRESS_PREFIX
from pipelines.plan import StepResult
from pipelines.throughput import describe_rates

TEACHER_CALL_KEYS = ("teacher_calls", "backend_calls")
TEACHER_LIVE_KEYS = ("tokens_per_s", "window", "cost_usd", "eta_s")


def describe_teacher_live(live: dict[str, float], with_eta: bool = True) -> list[str]:
    """[issue 15] 'window 64', '812 tok/s', '$0.0123', 'ETA 41s' from a teacher progress payload (the ETA only
    `with_eta`: a document stage's rates already carry it)."""
    parts = []
    if live.get("window"):
        parts.append(f"window {int(live['window'])}")
    if live.get("tokens_per_s"):
        parts.append(f"{live['tokens_per_s']:.0f} tok/s")
    if live.get("cost_usd"):
        parts.append(f"${live['cost_usd']:.4f}")
    if with_eta and live.get("eta_s"):
        parts.append(f"ETA {live['eta_s']:.0f}s")
    return parts


@dataclass
class RunProgress:
    """Live counters of the run in flight, fed by its Dagster events."""

    started: float = field(default_factory=time.monotonic)
    asset: str = ""
    rows: int = 0
    done: int | None = None
    total: int | None = None
    unit: str = "rows"
    calls_by_asset: dict[str, int] = field(default_factory=dict)
    teacher_live: dict[str, float] = field(default_factory=dict)  # [issue 15] tokens_per_s, window, cost, ETA
    rates: str = ""

    def feed(self, entry) -> str | None:
        """Update from one event log entry; return a progress line worth printing, if any."""
        event = entry.dagster_event
        if event is not None:
            if event.is_step_start and event.step_key:
                self.asset = event.step_key
            elif event.is_step_materialization:
                materialization = event.step_materialization_data.materialization
                metadata = materialization.metadata
                rows = metadata.get("dagster/row_count")
                if rows is not None:
                    self.rows += int(rows.value)
                for key in TEACHER_CALL_KEYS:
                    if key in metadata and isinstance(metadata[key].value, int):
                        self.calls_by_asset[materialization.asset_key.to_user_string()] = int(metadata[key].value)
            return None
        message = entry.user_message or ""
        if not message.startswith(PROGRESS_PREFIX):
            return None
        try:
            payload = json.loads(message[len(PROGRESS_PREFIX) :])
        except json.JSONDecodeError:
            return None
        self.asset = payload.get("stage") or self.asset
        self.done, self.total, self.unit = payload.get("done"), payload.get("total"), payload.get("unit", "rows")
        self.rates = describe_rates(payload)  # [issue 14] docs/s, MB/s, ETA of document stages
        for key in TEACHER_CALL_KEYS:
            if isinstance(payload.get(key), int):
                self.calls_by_asset[self.asset] = payload[key]
        self.teacher_live = {k: payload[k] for k in TEACHER_LIVE_KEYS if isinstance(payload.get(k), int | float)}
        return self.describe()

    @property
    def teacher_calls(self) -> int:
        return sum(self.calls_by_asset.values())

    @property
    def calls_per_s(self) -> float | None:
        seconds = time.monotonic() - self.started
        return self.teacher_calls / seconds if self.teacher_calls and seconds > 0 else None

    def describe(self) -> str:
        parts = []
        if self.done is not None:
            parts.append(f"{self.done}/{self.total} {self.unit}" if self.total else f"{self.done} {self.unit}")
        if self.rates:
            parts.append(self.rates)
        if self.rows:
            parts.append(f"{self.rows} rows written")
        if self.teacher_calls:
            rate = self.calls_per_s
            parts.append(f"{self.teacher_calls} teacher calls" + (f" ({rate:.1f}/s)" if rate else ""))
        parts.extend(describe_teacher_live(self.teacher_live, with_eta=not self.rates))
        return ", ".join(parts)


class PlainReporter:
    """One line per run started / finished and per step found fresh; progress lines as the step logs them."""

    def __init__(self, write: Callable[[str], None] = print):
        self.write = write
        self.current = RunProgress()
        self.teacher_calls = 0

    def planned(self, build_id: str, n_assets: int, n_steps: int, total: int, force: bool) -> None:
        mode = "forced: every selected partition runs" if force else "unchanged partitions are skipped"
        self.write(f"build {build_id}: {n_assets} assets in {n_steps} steps, {total} asset materializations ({mode})")

    def run_started(self, where: str, reasons: dict[dg.AssetKey, str]) -> None:
        self.current = RunProgress()
        why = "; ".join(sorted({reason for reason in reasons.values()}))[:160]
        self.write(f"{where} ..." + (f" ({why})" if why else ""))

    def on_event(self, entry) -> None:
        line = self.current.feed(entry)
        if line:
            self.write(f"    {self.current.asset}: {line}")

    def run_finished(self, where: str, result: StepResult, done: int, total: int) -> None:
        self.teacher_calls += self.current.teacher_calls
        status = "ok" if result.success else f"FAILED: {result.error}"
        detail = self.current.describe()
        self.write(f"{where} {status} ({result.seconds:.1f}s, {done}/{total}" + (f"; {detail})" if detail else ")"))

    def fresh(self, where: str, n_fresh: int, done: int, total: int) -> None:
        if n_fresh:
            self.write(f"{where} fresh: {n_fresh} skipped ({done}/{total})")

    def close(self) -> None:
        pass


class RichReporter(PlainReporter):
    """A live display above the log lines: the whole build (bar, partitions done of planned) and the run in flight
    (what it computes, rows written, teacher calls per second)."""

    def __init__(self, stream: TextIO | None = None):
        from rich.console import Console, Group
        from rich.live import Live
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(file=stream or sys.stdout)
        super().__init__(lambda line: self.console.print(escape(line), highlight=False))
        self.escape = escape
        self.overall = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        detail = TextColumn("[dim]{task.fields[detail]}")
        self.running = Progress(SpinnerColumn(), TextColumn("{task.description}"), detail, TimeElapsedColumn())
        self.overall_task = self.overall.add_task("build", total=None)
        self.run_task = self.running.add_task("", detail="", visible=False)
        self.live = Live(Group(self.overall, self.running), console=self.console, refresh_per_second=4)
        self.live.start()

    def planned(self, build_id: str, n_assets: int, n_steps: int, total: int, force: bool) -> None:
        super().planned(build_id, n_assets, n_steps, total, force)
        self.overall.update(self.overall_task, total=total, description=f"build {build_id}")

    def run_started(self, where: str, reasons: dict[dg.AssetKey, str]) -> None:
        super().run_started(where, reasons)
        self.running.reset(self.run_task, description=self.escape(where), detail="starting", visible=True)

    def on_event(self, entry) -> None:
        self.current.feed(entry)
        detail = " · ".join(filter(None, [self.current.asset, self.current.describe()]))
        self.running.update(self.run_task, detail=self.escape(detail))

    def run_finished(self, where: str, result: StepResult, done: int, total: int) -> None:
        super().run_finished(where, result, done, total)
        self.running.update(self.run_task, visible=False)
        self.overall.update(self.overall_task, completed=done)

    def fresh(self, where: str, n_fresh: int, done: int, total: int) -> None:
        super().fresh(where, n_fresh, done, total)
        self.overall.update(self.overall_task, completed=done)

    def close(self) -> None:
        self.live.stop()


def make_reporter(stream: TextIO | None = None) -> PlainReporter:
    """Rich on an interactive terminal, plain lines for pipes, CI and logs."""
    stream = stream or sys.stdout
    if stream.isatty():
        return RichReporter(stream)
    return PlainReporter(lambda line: print(line, file=stream, flush=True))
