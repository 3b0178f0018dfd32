import dagster as dg

from pipelines.definitions import defs
from pipelines.partitions import CENTURIES, century_partitions


def test_definitions_load_and_every_asset_has_a_group_and_description():
    graph = defs.resolve_asset_graph()
    keys = graph.materializable_asset_keys
    assert dg.AssetKey("documents") in keys
    for key in keys:
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", key
        assert node.description, key


def test_jobs_resolve():
    everything = defs.resolve_implicit_global_asset_job_def()
    assert dg.AssetKey("documents") in everything.asset_layer.executable_asset_keys
    assert defs.jobs, "no jobs defined"
    for job in defs.jobs:
        resolved = defs.resolve_job_def(job.name)
        assert resolved.name == job.name and resolved.asset_layer.executable_asset_keys, job.name


def test_century_partitions():
    assert CENTURIES[0] == "C013" and CENTURIES[-1] == "C021" and len(CENTURIES) == 9
    assert century_partitions.get_partition_keys() == CENTURIES


def test_partitioned_documents():
    assert defs.resolve_asset_graph().get(dg.AssetKey("documents")).partitions_def == century_partitions
