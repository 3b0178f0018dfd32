"""Declarative automation on the toy graph: a changed partition's downstream follows, one hop a tick, and nothing
else; raw updates, CLI builds and mere absence trigger nothing."""

from dataclasses import dataclass

import dagster as dg
import pytest

from pipelines.automation import with_automation
from tests.pipelines.toy_graph import PARTS, QUIET, build_all, make_graph


@dataclass
class Automated:
    versions: dict
    defs: dg.Definitions
    instance: dg.DagsterInstance
    cursor: object = None

    def materialize(self, name: str, partition: str | None = None, tags: dict | None = None) -> None:
        self.defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=self.instance,
            asset_selection=[dg.AssetKey(name)],
            partition_key=partition,
            run_config=QUIET,
            tags=tags,
        )

    def tick(self) -> set[tuple[str, str | None]]:
        """One evaluation of every automation condition: the (asset, partition)s it requests."""
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return {
            (key.to_user_string(), partition)
            for key in self.defs.resolve_asset_graph().materializable_asset_keys
            if result.get_num_requested(key)
            for partition in (result.get_requested_partitions(key) or [None])
        }


@pytest.fixture
def graph(home):
    versions = {}
    with dg.DagsterInstance.ephemeral() as instance:
        automated = Automated(versions, dg.Definitions(assets=with_automation(make_graph(versions).assets)), instance)
        assert automated.tick() == set()  # everything is missing, yet nothing starts
        build_all(automated.defs, instance)
        assert automated.tick() == set()
        yield automated


def test_new_data_in_one_century_reaches_only_its_downstream(graph):
    graph.versions["docs[C019]"] = "v1"
    for partition in PARTS.get_partition_keys():  # documents rebuilt; only C019's rows changed
        graph.materialize("docs", partition)
    assert graph.tick() == {("clean", "C019")}

    graph.versions["clean[C019]"] = "v1"
    graph.materialize("clean", "C019")
    # both read clean[C019]; Dagster cannot hold report[C019] back for index (different partitioning)
    assert graph.tick() == {("index", None), ("report", "C019")}

    graph.materialize("index")
    graph.materialize("report", "C019")
    assert graph.tick() == set()  # index wrote the same rows: the wave stops


def test_raw_updates_are_left_to_the_corpus_sensor(graph):
    graph.versions.update({"raw": "v1", "docs[C018]": "v1"})
    graph.materialize("raw")
    assert graph.tick() == set()  # raw is a root: the corpus sensor requests the documents it touches
    for partition in PARTS.get_partition_keys():
        graph.materialize("docs", partition)
    assert graph.tick() == {("clean", "C018")}


def test_updates_from_chronoprism_build_are_left_to_the_build(graph):
    graph.versions["docs[C019]"] = "v2"
    graph.materialize("docs", "C019", tags={"chronoprism/build_id": "b1"})
    assert graph.tick() == set()
