import dagster as dg

from pipelines import concurrency
from pipelines.build import _parallel_split, plan_steps, settled_subset
from pipelines.partitions import century_partitions
from sources.settings import Settings


def _graph():
    @dg.asset
    def raw(): ...

    @dg.asset(partitions_def=century_partitions, deps=[raw])
    def docs(): ...

    @dg.asset(deps=[docs])
    def global_index(): ...

    @dg.asset(partitions_def=century_partitions, deps=[global_index])
    def dedup(): ...

    @dg.asset(partitions_def=century_partitions, deps=[dedup])
    def corpus(): ...

    return dg.Definitions(assets=[raw, docs, global_index, dedup, corpus]).resolve_asset_graph()


def test_plan_alternates_unpartitioned_and_partitioned_steps_in_dependency_order():
    graph = _graph()
    steps = plan_steps(graph, set(graph.materializable_asset_keys))
    assert [(s.partitioned, sorted(k.to_user_string() for k in s.keys)) for s in steps] == [
        (False, ["raw"]),
        (True, ["docs"]),
        (False, ["global_index"]),
        (True, ["corpus", "dedup"]),
    ]


def test_plan_of_a_subset_keeps_only_selected_assets():
    graph = _graph()
    steps = plan_steps(graph, {dg.AssetKey("dedup"), dg.AssetKey("corpus")})
    assert len(steps) == 1 and steps[0].partitioned


def test_a_stale_key_below_a_fresh_key_that_may_turn_stale_waits():
    @dg.asset
    def splits(): ...

    @dg.asset(deps=[splits])
    def trend(): ...

    @dg.asset(deps=[splits, trend])
    def card(): ...

    @dg.asset
    def unrelated(): ...

    graph = dg.Definitions(assets=[splits, trend, card, unrelated]).resolve_asset_graph()
    keys = [dg.AssetKey(name) for name in ("splits", "trend", "card", "unrelated")]
    todo = {dg.AssetKey("splits"): "new data", dg.AssetKey("card"): "new data", dg.AssetKey("unrelated"): "new"}
    assert set(settled_subset(graph, keys, todo)) == {dg.AssetKey("splits"), dg.AssetKey("unrelated")}
    # once splits has run and trend is judged stale too, both run in order
    later = {dg.AssetKey("trend"): "new data", dg.AssetKey("card"): "new data"}
    assert set(settled_subset(graph, keys, later)) == set(later)


def test_the_teacher_step_runs_centuries_at_once_on_cpu_cores_and_trains_after(monkeypatch):
    from pipelines.definitions import defs

    monkeypatch.setattr(concurrency, "cpu_cores", lambda: 2)
    monkeypatch.setattr(concurrency, "has_cuda_device", lambda: False)
    graph = defs.resolve_asset_graph()
    steps = plan_steps(graph, set(graph.materializable_asset_keys))
    [step] = [s for s in steps if dg.AssetKey("situations") in s.keys]
    assert dg.AssetKey("finetuned_model") in step.keys
    parallel, cap = _parallel_split(graph, step, Settings.load())  # 2 cores, torch_threads 1
    names = {key.to_user_string() for key in parallel}
    assert {"documents_dedup", "passages", "situations", "vrd_candidates", "vrd"} <= names
    assert "finetuned_model" not in names and cap == 2
    assert _parallel_split(graph, step, Settings.load({"teacher.backend": "vllm"})) is None  # one model per GPU
    [documents] = [s for s in steps if dg.AssetKey("documents_clean") in s.keys]
    assert _parallel_split(graph, documents, Settings.load({"teacher.backend": "vllm"}))[1] is None  # all workers
