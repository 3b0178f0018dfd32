"""The executor for where the code runs: Dagster's default locally, Kubernetes jobs per step on a cluster.

`CHRONOPRISM_EXECUTOR` picks it:
- unset (default): Dagster's multiprocess executor, one process per step;
- `in_process`: every step in the run's own process (no per-step interpreter start; what the UI test uses);
- `k8s` (set by deploy/helm/values.yaml on the user-code deployment): `dagster_k8s.k8s_job_executor`, each step
  its own Kubernetes Job, and the `finetuned_model` step on a GPU node with an `nvidia.com/gpu` limit.
"""

from __future__ import annotations

import os

import dagster as dg

GPU_STEPS = ("finetuned_model", "sft_model", "dpo_model")  # [issue 17] the three training stages
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}

# per-step Kubernetes config for GPU steps: a GPU node, one GPU, and room for the model
GPU_STEP_K8S_CONFIG = {
    "container_config": {
        "resources": {
            "requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
            "limits": {"memory": "48Gi", "nvidia.com/gpu": "1"},
        }
    },
    "pod_spec_config": {
        "node_selector": GPU_NODE_SELECTOR,
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}
STEP_K8S_CONFIG = {"container_config": {"resources": {"requests": {"cpu": "1", "memory": "4Gi"}}}}


def k8s_executor_config() -> dict:
    """Config for `k8s_job_executor`. Step pods inherit the run pod's env config maps, secrets and volumes (set on
    the run launcher / user deployment, see deploy/helm/values.yaml); here: resources, and GPU placement plus the
    CUDA image (`CHRONOPRISM_GPU_IMAGE`, when set) for GPU steps."""
    gpu = {**GPU_STEP_K8S_CONFIG}
    if os.environ.get("CHRONOPRISM_GPU_IMAGE"):
        gpu["container_config"] = {**gpu["container_config"], "image": os.environ["CHRONOPRISM_GPU_IMAGE"]}
    return {"step_k8s_config": STEP_K8S_CONFIG, "per_step_k8s_config": {step: gpu for step in GPU_STEPS}}


def executor_from_env():
    """The executor CHRONOPRISM_EXECUTOR names; None keeps Dagster's default."""
    choice = os.environ.get("CHRONOPRISM_EXECUTOR", "").strip().lower()
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(k8s_executor_config(), name="k8s_gpu_aware")
    if choice not in ("", "multiprocess"):
        raise ValueError(f"CHRONOPRISM_EXECUTOR={choice!r}: use multiprocess, in_process or k8s")
    return None
