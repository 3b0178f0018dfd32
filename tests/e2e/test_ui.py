"""The Dagster UI in a real browser: `dagster dev` on a free loopback port and a temporary home, driven by Debian's
Chromium through Playwright. It opens the asset graph and the automation page (schedule, sensors), materializes
one `documents` partition from the asset page
(its raw inputs are built first through the CLI, from a six-row corpus, to keep it quick), waits for the run to
succeed, and checks the asset page shows the materialization's metadata. Screenshots and the server log land in
`test-artifacts/ui/`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers import free_port

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
PARTITION = "C019"
UPSTREAM_OF_DOCUMENTS = "+key:documents and not key:documents"  # built by the CLI before the UI run
SERVER_START_S = 90
RUN_TIMEOUT_S = 120
RUNS_QUERY = """query Runs($partition: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $partition}]}) {
    ... on Runs { results { runId status } }
  }
}"""
LOCATIONS_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def ensure_chromium() -> None:
    """Debian's Chromium, installed with apt when missing (CI runs as root); skip only without apt."""
    if CHROMIUM.exists():
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is missing and apt-get is unavailable (or not root) to install Debian's chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-q"], check=True, env=env, capture_output=True, timeout=300)
    subprocess.run([apt, "install", "-y", "-q", "chromium"], check=True, env=env, capture_output=True, timeout=600)
    assert CHROMIUM.exists(), "apt-get install chromium did not provide /usr/bin/chromium"


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


def make_home(root: Path) -> dict[str, str]:
    """A home whose settings read only a six-row corpus (no bundled Bibles): ingest takes a second."""
    corpus = root / "corpus"
    corpus.mkdir()
    rows = [(1712, "A letter on the harvest"), (1850, "A diary of the railway"), (1851, "A sermon on thrift")]
    rows += [(1852, "A report on the schools"), (1855, "A letter on the war"), (1912, "A speech on the vote")]
    with (corpus / "letters.jsonl").open("w") as handle:
        for number, (year, title) in enumerate(rows):
            text = f"{title}, written in {year}. " * 12
            handle.write(json.dumps({"id": f"l{number}", "title": title, "text": text, "year": year}) + "\n")
    home = root / "home"
    home.mkdir()
    (home / "chronoprism.toml").write_text(f'[corpus]\ninclude_bundled = false\ncorpus_dirs = ["{corpus}"]\n')
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHRONOPRISM")}
    env.pop("DAGSTER_HOME", None)
    return {**env, "CHRONOPRISM_HOME": str(home), "CHRONOPRISM_EXECUTOR": "in_process", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    ensure_chromium()
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = make_home(tmp_path_factory.mktemp("ui"))
    built = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "build", "--select", UPSTREAM_OF_DOCUMENTS, "--no-upstream"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    env["DAGSTER_HOME"] = str(Path(env["CHRONOPRISM_HOME"]) / "dagster")  # made by the CLI, dagster.yaml inside
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (ARTIFACTS / "dagster-dev.log").open("w")
    command = [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # a shell's background job ignores SIGINT, and Python keeps it ignored: restore it so SIGINT stops the server
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_until_loaded(base, server)
        graphql(base, "mutation { setNuxSeen }")  # no first-visit "community" modal over the pages
        yield base
    finally:
        stop(server)
        log.close()


def wait_until_loaded(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"dagster dev exited with {server.returncode}; see {ARTIFACTS}/dagster-dev.log"
        try:
            entries = graphql(base, LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            entries = []
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            loaded = [entry["locationOrLoadError"] for entry in entries]
            assert all(item["__typename"] == "RepositoryLocation" for item in loaded), loaded
            return
        time.sleep(0.5)
    pytest.fail(f"dagster dev did not load the code location within {SERVER_START_S}s")


def stop(server: subprocess.Popen) -> None:
    """SIGINT, as Ctrl-C would; the process group is killed only if it does not exit in time."""
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def wait_for_run(base: str) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        runs = graphql(base, RUNS_QUERY, {"partition": PARTITION})["runsOrError"]["results"]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]["status"]
        time.sleep(1)
    return "TIMEOUT"


def test_materialize_a_documents_partition_from_the_ui(ui):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)  # the UI and this machine may both be slow; failures still say what
        try:
            page.goto(f"{ui}/asset-groups")
            for group in ("sources", "monitoring"):
                expect(page.get_by_text(group, exact=True).first).to_be_visible()
            expect(page.get_by_text("fetching statuses")).to_have_count(0)
            page.screenshot(path=ARTIFACTS / "01-asset-graph.png")

            page.goto(f"{ui}/locations/pipelines.definitions/asset-groups/sources")
            expect(page.get_by_text("raw_user_corpus").first).to_be_visible()
            expect(page.get_by_text(re.compile(r"^Loading"))).to_have_count(0)
            page.screenshot(path=ARTIFACTS / "02-sources-group.png")

            page.goto(f"{ui}/automation")
            for name in ("weekly_rebuild", "corpus_files_sensor", "run_failure_recorder", "chronoprism_automation"):
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            expect(page.get_by_text(re.compile(r"^Scheduled At 03:00"))).to_be_visible()  # the rows have loaded
            page.screenshot(path=ARTIFACTS / "03-automation.png")

            page.goto(f"{ui}/assets/documents")
            expect(page.get_by_text("raw_user_corpus").first).to_be_visible()  # the page has its data
            page.get_by_role("button", name="Materialize…").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("Select a partition or create one").click()
            page.get_by_placeholder("Filter partitions").fill(PARTITION)
            page.locator("span").filter(has_text=re.compile(f"^{PARTITION}$")).first.click()
            dialog.get_by_text("Launch runs to materialize documents").click()  # closes the partition list
            page.screenshot(path=ARTIFACTS / "04-launch-one-partition.png")
            dialog.get_by_role("button", name="Launch 1 run").click()

            status = wait_for_run(ui)
            page.goto(f"{ui}/runs")
            expect(page.get_by_text(PARTITION).first).to_be_visible()
            page.screenshot(path=ARTIFACTS / "05-runs.png")
            assert status == "SUCCESS", f"the documents [{PARTITION}] run ended {status}; see the runs screenshot"

            page.goto(f"{ui}/assets/documents?partition={PARTITION}")
            for shown in ("n_out", "rows_per_source", "preview"):
                expect(page.get_by_text(shown, exact=True).first).to_be_visible()
            expect(page.get_by_text("user:corpus").first).to_be_visible()  # from the preview of the rows
            page.screenshot(path=ARTIFACTS / "06-documents-metadata.png", full_page=True)
        except Exception:
            page.screenshot(path=ARTIFACTS / "failure.png", full_page=True)
            raise
        finally:
            browser.close()
