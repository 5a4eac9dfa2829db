"""GCS fault tolerance as rendered (infra/render/gcs_ft.py): what the RayService gains, checked against KubeRay
v1.7.0's CRD and rules, and the Secret it reads."""

from __future__ import annotations

import copy

import pytest

from infra.render.gcs_ft import (
    ca_bundle,
    gcs_redis_secret_name,
    redis_address,
    render_gcs_redis_secret,
    with_gcs_fault_tolerance,
)
from infra.render.rayservice import render_rayservice

ADDRESS = "rediss://10.20.0.3:6378"


@pytest.fixture
def rayservice(rayservice_settings):
    return render_rayservice(rayservice_settings())


def _head(rayservice: dict) -> dict:
    return rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]


def _env(container: dict) -> dict:
    return {var["name"]: var for var in container.get("env", [])}


def test_the_options_name_the_address_and_read_the_password_from_the_secret(rayservice):
    options = with_gcs_fault_tolerance(rayservice, ADDRESS, "llm-gcs-redis")["spec"]["rayClusterConfig"][
        "gcsFaultToleranceOptions"
    ]
    # No externalStorageNamespace: KubeRay then uses each RayCluster's UID (pod.go:119), so the old and the new
    # cluster of an upgrade never share keys. No literal password: a secretKeyRef.
    assert options == {
        "redisAddress": "rediss://10.20.0.3:6378",
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "llm-gcs-redis", "key": "password"}}},
    }


def test_the_head_trusts_the_instance_ca_from_the_secret(rayservice):
    head = _head(with_gcs_fault_tolerance(rayservice, ADDRESS, "llm-gcs-redis"))
    ray = head["containers"][0]
    # Ray 2.60 reads RAY_REDIS_CA_CERT (RayConfig REDIS_CA_CERT) for a rediss:// address.
    assert _env(ray)["RAY_REDIS_CA_CERT"] == {"name": "RAY_REDIS_CA_CERT", "value": "/etc/llmserve/gcs-redis/ca.crt"}
    volume = next(v for v in head["volumes"] if v["name"] == "gcs-redis-ca")
    assert volume["secret"] == {
        "secretName": "llm-gcs-redis",
        "defaultMode": 0o444,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert {"name": "gcs-redis-ca", "mountPath": "/etc/llmserve/gcs-redis", "readOnly": True} in ray["volumeMounts"]
    # KubeRay refuses these on the head when the options are set (utils/validation.go:167-181): it sets them.
    assert not {"REDIS_PASSWORD", "RAY_REDIS_ADDRESS", "RAY_external_storage_namespace"} & set(_env(ray))
    assert "redis-password" not in rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]


def test_every_worker_waits_600_s_for_a_new_gcs_and_the_head_serves_no_client(rayservice):
    rendered = with_gcs_fault_tolerance(rayservice, ADDRESS, "llm-gcs-redis")
    groups = rendered["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert [group["groupName"] for group in groups] == ["h100-x16", "cpu"]
    for group in groups:
        env = _env(group["template"]["spec"]["containers"][0])
        # KubeRay's DefaultWorkerRayGcsReconnectTimeoutS (utils/constant.go:302); Ray's own default is 60 s.
        assert env["RAY_gcs_rpc_server_reconnect_timeout_s"]["value"] == "600", group["groupName"]
    assert "RAY_gcs_rpc_server_reconnect_timeout_s" not in _env(_head(rendered)["containers"][0])
    assert rendered["spec"]["excludeHeadPodFromServeSvc"] is True


def test_the_render_is_a_copy_and_applying_it_twice_adds_nothing_twice(rayservice):
    before = copy.deepcopy(rayservice)
    once = with_gcs_fault_tolerance(rayservice, ADDRESS, "llm-gcs-redis")
    assert rayservice == before
    worker = with_gcs_fault_tolerance(once, ADDRESS, "llm-gcs-redis")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    names = [var["name"] for var in worker[0]["template"]["spec"]["containers"][0]["env"]]
    assert names.count("RAY_gcs_rpc_server_reconnect_timeout_s") == 1


@pytest.mark.parametrize(
    "case", [dict(), dict(upgrade="Recreate", exposure="internal", source_ranges=("10.0.0.0/8",), hf_token=True)]
)
def test_the_rayservice_stays_valid_for_kuberay_and_kubernetes(
    case, rayservice_settings, validate_rayservice, assert_valid_kubernetes_object
):
    rendered = with_gcs_fault_tolerance(render_rayservice(rayservice_settings(**case)), ADDRESS, "llm-gcs-redis")
    validate_rayservice(rendered)
    cluster = rendered["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for template in templates:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": template["spec"]}
        assert_valid_kubernetes_object(pod, "a Ray pod template with GCS fault tolerance")


def test_kuberay_rules_on_the_options_are_enforced_by_the_schema_check(rayservice, rayservice_violations):
    """The rules the operator applies with the options set (validation.go:153-190) fail offline too."""
    rendered = with_gcs_fault_tolerance(rayservice, ADDRESS, "llm-gcs-redis")
    assert rayservice_violations(rendered) == []
    head = _head(rendered)["containers"][0]
    head["env"].append({"name": "REDIS_PASSWORD", "value": "literal"})
    rendered["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]["externalStorageNamespace"] = 7
    messages = [f"{v.path}: {v.message}" for v in rayservice_violations(rendered)]
    assert any("REDIS_PASSWORD must not be set" in message for message in messages), messages
    assert any("externalStorageNamespace" in message for message in messages), messages


def test_the_secret_holds_the_password_and_the_ca_bundle():
    secret = render_gcs_redis_secret(gcs_redis_secret_name("llm"), "llm", "auth-string", "PEM\n")
    assert secret["metadata"]["name"] == "llm-gcs-redis" and secret["metadata"]["namespace"] == "llm"
    assert secret["kind"] == "Secret" and secret["stringData"] == {"password": "auth-string", "ca.crt": "PEM\n"}


def test_every_listed_ca_is_trusted_and_the_address_is_tls():
    certs = [{"cert": "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n"}, {"cert": "B"}]
    assert ca_bundle(certs) == "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\nB\n"
    # rediss:// is what turns TLS on in Ray 2.60 (ray/_private/services.py get_address) and in KubeRay's
    # cleanup Job (use_ssl=parsed.scheme=='rediss').
    assert redis_address("10.0.0.4", 6378) == "rediss://10.0.0.4:6378"
