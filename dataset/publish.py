"""Publishing the dataset directory to the Hugging Face Hub, idempotently, without ever showing the token.

- The content hash is sha256 over the sorted (path, file sha256) manifest. When it equals what the last push
  recorded for the same repo, publishing does nothing at all (no API call).
- Otherwise: `create_repo(exist_ok=True)` (a dataset repo, private by default) and ONE `create_commit` with the
  added/changed files and deletions of files that disappeared since the last push; the state file records it.
- Without a token or a repo id: a dry-run plan (files, sizes, target, what would change) is written next to the
  dataset, with the two settings that enable pushing.
- The token is passed in by the caller (read from the env var named in settings), used only as an argument to
  the Hub client, scrubbed from every log record while a push runs, and scrubbed from any error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sources.settings import Settings
from sources.storage import file_sha256, write_text_atomic

log = logging.getLogger(__name__)

REDACTED = "***"


class PublishError(RuntimeError):
    """A push failed; the message has been scrubbed of the token."""


@dataclass(slots=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(slots=True)
class PublishOutcome:
    action: str  # "pushed" | "unchanged" | "dry_run"
    target: str | None
    content_hash: str
    files: list[FileEntry]
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    commit: str | None = None
    plan_path: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def manifest(dataset_dir: Path) -> list[FileEntry]:
    """Every file under the dataset dir (hidden ones excluded) with its size and sha256, sorted by path."""
    entries = []
    for path in sorted(p for p in Path(dataset_dir).rglob("*") if p.is_file()):
        relative = path.relative_to(dataset_dir).as_posix()
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        entries.append(FileEntry(relative, path.stat().st_size, file_sha256(path)))
    return entries


def content_hash(entries: list[FileEntry]) -> str:
    return hashlib.sha256(json.dumps([[e.path, e.sha256] for e in entries]).encode()).hexdigest()


def publish(
    dataset_dir: Path,
    repo_id: str | None,
    token: str | None,
    state_path: Path,
    plan_path: Path,
    private: bool = True,
    api_factory: Callable[[str], Any] | None = None,
    token_env: str = "HF_TOKEN",
    dry_run: bool = False,
    verify: Callable[[str, Path, str | None, str | None], None] | None = None,
) -> PublishOutcome:
    """Push `dataset_dir` to `repo_id` when both a repo id and a token are given, else write the dry-run plan.

    `api_factory(token)` returns an object with HfApi's `create_repo` and `create_commit`; tests inject a fake.
    `verify(repo_id, dataset_dir, token, commit)` runs after the push (the asset passes `load_back_check`): a
    push whose configs do not load back with the card's row counts is an error, not a success.
    """
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "README.md").is_file():
        raise FileNotFoundError(f"no dataset at {dataset_dir}: materialize hf_dataset first")
    entries = manifest(dataset_dir)
    digest = content_hash(entries)
    state = _read_json(state_path)
    previous = state.get("files", {}) if state.get("repo_id") == repo_id else {}
    added = [e.path for e in entries if previous.get(e.path) != e.sha256]
    deleted = sorted(set(previous) - {e.path for e in entries})
    if dry_run or not repo_id or not token:
        missing = [name for name, value in (("publish.repo_id", repo_id), (token_env, token)) if not value]
        why = f"{', '.join(missing)} not set" if missing else "publish.dry_run is set"
        outcome = PublishOutcome("dry_run", repo_id, digest, entries, added, deleted, plan_path=str(plan_path))
        outcome.message = (
            f"dry run: {why}. To push, set the repo id (CHRONOPRISM__PUBLISH__REPO_ID=user/"
            f"name or `chronoprism publish --repo-id user/name`) and export {token_env}=<a write token>; "
            "with HF_HUB_OFFLINE=1 in the environment, also set HF_HUB_OFFLINE=0."
        )
        write_text_atomic(plan_path, json.dumps(outcome.to_dict(), indent=2) + "\n")
        log.info("%s (plan: %s)", outcome.message, plan_path)
        return outcome
    if state.get("repo_id") == repo_id and state.get("content_hash") == digest:
        log.info("dataset unchanged since the last push to %s (%s): nothing to do", repo_id, digest[:12])
        return PublishOutcome("unchanged", repo_id, digest, entries, commit=state.get("commit"))
    with redacted(token):
        try:
            commit = _push(dataset_dir, repo_id, token, private, added, deleted, api_factory or _hf_api)
        except Exception as error:  # noqa: BLE001 - re-raised scrubbed, without the chained original
            raise PublishError(
                f"push to {repo_id} failed: {redact(f'{type(error).__name__}: {error}', token)}"
            ) from None
        if verify is not None:
            try:
                verify(repo_id, dataset_dir, token, commit)
            except Exception as error:  # noqa: BLE001 - re-raised scrubbed
                raise PublishError(
                    f"pushed to {repo_id} (commit {commit}) but it does not load back as built: "
                    + redact(f"{type(error).__name__}: {error}", token)
                ) from None
    write_text_atomic(
        state_path,
        json.dumps(
            {
                "repo_id": repo_id,
                "content_hash": digest,
                "commit": commit,
                "files": {e.path: e.sha256 for e in entries},
            },
            indent=2,
        )
        + "\n",
    )
    log.info("pushed %d changed and %d deleted files to %s (commit %s)", len(added), len(deleted), repo_id, commit)
    return PublishOutcome("pushed", repo_id, digest, entries, added, deleted, commit=commit)


def expected_rows(dataset_dir: Path) -> dict[str, dict[str, int]]:
    """{config: {split: rows}} from the card's `dataset_info` (what `write_dataset` measured)."""
    import yaml

    header = (Path(dataset_dir) / "README.md").read_text(encoding="utf-8").split("---\n", 2)[1]
    infos = yaml.safe_load(header).get("dataset_info") or []
    return {
        info["config_name"]: {split["name"]: int(split["num_examples"]) for split in info.get("splits", [])}
        for info in infos
    }


def load_back_check(source: str, dataset_dir: Path, token: str | None = None, revision: str | None = None) -> None:
    """Load every config of `source` (a Hub repo id, or a local copy) with `datasets` as a user would, fresh from
    the source (no cache), and compare each split's rows with the card; raise on the first difference."""
    import datasets

    for config, splits in expected_rows(dataset_dir).items():
        try:
            loaded = with_retries(
                lambda config=config: datasets.load_dataset(
                    source, config, token=token, revision=revision, download_mode="force_redownload"
                )
            )
        except Exception as error:  # noqa: BLE001 - `datasets` itself may notice the sizes differ
            raise ValueError(f"config {config!r} does not load: {type(error).__name__}: {error}") from None
        got = {split: loaded[split].num_rows for split in loaded}
        if got != splits:
            raise ValueError(f"config {config!r}: loaded rows {got}, the card says {splits}")


def _push(
    dataset_dir: Path,
    repo_id: str,
    token: str,
    private: bool,
    added: list[str],
    deleted: list[str],
    api_factory: Callable[[str], Any],
) -> str | None:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    api = api_factory(token)
    with_retries(lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(dataset_dir / p)) for p in added]
    operations += [CommitOperationDelete(path_in_repo=p) for p in deleted]
    info = with_retries(
        lambda: api.create_commit(
            repo_id,
            operations,
            commit_message=f"chronoprism: {len(added)} files changed, {len(deleted)} deleted",
            repo_type="dataset",
        )
    )
    return getattr(info, "oid", None)


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})  # rate limit and server-side failures: worth another try


def status_of(error: BaseException) -> int | None:
    """The HTTP status an error carries (huggingface_hub's HfHubHTTPError and requests' HTTPError keep the
    response), or None."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def with_retries(
    call: Callable[[], Any],
    attempts: int = 5,
    base_delay: float = 1.0,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """[issue 13] `call()`, retried on 429 / 5xx with exponential backoff (1, 2, 4, ... s, capped; a Retry-After
    header wins when given). Any other error, or the last attempt's, is raised as it is."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as error:
            status = status_of(error)
            if status not in RETRY_STATUSES or attempt == attempts:
                raise
            headers = getattr(getattr(error, "response", None), "headers", None) or {}
            try:
                delay = float(headers.get("Retry-After", ""))
            except ValueError:
                delay = base_delay * 2 ** (attempt - 1)
            delay = min(max(delay, 0.0), max_delay)
            log.warning("hub answered %s (attempt %d of %d); retrying in %.1f s", status, attempt, attempts, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def _hf_api(token: str):
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise PublishError("HF_HUB_OFFLINE=1 is set in this environment: set HF_HUB_OFFLINE=0 to push")
    return HfApi(token=token)


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, REDACTED) if secret else text


class RedactFilter(logging.Filter):
    """Rewrites any record whose message contains the secret (the message is formatted once, then scrubbed)."""

    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = redact(message, self.secret), None
        if record.exc_info and record.exc_info[1] is not None and self.secret in str(record.exc_info[1]):
            record.exc_info, record.exc_text = None, None
            record.msg = f"{record.msg} [traceback withheld: it contained a secret]"
        return True


@contextmanager
def redacted(secret: str | None) -> Iterator[None]:
    """While active, every handler of every known logger scrubs `secret` from the records it emits."""
    if not secret:
        yield
        return
    flt = RedactFilter(secret)
    loggers = [logging.getLogger()] + [
        logging.getLogger(name)
        for name, obj in logging.Logger.manager.loggerDict.items()
        if isinstance(obj, logging.Logger)
    ]
    handlers = {id(h): h for lg in loggers for h in lg.handlers}.values()
    for target in (*loggers, *handlers):
        target.addFilter(flt)
    try:
        yield
    finally:
        for target in (*loggers, *handlers):
            target.removeFilter(flt)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def dataset_dir(settings: Settings):
    """DESIGN.md §5: `$CHRONOPRISM_HOME/publish/<publish.name>/`."""
    return settings.home_path / "publish" / settings.publish.name


def publish_files(settings: Settings) -> dict:
    """Where publishing keeps its state (last push), its dry-run plan and its last outcome: beside the dataset."""
    base = settings.home_path / "publish"
    name = settings.publish.name
    return {
        "state_path": base / f"{name}.last_push.json",
        "plan_path": base / f"{name}.publish_plan.json",
        "outcome_path": base / f"{name}.last_publish.json",
    }
