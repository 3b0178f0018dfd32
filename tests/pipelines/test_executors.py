"""Executors by environment, and the Kubernetes deployment files: the instance config validates and its run
launcher starts with the `k8s` extra (skipped without it), the executor config fits k8s_job_executor's schema."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.executors import GPU_STEPS, executor_from_env, k8s_executor_config
from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
FAKE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: test, user: {token: not-a-token}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
"""


def test_executor_follows_the_environment(monkeypatch):
    monkeypatch.delenv("CHRONOPRISM_EXECUTOR", raising=False)
    assert executor_from_env() is None
    monkeypatch.setenv("CHRONOPRISM_EXECUTOR", "in_process")
    assert executor_from_env() is dg.in_process_executor
    monkeypatch.setenv("CHRONOPRISM_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="CHRONOPRISM_EXECUTOR"):
        executor_from_env()


def test_gpu_steps_are_the_finetuning_asset():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    for step in GPU_STEPS:
        key = dg.AssetKey(step)
        assert key in graph.materializable_asset_keys, f"GPU step {step} is not an asset (renamed?)"
        assert graph.get(key).assets_def.op.name == step  # per_step_k8s_config is keyed by op name


@pytest.fixture
def dagster_k8s():
    return pytest.importorskip("dagster_k8s", reason="the k8s extra is not installed: pip install 'chronoprism[k8s]'")


def test_k8s_executor_config_fits_the_schema_and_puts_finetuning_on_a_gpu(dagster_k8s, monkeypatch):
    from dagster._config import process_config

    monkeypatch.setenv("CHRONOPRISM_GPU_IMAGE", "registry.example.com/chronoprism-gpu:0.1.0")
    config = k8s_executor_config()
    outcome = process_config(dagster_k8s.k8s_job_executor.config_schema.config_type, config)
    assert outcome.success, outcome.errors
    gpu = config["per_step_k8s_config"]["finetuned_model"]
    assert gpu["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["container_config"]["image"].endswith("chronoprism-gpu:0.1.0")
    assert gpu["pod_spec_config"]["node_selector"]
    monkeypatch.setenv("CHRONOPRISM_EXECUTOR", "k8s")
    assert executor_from_env().name == "k8s_gpu_aware"


def test_k8s_instance_config_loads_and_its_run_launcher_starts(dagster_k8s, tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes import ConfigurableClassData

    config, _ = dagster_instance_config(str(DEPLOY / "k8s"), "dagster-instance.yaml")
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    limits = {limit["key"]: limit["limit"] for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert limits["gpu"] == 1 and config["concurrency"]["pools"]["default_limit"] == 1

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)  # the launcher reads cluster credentials when it starts, not later
    for name in ("PIPELINE_RUN_NAMESPACE", "INSTANCE_CONFIG_MAP", "PG_PASSWORD_SECRET"):
        monkeypatch.setenv(f"DAGSTER_K8S_{name}", f"dagster-k8s-{name.lower().replace('_', '-')}")
    launcher_config = {**config["run_launcher"]["config"], "load_incluster_config": False}
    launcher_config["kubeconfig_file"] = str(kubeconfig)
    launcher = ConfigurableClassData(
        config["run_launcher"]["module"], config["run_launcher"]["class"], yaml.safe_dump(launcher_config)
    ).rehydrate(as_type=dagster_k8s.K8sRunLauncher)
    assert launcher.job_namespace == "dagster-k8s-pipeline-run-namespace"


def test_helm_values_and_manifests_agree_with_the_code():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "pipelines.definitions"]
    assert {"name": "CHRONOPRISM_EXECUTOR", "value": "k8s"} in deployment["env"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert {"key": "gpu", "limit": 1} in values["concurrency"]["runs"]["tagConcurrencyLimits"]
    manifests = [
        doc
        for path in (DEPLOY / "k8s").glob("*.yaml")
        if path.name != "dagster-instance.yaml"
        for doc in yaml.safe_load_all(path.read_text())
    ]
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in manifests}
    assert {("ConfigMap", "chronoprism-settings"), ("Secret", "chronoprism-secrets")} <= kinds
    assert {("Deployment", "vllm-teacher"), ("Service", "vllm-teacher")} <= kinds
    settings = next(doc for doc in manifests if doc["kind"] == "ConfigMap")["data"]
    assert settings["CHRONOPRISM__TEACHER__BACKEND"] == "openai"
    vllm = next(doc for doc in manifests if doc["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert vllm["containers"][0]["command"] == ["vllm", "serve"]
    assert Path(DEPLOY / "Dockerfile").read_text().count("pipelines.definitions") >= 1
