import json
import logging

import pytest

from dataset.publish import PublishError, publish

FAKE_TOKEN = "hf_FAKEfakeFAKEfake0123456789secret"


class FakeHfApi:
    """Records every call; optionally logs and fails with the token in the message, like a careless client."""

    def __init__(self, token: str, calls: list, fail: bool = False):
        self.token, self.calls, self.fail = token, calls, fail

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        ops = sorted((type(op).__name__, op.path_in_repo) for op in operations)
        self.calls.append(("create_commit", repo_id, ops))
        if self.fail:
            logging.getLogger("huggingface_hub.fake").error("401 for Authorization: Bearer %s", self.token)
            raise RuntimeError(f"bad token {self.token}")
        return type("CommitInfo", (), {"oid": f"commit{len(self.calls)}"})()


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "publish" / "demo"
    (root / "data" / "vrd").mkdir(parents=True)
    (root / "README.md").write_text("---\nconfigs: []\n---\n# demo\n")
    (root / "data" / "vrd" / "train.parquet").write_bytes(b"rows-v1")
    (root / "data" / "vrd" / "test.parquet").write_bytes(b"test-v1")
    return root


def run(dataset, calls, token=FAKE_TOKEN, repo="me/demo", fail=False, **kwargs):
    return publish(
        dataset,
        repo,
        token,
        dataset.parent / "state.json",
        dataset.parent / "plan.json",
        api_factory=lambda t: FakeHfApi(t, calls, fail),
        **kwargs,
    )


def test_push_then_same_content_makes_no_operations_then_only_changes(dataset):
    calls = []
    first = run(dataset, calls)
    assert first.action == "pushed" and first.commit == "commit2"
    assert calls[0] == ("create_repo", "me/demo", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls[1][2] == [
        ("CommitOperationAdd", "README.md"),
        ("CommitOperationAdd", "data/vrd/test.parquet"),
        ("CommitOperationAdd", "data/vrd/train.parquet"),
    ]

    calls.clear()
    again = run(dataset, calls)
    assert again.action == "unchanged" and calls == [] and again.content_hash == first.content_hash

    (dataset / "data" / "vrd" / "train.parquet").write_bytes(b"rows-v2")
    (dataset / "data" / "vrd" / "test.parquet").unlink()
    changed = run(dataset, calls)
    assert changed.action == "pushed"
    assert [c[0] for c in calls] == ["create_repo", "create_commit"]  # one commit for everything
    assert calls[1][2] == [
        ("CommitOperationAdd", "data/vrd/train.parquet"),
        ("CommitOperationDelete", "data/vrd/test.parquet"),
    ]


def test_dry_run_without_token_or_repo_writes_a_plan(dataset):
    calls = []
    outcome = run(dataset, calls, token=None)
    assert outcome.action == "dry_run" and calls == []
    plan = json.loads((dataset.parent / "plan.json").read_text())
    assert plan["target"] == "me/demo" and {f["path"] for f in plan["files"]} == {
        "README.md",
        "data/vrd/test.parquet",
        "data/vrd/train.parquet",
    }
    assert all(f["size"] > 0 for f in plan["files"]) and "HF_TOKEN" in plan["message"]
    assert "publish.repo_id" in run(dataset, calls, repo=None).message
    forced = run(dataset, calls, dry_run=True)
    assert forced.action == "dry_run" and calls == [] and FAKE_TOKEN not in json.dumps(forced.to_dict())


def test_token_never_reaches_logs_errors_or_files(dataset, caplog, capfd):
    handler = logging.StreamHandler()  # a console handler like the CLI's, captured by capfd
    logging.getLogger().addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(PublishError) as error:
            run(dataset, [], fail=True)
    finally:
        logging.getLogger().removeHandler(handler)
    assert FAKE_TOKEN not in str(error.value) and "***" in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert "Bearer ***" in caplog.text and FAKE_TOKEN not in caplog.text
    for record in caplog.records:
        assert FAKE_TOKEN not in record.getMessage()
    out, err = capfd.readouterr()
    assert FAKE_TOKEN not in out + err
    for path in dataset.parent.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="materialize hf_dataset first"):
        publish(tmp_path / "nothing", "me/demo", None, tmp_path / "s.json", tmp_path / "p.json")


def http_error(status: int, retry_after: str | None = None):
    """A real huggingface_hub HfHubHTTPError around a real requests Response, as the Hub client raises it."""
    import requests
    from huggingface_hub.errors import HfHubHTTPError

    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return HfHubHTTPError(f"{status} from the hub", response=response)


def test_rate_limits_and_server_errors_are_retried_with_backoff_and_others_are_not():
    """[issue 13] hf_publish retries 429/5xx with exponential backoff (Retry-After wins), never a 4xx."""
    import pytest

    from dataset.publish import with_retries

    def flaky(errors):
        answers = iter(errors)

        def call():
            error = next(answers, None)
            if error is not None:
                raise error
            return "ok"

        return call

    slept: list[float] = []
    assert with_retries(flaky([http_error(503), http_error(502)]), sleep=slept.append) == "ok"
    assert slept == [1.0, 2.0]
    slept.clear()
    assert with_retries(flaky([http_error(429, retry_after="3")]), sleep=slept.append) == "ok" and slept == [3.0]
    slept.clear()
    with pytest.raises(Exception, match="404"):
        with_retries(flaky([http_error(404)]), sleep=slept.append)
    assert slept == []
    with pytest.raises(Exception, match="500"):
        with_retries(flaky([http_error(500)] * 5), attempts=3, sleep=slept.append)
    assert slept == [1.0, 2.0]


def built_dataset(path):
    """A real dataset directory (card with dataset_info, parquet per split) with one config."""
    import polars as pl

    from dataset.hf_dataset import CardInfo, write_dataset

    rows = pl.DataFrame(
        {
            "text": ["Mercy", "Justice", "Duty to pay"],
            "kind": ["value", "value", "duty"],
            "century": ["C017", "C017", "C019"],
            "split": ["train", "train", "validation"],
        }
    )
    tables = {"benchmark": {"test": rows}}
    write_dataset(path, tables, CardInfo(name="demo", code_version="test"))
    return path


def test_load_back_check_passes_on_what_was_built_and_names_a_config_that_lost_rows(tmp_path):
    import polars as pl

    from dataset.publish import expected_rows, load_back_check

    built = built_dataset(tmp_path / "built")
    assert expected_rows(built) == {"benchmark": {"test": 3}}
    load_back_check(str(built), built)  # a local copy loads with `datasets` exactly as the Hub copy would

    served = built_dataset(tmp_path / "served")  # what a broken upload left: one split lost a row
    shard = next((served / "data" / "benchmark").rglob("*.parquet"))
    pl.read_parquet(shard).head(2).write_parquet(shard)
    with pytest.raises(ValueError, match="'benchmark'"):
        load_back_check(str(served), built)


def test_a_push_that_does_not_load_back_is_a_failure(tmp_path):
    from dataset.publish import load_back_check

    built = built_dataset(tmp_path / "built")
    calls: list = []

    def push(verify):
        return publish(
            built,
            "user/demo",
            FAKE_TOKEN,
            tmp_path / "state.json",
            tmp_path / "plan.json",
            api_factory=lambda token: FakeHfApi(token, calls),
            verify=verify,
        )

    empty = tmp_path / "empty"
    (empty / "data").mkdir(parents=True)
    (empty / "README.md").write_text((built / "README.md").read_text())
    with pytest.raises(PublishError, match="does not load back") as failed:
        push(lambda repo_id, directory, token, commit: load_back_check(str(empty), directory, token))
    assert FAKE_TOKEN not in str(failed.value) and not (tmp_path / "state.json").exists()
    outcome = push(lambda repo_id, directory, token, commit: load_back_check(str(built), directory))
    assert outcome.action == "pushed"
