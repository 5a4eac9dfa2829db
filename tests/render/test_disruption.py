"""PodDisruptionBudgets that match how a model's replicas span pods, the worker pods' graceful stop, the
streamDrainSeconds key, and the recovery estimates the ingress is given."""

from __future__ import annotations

import pytest

from infra.render.disruption import recovery_estimates, render_disruption_budgets, with_graceful_stop
from infra.render.rayservice import render_rayservice

R1 = {  # as the stacks serve it (tests/support/inputs.py)
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}


def _budgets(settings) -> dict[str, int]:
    return {b["metadata"]["name"]: b["spec"]["maxUnavailable"] for b in render_disruption_budgets(settings)}


def test_r1_with_one_replica_may_lose_no_pod_and_with_two_one_replicas_two_pods(rayservice_settings):
    assert _budgets(rayservice_settings()) == {"llm-head": 0, "llm-h100-x16": 0, "llm-cpu": 0}
    two = rayservice_settings(models=({**R1, "minReplicas": 2, "maxReplicas": 2},), max_gpu_nodes=4)
    # One R1 replica spans 2 pods (TP 8 x PP 2 on 8-GPU nodes): both may go together, never a third.
    assert _budgets(two)["llm-h100-x16"] == 2


def test_replicas_sharing_a_node_keep_a_spare_only_beyond_one_pods_worth(rayservice_settings):
    small = {"id": "small", "source": "Qwen/Qwen2.5-0.5B-Instruct", "acceleratorType": "H100"}
    small["targetOngoingRequests"] = 8
    group = "llm-h100-x1"
    # 8 replicas of 1 GPU fit in one 8-GPU pod: losing that pod loses 8 of them.
    assert _budgets(rayservice_settings(models=({**small, "minReplicas": 8, "maxReplicas": 9},)))[group] == 0
    assert _budgets(rayservice_settings(models=({**small, "minReplicas": 9, "maxReplicas": 9},)))[group] == 1


def test_two_cpu_workers_may_lose_one(rayservice_settings):
    assert _budgets(rayservice_settings(cpu_workers=2))["llm-cpu"] == 1
    assert "llm-cpu" not in _budgets(rayservice_settings(cpu_workers=0))


def test_graceful_stop_sets_the_hook_on_the_ray_container_only_and_the_grace_after_it():
    template = {"spec": {"containers": [{"name": "ray-worker"}, {"name": "sidecar"}]}}
    patched = with_graceful_stop(template, 120)
    worker, sidecar = patched["spec"]["containers"]
    assert worker["lifecycle"]["preStop"]["exec"]["command"][-2:] == ["--deadline-s", "135"]
    assert "lifecycle" not in sidecar
    assert patched["spec"]["terminationGracePeriodSeconds"] == 150
    assert "terminationGracePeriodSeconds" not in template["spec"], "the input is not changed"


def test_stream_drain_seconds_is_read_into_the_serving_config(parse_config):
    config = parse_config(streamDrainSeconds=1800)
    assert config.serving.stream_drain_seconds == 1800


@pytest.mark.parametrize("value", [29, 3601, 1.5, "lots"])
def test_bad_stream_drain_seconds_is_a_config_error_naming_the_key(value, config_problems):
    problems = config_problems(streamDrainSeconds=value)
    assert "llmserve:streamDrainSeconds:" in problems and f"{value}" in problems, problems


def test_an_out_of_range_stream_drain_says_what_is_allowed(config_problems):
    assert "llmserve:streamDrainSeconds: out of range; found 29; allowed: 30 to 3600" in config_problems(
        streamDrainSeconds=29
    )


def test_the_rendered_rayservice_uses_the_stream_drain_time(rayservice_settings):
    import yaml

    rendered = render_rayservice(rayservice_settings(stream_drain_s=1800))
    group = rendered["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert group["terminationGracePeriodSeconds"] == 1830
    config = yaml.safe_load(rendered["spec"]["serveConfigV2"])
    model = next(app for app in config["applications"] if app["name"] == "model-deepseek-r1")
    assert model["args"]["deployment_config"]["graceful_shutdown_timeout_s"] == 1800


def test_recovery_is_the_low_end_of_the_planners_restart_estimate(rayservice_settings):
    # No model store: the Hub. infra/planning/coldstart.py: 7 min of weights for R1's 690 GB + 0.5 + 2.
    assert recovery_estimates(rayservice_settings()) == {"deepseek-r1": 570}
