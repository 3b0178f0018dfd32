"""dagster.yaml parses into the run queue and pool limits we rely on; pool sizes follow the settings."""

import shutil

import dagster as dg
import pytest

from pipelines import concurrency
from pipelines.concurrency import apply_pool_limits, teacher_pool_limit
from pipelines.executors import GPU_STEPS
from pipelines.home import REPO_DAGSTER_YAML
from sources.settings import Settings


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dagster_home")
    shutil.copyfile(REPO_DAGSTER_YAML, folder / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        yield instance


def test_dagster_yaml_limits_gpu_runs_and_pools(instance):
    queue = instance.get_concurrency_config().run_queue_config
    limits = {limit["key"]: limit["limit"] for limit in queue.tag_concurrency_limits}
    assert limits["gpu"] == 1 and limits["chronoprism/corpus_sync"] == 1
    assert queue.max_concurrent_runs == 4
    pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1 and pools.pool_granularity.value == "op"
    assert not instance.telemetry_enabled


def test_pool_sizes_come_from_the_settings(instance, home, monkeypatch):
    monkeypatch.setattr(concurrency, "cpu_cores", lambda: 4)
    monkeypatch.setattr(concurrency, "has_cuda_device", lambda: False)
    # the CPU teacher: one small model copy per core at torch_threads = 1
    assert apply_pool_limits(instance, Settings.load()) == {"gpu": 1, "teacher": 4}
    assert teacher_pool_limit(Settings.load({"teacher.torch_threads": 2})) == 2
    assert teacher_pool_limit(Settings.load({"teacher.backend": "vllm"})) == 1
    monkeypatch.setattr(concurrency, "has_cuda_device", lambda: True)  # one model per device
    assert apply_pool_limits(instance, Settings.load()) == {"gpu": 1, "teacher": 1}
    assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1
    served = Settings.load({"teacher.backend": "openai", "teacher.concurrency": 8})
    assert teacher_pool_limit(served) == 8
    apply_pool_limits(instance, served)
    assert instance.event_log_storage.get_concurrency_info("teacher").slot_count == 8


def test_finetuning_holds_the_gpu_pool_and_the_training_job_the_gpu_tag():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    for name in GPU_STEPS:  # every training stage, so a renamed or new stage cannot slip past the pool
        key = dg.AssetKey(name)
        assert key in graph.materializable_asset_keys, f"{name} is not an asset (renamed?)"
        assert graph.get(key).assets_def.op.pool == "gpu", name
    assert defs.resolve_job_def("training_job").tags.get("gpu") == "1"
