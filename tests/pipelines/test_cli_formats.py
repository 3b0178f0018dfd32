"""[issue 16] `chronoprism build --no-bundled --corpus DIR --select documents` on the field's formats."""

import json

import datasets

from tests.helpers import GOOD_TEXT, HISTTEXT_REASONS, make_histtext_tree
from tests.pipelines.test_cli import run_cli


def test_build_puts_histtext_and_hf_rows_in_their_centuries_and_bad_records_in_rejects(tmp_path):
    home, corpus = tmp_path / "home", tmp_path / "corpus"
    expected = make_histtext_tree(corpus / "progressgym")
    rows = {"text": [GOOD_TEXT + " hf"], "date": ["1905"], "id": ["h1"]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(corpus / "hf_saved"))
    out = run_cli(home, "build", "--corpus", str(corpus), "--no-bundled", "--select", "documents")
    assert "0 failed" in out.stdout

    status = json.loads(run_cli(home, "status", "--json").stdout)
    assert {p: n for p, n in status["assets"]["documents"].items() if n} == {**expected, "C020": 1}
    assert status["rejects"]["ingest"] == HISTTEXT_REASONS
