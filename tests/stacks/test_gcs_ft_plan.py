"""GCS fault tolerance in each stack's plan: staging and prod keep the Ray GCS in Memorystore (AUTH and TLS on,
private to the cluster's VPC) and the RayService reads it through a Secret; dev does not, unless asked."""

from __future__ import annotations

import pytest

REDIS = "gcp:redis/instance:Instance"
SECRET = "kubernetes:v1:Secret"
RAYSERVICE = "kubernetes:ray.io/v1:RayService"
# The offline plan's mock outputs for the instance (infra/cli/plan.py PlanMocks): host and Memorystore's TLS port.
MOCK_ADDRESS = "rediss://192.0.2.20:6378"


def _rayservice(planned_stack) -> dict:
    [rayservice] = [m for m in planned_stack.manifests() if m["kind"] == "RayService"]
    return rayservice


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_memorystore_is_private_tls_and_auth(stack, planned):
    plan = planned(stack)
    instance = plan.only(REDIS, "llm-gcs-memorystore")
    assert instance.parent == "llm-gcs"
    assert plan.only("llmserve:gcp:GcsRedis", "llm-gcs").parent is None
    assert {key: instance.inputs[key] for key in sorted(instance.inputs) if key != "labels"} == {
        "authEnabled": True,
        # The cluster's VPC (the network component's llm-net-vpc), by its id.
        "authorizedNetwork": "projects/my-gcp-project/global/networks/llm-net-vpc",
        "connectMode": "DIRECT_PEERING",
        "deletionProtection": plan.config.cluster.deletion_protection,
        "displayName": "Ray GCS store (llmserve)",
        "memorySizeGb": 1,
        "redisVersion": "REDIS_7_2",
        "region": "us-east4",
        "tier": "STANDARD_HA",
        "transitEncryptionMode": "SERVER_AUTHENTICATION",
    }
    assert instance.inputs["labels"] == {"app": "llmserve", "stack": stack}
    assert instance.inputs["deletionProtection"] is (stack == "prod")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_rayservice_reads_the_address_and_a_secret_password(stack, planned, validate_rayservice):
    plan = planned(stack)
    secret = plan.only(SECRET, "llm-serve-gcs-redis").inputs
    assert secret["metadata"] == {
        "name": "llm-gcs-redis",
        "namespace": "llm",
        "labels": {"app.kubernetes.io/part-of": "llmserve"},
    }
    assert secret["stringData"]["password"] == "[secret]"
    assert secret["stringData"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    rayservice = _rayservice(plan)
    validate_rayservice(rayservice)
    assert rayservice["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"] == {
        "redisAddress": MOCK_ADDRESS,
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "llm-gcs-redis", "key": "password"}}},
    }
    assert rayservice["spec"]["excludeHeadPodFromServeSvc"] is True
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert {"name": "RAY_REDIS_CA_CERT", "value": "/etc/llmserve/gcs-redis/ca.crt"} in head["containers"][0]["env"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_ray_pod_template_stays_a_valid_pod(stack, planned, assert_valid_kubernetes_object):
    cluster = _rayservice(planned(stack))["spec"]["rayClusterConfig"]
    for template in [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": template["spec"]}
        assert_valid_kubernetes_object(pod, f"{stack}: a Ray pod template")
        env = {var["name"]: var.get("value") for var in template["spec"]["containers"][0]["env"]}
        if template is not cluster["headGroupSpec"]["template"]:
            assert env["RAY_gcs_rpc_server_reconnect_timeout_s"] == "600"


def test_dev_has_no_memorystore_unless_asked(planned, stack_variant):
    plan = planned("dev")
    assert plan.of_type(REDIS) == [] and plan.of_type("llmserve:gcp:GcsRedis") == []
    assert [r.name for r in plan.of_type(SECRET) if "gcs" in r.name] == []
    spec = _rayservice(plan)["spec"]
    assert "gcsFaultToleranceOptions" not in spec["rayClusterConfig"] and "excludeHeadPodFromServeSvc" not in spec
    asked = stack_variant("dev", gcsFaultTolerance="true", gcsRedisTier="BASIC")
    [instance] = [r for r in asked.resources if r["type"] == REDIS]
    assert (instance["inputs"]["tier"], instance["inputs"]["region"]) == ("BASIC", "us-central1")
    [rayservice] = [r for r in asked.resources if r["type"] == RAYSERVICE]
    assert rayservice["inputs"]["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]["redisAddress"] == MOCK_ADDRESS
