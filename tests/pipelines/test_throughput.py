"""[issue 14] Progress of long document stages: docs/s, MB/s and ETA, as logged and as the CLI shows them."""

from pipelines.progress import RunProgress
from pipelines.throughput import Throughput, describe_rates, format_seconds


def test_rates_and_eta_from_documents_and_bytes():
    rates = Throughput(total_docs=1000, total_bytes=None, started=100.0).counters(250, 50_000_000, now=110.0)
    assert rates == {"bytes": 50_000_000, "docs_per_s": 25.0, "mb_per_s": 5.0, "eta_s": 30.0}
    by_bytes = Throughput(total_bytes=200_000_000, started=0.0).counters(10, 50_000_000, now=10.0)
    assert by_bytes["eta_s"] == 30.0
    assert "eta_s" not in Throughput(started=0.0).counters(10, 10, now=1.0)
    assert describe_rates(rates) == "25 docs/s, 5.0 MB/s, ETA 30s"
    assert format_seconds(3725) == "1h02m" and format_seconds(125) == "2m05s"


class _Entry:
    dagster_event = None

    def __init__(self, message: str):
        self.user_message = message


def test_the_cli_line_shows_the_rates_of_a_progress_log_line():
    progress = RunProgress()
    line = progress.feed(
        _Entry(
            'progress {"stage": "documents_clean", "done": 50, "total": 200, "unit": "docs", '
            '"docs_per_s": 12.5, "mb_per_s": 0.25, "eta_s": 12}'
        )
    )
    assert line == "50/200 docs, 12 docs/s, 0.2 MB/s, ETA 12s"
