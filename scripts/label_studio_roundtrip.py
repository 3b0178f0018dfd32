"""Drive a real Label Studio server through the review loop: create a project, import tasks, annotate, export.

Produces the Label Studio JSON export that `chronoprism review import` reads. The server is real (the
`label-studio` package, started here on a free loopback port with a throw-away data dir); the annotator is this
script, which answers each task by a fixed rule so the export is reproducible: an item whose candidate_id hash
falls in the first `--reject-share` of the range is judged "not relevant", one in the next slice "valence wrong";
everything else is judged right.

Label Studio would downgrade packages the project pins (numpy, pyarrow, openai), so it lives in its own venv,
found via `--label-studio`, the `LABEL_STUDIO_BIN` env var, `.venv-label-studio/bin/label-studio` or PATH:

    python -m venv .venv-label-studio && .venv-label-studio/bin/pip install label-studio==1.23.2
    chronoprism review export --n 24 --stratify century,kind --out /tmp/review
    python scripts/label_studio_roundtrip.py --tasks /tmp/review/tasks.json --config /tmp/review/label_config.xml \\
        --out tests/fixtures/label_studio/export.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

USER, PASSWORD = "reviewer@chronoprism.local", "chronoprism-review"
START_TIMEOUT_S = 1200  # the first start migrates a fresh SQLite database: minutes on a small machine


def find_label_studio(explicit: str | None) -> str:
    for candidate in (explicit, os.environ.get("LABEL_STUDIO_BIN"), ".venv-label-studio/bin/label-studio"):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("label-studio")
    if not found:
        raise SystemExit("label-studio not found: pip install label-studio (in its own venv), or pass --label-studio")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Token {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=120) as response:
            raw = response.read()
        return json.loads(raw) if raw else None


def wait_until_up(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"label-studio exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise SystemExit(f"label-studio did not answer within {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def judge(candidate_id: str, reject_share: float) -> dict[str, str]:
    position = int(hashlib.sha256(candidate_id.encode()).hexdigest()[:8], 16) / 16**8
    relevant = "no" if position < reject_share else "yes"
    valence = "no" if reject_share <= position < 2 * reject_share else "yes"
    return {"relevant": relevant, "valence_right": valence, "explanation_right": "yes"}


def annotation(answers: dict[str, str]) -> dict:
    targets = {"relevant": "item", "valence_right": "valence", "explanation_right": "explanation"}
    return {
        "result": [
            {"from_name": name, "to_name": targets[name], "type": "choices", "value": {"choices": [value]}}
            for name, value in answers.items()
        ],
        "was_cancelled": False,
    }


def roundtrip(binary: str, tasks: list[dict], config: str, reject_share: float) -> list[dict]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = hashlib.sha256(f"chronoprism-{port}-{time.time()}".encode()).hexdigest()[:40]
    with tempfile.TemporaryDirectory(prefix="label-studio-") as data_dir:
        log = Path(data_dir) / "server.log"
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": data_dir,
            "LABEL_STUDIO_USERNAME": USER,
            "LABEL_STUDIO_PASSWORD": PASSWORD,
            "LABEL_STUDIO_USER_TOKEN": token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",  # no call to pypi.org: loopback only
        }
        command = [
            binary,
            "start",
            "--no-browser",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            "--username",
            USER,
            "--password",
            PASSWORD,
            "--user-token",
            token,
        ]
        with log.open("w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_until_up(base, process, log)
            client = Client(base, token)
            project = client.call("POST", "/api/projects", {"title": "chronoprism review", "label_config": config})
            client.call("POST", f"/api/projects/{project['id']}/import", tasks)
            listed = client.call("GET", f"/api/tasks?project={project['id']}&page_size=100000")
            listed = listed["tasks"] if isinstance(listed, dict) else listed
            for task in listed:
                answers = judge(task["data"]["candidate_id"], reject_share)
                client.call(
                    "POST", f"/api/tasks/{task['id']}/annotations?project={project['id']}", annotation(answers)
                )
            return client.call("GET", f"/api/projects/{project['id']}/export?exportType=JSON&download_all_tasks=true")
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", required=True, help="tasks.json from `chronoprism review export`")
    parser.add_argument("--config", required=True, help="label_config.xml from `chronoprism review export`")
    parser.add_argument("--out", required=True, help="where to write Label Studio's JSON export")
    parser.add_argument("--reject-share", type=float, default=0.15, help="share judged not relevant (and valence)")
    parser.add_argument("--label-studio", help="path of the label-studio executable")
    args = parser.parse_args(argv)
    tasks = json.loads(Path(args.tasks).read_text(encoding="utf-8"))
    config = Path(args.config).read_text(encoding="utf-8")
    started = time.monotonic()
    export = roundtrip(find_label_studio(args.label_studio), tasks, config, args.reject_share)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(export, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    wrong = sum(1 for t in export for a in t["annotations"] for r in a["result"] if r["value"]["choices"] == ["no"])
    print(f"{len(export)} tasks exported, {wrong} 'no' answers, {time.monotonic() - started:.0f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
