"""The CLI as users run it: a subprocess on a fresh home."""

import json
import os
import subprocess
import sys

from tests.helpers import BAD_CORPUS_REASONS, make_bad_corpus


def run_cli(home, *args, check=True):
    env = {**os.environ, "CHRONOPRISM_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def test_build_bad_corpus_accounts_for_every_row_in_status_json(tmp_path):
    home = tmp_path / "home"
    expected = make_bad_corpus(tmp_path / "corpus")  # includes the 50 MB single line
    out = run_cli(home, "build", "--corpus", str(tmp_path / "corpus"), "--no-bundled", "--select", "documents")
    assert "build finished" in out.stdout and "0 failed" in out.stdout
    assert (home / "dagster" / "dagster.yaml").is_file()

    status = json.loads(run_cli(home, "status", "--json").stdout)
    rows = {p: n for p, n in status["assets"]["documents"].items() if n}
    assert rows == expected
    ingest = status["rejects"]["ingest"]
    for reasons in BAD_CORPUS_REASONS.values():
        for reason in reasons:
            assert ingest.get(reason, 0) >= 1, reason
    n_rejected = sum(ingest.values())
    assert status["assets"]["raw_user_corpus"]["all"] == sum(expected.values())
    assert n_rejected == sum(len(reasons) for reasons in BAD_CORPUS_REASONS.values())
    assert set(status["last_materialization"]["documents"]) >= set(expected)

    human = run_cli(home, "status").stdout
    assert "documents" in human and "rejects:" in human


def test_unknown_partition_is_a_clear_error(tmp_path):
    result = run_cli(tmp_path / "home", "build", "--partition", "C099", check=False)
    assert result.returncode == 2 and "unknown partition" in result.stderr
