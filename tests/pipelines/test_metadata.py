"""Code versions from code: editing one stage makes it and what is downstream stale, and nothing else."""

import dagster as dg
import pytest

import pipelines.metadata
from pipelines.freshness import stale_report
from pipelines.metadata import code_version_of, stage_asset, stage_modules
from sources.settings import Settings


def make_assets() -> list[dg.AssetsDefinition]:
    """alpha -> beta -> gamma, and alpha -> delta beside them; versions come from `stage_asset`."""

    @stage_asset("toy", [])
    def alpha():
        return dg.MaterializeResult(data_version=dg.DataVersion("a"))

    @stage_asset("toy", ["alpha"])
    def beta():
        return dg.MaterializeResult(data_version=dg.DataVersion("b"))

    @stage_asset("toy", ["beta"])
    def gamma():
        return dg.MaterializeResult(data_version=dg.DataVersion("c"))

    @stage_asset("toy", ["alpha"])
    def delta():
        return dg.MaterializeResult(data_version=dg.DataVersion("d"))

    return [alpha, beta, gamma, delta]


def versions(assets) -> dict[str, str]:
    return {a.key.to_user_string(): a.code_versions_by_key[a.key] for a in assets}


def test_versions_differ_per_stage_and_are_stable():
    first, again = versions(make_assets()), versions(make_assets())
    assert first == again and len(set(first.values())) == 4


def test_editing_a_stage_makes_it_and_its_downstream_stale_and_nothing_else(home, monkeypatch: pytest.MonkeyPatch):
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize(make_assets(), instance=instance)
        before = versions(make_assets())
        graph = dg.Definitions(assets=make_assets()).resolve_asset_graph()
        assert stale_report(graph, instance, Settings.load()) == {}

        original = pipelines.metadata.source_of

        def edited(module: str) -> str:
            text = original(module)
            return text.replace('DataVersion("b")', 'DataVersion("b2")') if module == __name__ else text

        monkeypatch.setattr(pipelines.metadata, "source_of", edited)
        changed = make_assets()
        after = versions(changed)
        assert [name for name in before if before[name] != after[name]] == ["beta"]
        graph = dg.Definitions(assets=changed).resolve_asset_graph()
        assert stale_report(graph, instance, Settings.load()) == {
            "beta": {"all": "new code version"},
            "gamma": {"all": "upstream beta is stale"},
        }


def test_stage_modules_are_what_the_asset_module_imports_from_stage_packages():
    modules = stage_modules("assets.clean")
    assert "quality.clean" in modules and not any(m.startswith(("pipelines", "dagster")) for m in modules)


def test_a_changed_stage_module_changes_the_version(monkeypatch: pytest.MonkeyPatch):
    from assets.clean import documents_clean

    fn = documents_clean.op.compute_fn.decorated_fn
    before = code_version_of(fn)
    original = pipelines.metadata.source_of
    monkeypatch.setattr(
        pipelines.metadata, "source_of", lambda m: original(m) + ("\n# edited" if m == "quality.clean" else "")
    )
    assert code_version_of(fn) != before
