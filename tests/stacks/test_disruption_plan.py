"""Every stack: the Ray pods have PodDisruptionBudgets that match how replicas span pods, the worker pods drain
their Ray node before they stop with a grace period longer than that drain, and Serve's graceful shutdown and
the ingress's recovery estimates are in the served config."""

from __future__ import annotations

import pytest
import yaml


def _manifests(planned, stack: str) -> dict[tuple[str, str], dict]:
    return {(m["kind"], m["metadata"]["name"]): m for m in planned(stack).manifests()}


@pytest.mark.parametrize(
    ("stack", "budgets"),
    [
        # dev: two L4 groups (1 and 2 GPUs per replica, both models scale to zero) and the CPU group.
        ("dev", {"llm-head": 0, "llm-l4-x1": 0, "llm-l4-x2": 0, "llm-cpu": 0}),
        # staging and prod: DeepSeek-R1 at TP 8 x PP 2 is one replica of 2 pods; minReplicas 1 keeps no spare.
        ("staging", {"llm-head": 0, "llm-h100-x16": 0, "llm-cpu": 0}),
        ("prod", {"llm-head": 0, "llm-h100-x16": 0, "llm-cpu": 0}),
    ],
)
def test_every_ray_group_has_a_budget_that_keeps_the_last_replica(stack, budgets, planned):
    found = {
        name: manifest for (kind, name), manifest in _manifests(planned, stack).items() if kind == "PodDisruptionBudget"
    }
    assert {name: manifest["spec"]["maxUnavailable"] for name, manifest in found.items()} == budgets, stack
    for name, manifest in found.items():
        labels = manifest["spec"]["selector"]["matchLabels"]
        assert labels["app.kubernetes.io/part-of"] == "llmserve", name
        group = name.removeprefix("llm-")
        if group == "head":
            assert labels["ray.io/node-type"] == "head", labels
        else:  # KubeRay's labels on a worker pod (ray-operator/controllers/ray/utils/constant.go at v1.7.0)
            assert labels["ray.io/group"] == group and labels["ray.io/node-type"] == "worker", labels
        assert manifest["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow", name
        assert manifest["metadata"]["namespace"] == "llm", name


def test_worker_pods_drain_for_the_stream_drain_time_and_the_grace_period_outlasts_it(stack, planned):
    rayservice = _manifests(planned, stack)[("RayService", "llm")]
    cluster = rayservice["spec"]["rayClusterConfig"]
    for group in cluster["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        (worker,) = [c for c in pod["containers"] if c["name"] == "ray-worker"]
        command = worker["lifecycle"]["preStop"]["exec"]["command"]
        assert command == ["python", "-m", "serve_app.drain", "--deadline-s", "915"], (stack, group["groupName"])
        # streamDrainSeconds' default 900 + the hook's margin 15 + the kubelet's SIGTERM margin 15
        assert pod["terminationGracePeriodSeconds"] == 930, (stack, group["groupName"])
    assert "terminationGracePeriodSeconds" not in cluster["headGroupSpec"]["template"]["spec"], stack


def test_serve_waits_for_streams_and_the_ingress_knows_each_models_recovery_time(stack, planned):
    rayservice = _manifests(planned, stack)[("RayService", "llm")]
    config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    deployments = {
        app["name"]: app.get("deployments") or [app["args"].get("deployment_config", {})]
        for app in config["applications"]
    }
    (ingress,) = deployments["llm"]
    assert ingress["graceful_shutdown_timeout_s"] == 900, stack
    models = [app for app in config["applications"] if app["name"].startswith("model-")]
    assert models, stack
    for app in models:
        assert app["args"]["deployment_config"]["graceful_shutdown_timeout_s"] == 900, (stack, app["name"])
    recovery = ingress["user_config"]["recovery_s"]
    assert set(recovery) == {app["args"]["model_loading_config"]["model_id"] for app in models}, stack
    if stack != "dev":
        # infra/planning/coldstart.py restart_minutes for R1 from the model store (gcsfuse), low end:
        # 3 min of weights + 0.5 min of Serve deploy + 2 min of engine start = 5.5 min.
        assert recovery == {"deepseek-r1": 330}, stack
