"""The project's own KubeRay v1.7.0 RayService schema (tests/support/kuberay_schema.py): it accepts valid
RayServices and rejects each broken copy with a message that names the offending path.

Pure and offline: the examples are written here, no CRD file is read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import jsonschema
import pytest

RC = "spec.rayClusterConfig"


def _pod_template(container_name: str) -> dict:
    return {"spec": {"containers": [{"name": container_name, "image": "rayproject/ray:2.60.0"}]}}


def minimal_rayservice() -> dict:
    """The smallest RayService the CRD and the operator accept: a head and one worker group."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "minimal"},
        "spec": {
            "rayClusterConfig": {
                "headGroupSpec": {"template": _pod_template("ray-head")},
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "minReplicas": 1,
                        "maxReplicas": 1,
                        "template": _pod_template("ray-worker"),
                    }
                ],
            }
        },
    }


def full_rayservice() -> dict:
    """Every field the schema models, set to a value KubeRay accepts (guards against an over-strict schema)."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": "deepseek-r1",
            "namespace": "llm",
            "labels": {"app.kubernetes.io/name": "deepseek-r1"},
            "annotations": {"ray.io/initializing-timeout": "2h"},
        },
        "spec": {
            "serveConfigV2": "applications:\n- name: llm_app\n  import_path: ray.serve.llm:build_openai_app\n",
            "upgradeStrategy": {
                "type": "NewClusterWithIncrementalUpgrade",
                "clusterUpgradeOptions": {
                    "gatewayClassName": "gke-l7-rilb",
                    "intervalSeconds": 30,
                    "maxSurgePercent": 50,
                    "stepSizePercent": 25,
                },
            },
            "rayClusterDeletionDelaySeconds": 60,
            "excludeHeadPodFromServeSvc": True,
            "serveService": {
                "metadata": {
                    "name": "deepseek-r1-serve",
                    "labels": {"tier": "serving"},
                    "annotations": {"networking.gke.io/load-balancer-type": "Internal"},
                },
                "spec": {
                    "type": "LoadBalancer",
                    "ports": [
                        {"name": "serve", "port": 8000, "targetPort": 8000, "protocol": "TCP"},
                        {"name": "serve-alt", "port": 8001, "targetPort": "serve"},
                    ],
                    "loadBalancerSourceRanges": ["10.0.0.0/8"],
                },
            },
            "rayClusterConfig": {
                "rayVersion": "2.60.0",
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {
                    "version": "v2",
                    "upscalingMode": "Default",
                    "idleTimeoutSeconds": 600,
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "512Mi"},
                        "requests": {"cpu": 1, "memory": "1Gi"},
                    },
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    ],
                    "image": "rayproject/ray:2.60.0",
                    "imagePullPolicy": "IfNotPresent",
                },
                "authOptions": {"mode": "token", "secretName": "ray-token", "enableK8sTokenAuth": False},
                "headGroupSpec": {
                    "rayStartParams": {"num-cpus": "0", "num-gpus": "0"},
                    "serviceType": "ClusterIP",
                    "labels": {"ray.io/market-type": "on-demand"},
                    "enableIngress": False,
                    "headService": {"metadata": {"annotations": {"a": "b"}}},
                    "template": {
                        "metadata": {"labels": {"app": "ray"}, "annotations": {"x": "y"}},
                        "spec": {"restartPolicy": "Never", **_pod_template("ray-head")["spec"]},
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "h100",
                        "replicas": 2,
                        "minReplicas": 2,
                        "maxReplicas": 4,
                        "numOfHosts": 1,
                        "idleTimeoutSeconds": 300,
                        "rayStartParams": {},
                        "resources": {"accelerator_type:H100": "1"},
                        "labels": {"ray.io/accelerator-type": "H100"},
                        "suspend": False,
                        "template": _pod_template("ray-worker"),
                    }
                ],
            },
        },
    }


def _set(path: str, value) -> Callable[[dict], None]:
    """A mutation that sets a dotted path ("spec.rayClusterConfig.workerGroupSpecs.0.minReplicas")."""
    *parents, leaf = path.split(".")

    def mutate(obj: dict) -> None:
        node = obj
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(leaf) if isinstance(node, list) else leaf] = value

    return mutate


def _delete(path: str) -> Callable[[dict], None]:
    *parents, leaf = path.split(".")

    def mutate(obj: dict) -> None:
        node = obj
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[leaf]  # KeyError if the example lacks the field: the case would be testing nothing

    return mutate


def _duplicate_worker_group(obj: dict) -> None:
    groups = obj["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    groups.append(copy.deepcopy(groups[0]))


def test_schema_is_a_valid_draft_2020_12_schema(rayservice_schema):
    jsonschema.Draft202012Validator.check_schema(rayservice_schema)


@pytest.mark.parametrize("example", [minimal_rayservice, full_rayservice], ids=lambda f: f.__name__)
def test_valid_rayservice_passes(example, validate_rayservice, rayservice_violations):
    violations = rayservice_violations(example())
    assert violations == [], f"{example.__name__}: expected valid, got:\n" + "\n".join(map(str, violations))
    validate_rayservice(example())


# (case id, mutation of the minimal example, path the message must name, fragment the message must contain)
BROKEN_CASES = [
    ("missing rayClusterConfig", _delete("spec.rayClusterConfig"), f"{RC}:", "required field is missing"),
    (
        "missing headGroupSpec.template",
        _delete(f"{RC}.headGroupSpec.template"),
        f"{RC}.headGroupSpec.template:",
        "required field is missing",
    ),
    (
        "worker group missing minReplicas",
        _delete(f"{RC}.workerGroupSpecs.0.minReplicas"),
        f"{RC}.workerGroupSpecs[0].minReplicas:",
        "required field is missing",
    ),
    (
        "bad upgradeStrategy.type",
        _set("spec.upgradeStrategy", {"type": "Recreate"}),
        "spec.upgradeStrategy.type:",
        "is not one of ['NewCluster', 'NewClusterWithIncrementalUpgrade', 'None']",
    ),
    (
        "bad authOptions.mode",
        _set(f"{RC}.authOptions", {"mode": "Token"}),
        f"{RC}.authOptions.mode:",
        "is not one of ['disabled', 'token']",
    ),
    (
        "misspelt field under headGroupSpec",
        _set(f"{RC}.headGroupSpec.rayStartParam", {"num-cpus": "0"}),
        f"{RC}.headGroupSpec.rayStartParam:",
        "unknown field",
    ),
    (
        "rayStartParams value not a string",
        _set(f"{RC}.headGroupSpec.rayStartParams", {"num-cpus": 0}),
        f"{RC}.headGroupSpec.rayStartParams['num-cpus']:",
        "is not of type 'string'",
    ),
    (
        "resources map with num-gpus in rayStartParams",
        lambda o: o["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(
            resources={"accelerator_type:H100": "1"}, rayStartParams={"num-gpus": "8"}
        ),
        f"{RC}.workerGroupSpecs[0].resources:",
        "cannot be combined with rayStartParams num-gpus",
    ),
    (
        "minReplicas > maxReplicas",
        _set(f"{RC}.workerGroupSpecs.0.minReplicas", 3),
        f"{RC}.workerGroupSpecs[0].minReplicas:",
        "minReplicas 3 is greater than maxReplicas 1",
    ),
    (
        "duplicate groupName",
        _duplicate_worker_group,
        f"{RC}.workerGroupSpecs[1].groupName:",
        "duplicate worker group name 'workers'",
    ),
    (
        "serveConfigV2 not a string",
        _set("spec.serveConfigV2", {"applications": []}),
        "spec.serveConfigV2:",
        "is not of type 'string'",
    ),
    (
        "rayClusterConfig.upgradeStrategy present",
        _set(f"{RC}.upgradeStrategy", {"type": "Recreate"}),
        f"{RC}.upgradeStrategy:",
        "must not be set under a RayService",
    ),
    # Further CRD and operator rules.
    ("wrong apiVersion", _set("apiVersion", "ray.io/v1alpha1"), "apiVersion:", "'ray.io/v1' was expected"),
    (
        "bad autoscalerOptions.version",
        _set(f"{RC}.autoscalerOptions", {"version": "v3"}),
        f"{RC}.autoscalerOptions.version:",
        "is not one of ['v1', 'v2']",
    ),
    (
        "autoscaler resource not a quantity",
        _set(f"{RC}.autoscalerOptions", {"resources": {"limits": {"cpu": "1 core"}}}),
        f"{RC}.autoscalerOptions.resources.limits.cpu:",
        "does not match",
    ),
    (
        "negative rayClusterDeletionDelaySeconds",
        _set("spec.rayClusterDeletionDelaySeconds", -1),
        "spec.rayClusterDeletionDelaySeconds:",
        "less than the minimum of 0",
    ),
    (
        "maxReplicas beyond int32",
        _set(f"{RC}.workerGroupSpecs.0.maxReplicas", 2**31),
        f"{RC}.workerGroupSpecs[0].maxReplicas:",
        "greater than the maximum",
    ),
    (
        "serveService type ExternalName",
        _set("spec.serveService", {"spec": {"type": "ExternalName"}}),
        "spec.serveService.spec.type:",
        "is not one of",
    ),
    (
        "serveService port missing port",
        _set("spec.serveService", {"spec": {"ports": [{"name": "serve"}]}}),
        "spec.serveService.spec.ports[0].port:",
        "required field is missing",
    ),
    (
        "serveService duplicate port",
        _set("spec.serveService", {"spec": {"ports": [{"port": 8000}, {"port": 8000, "protocol": "TCP"}]}}),
        "spec.serveService.spec.ports[1]:",
        "duplicate (port, protocol)",
    ),
    (
        "headService name set",
        _set(f"{RC}.headGroupSpec.headService", {"metadata": {"name": "my-head"}}),
        f"{RC}.headGroupSpec.headService.metadata.name:",
        "must not be set under a RayService",
    ),
    ("RayService name too long", _set("metadata.name", "a" * 48), "metadata.name:", "at most 47"),
    ("RayService name not DNS-1035", _set("metadata.name", "1-llm"), "metadata.name:", "DNS-1035 label"),
    (
        "bad initializing-timeout",
        _set("metadata.annotations", {"ray.io/initializing-timeout": "soon"}),
        "metadata.annotations['ray.io/initializing-timeout']:",
        "invalid format",
    ),
    (
        "no container in worker template",
        _set(f"{RC}.workerGroupSpecs.0.template.spec.containers", []),
        f"{RC}.workerGroupSpecs[0].template.spec.containers:",
        "at least one container",
    ),
    (
        "rayStartParams labels",
        _set(f"{RC}.headGroupSpec.rayStartParams", {"labels": "a=b"}),
        f"{RC}.headGroupSpec.rayStartParams.labels:",
        "not supported",
    ),
    (
        "invalid group label key",
        _set(f"{RC}.workerGroupSpecs.0.labels", {"bad key": "x"}),
        f"{RC}.workerGroupSpecs[0].labels['bad key']:",
        "invalid label key",
    ),
    (
        "idleTimeoutSeconds without autoscaler v2",
        _set(f"{RC}.workerGroupSpecs.0.idleTimeoutSeconds", 60),
        f"{RC}.workerGroupSpecs[0].idleTimeoutSeconds:",
        "autoscaler v2",
    ),
    (
        "incremental upgrade without autoscaler",
        _set(
            "spec.upgradeStrategy",
            {
                "type": "NewClusterWithIncrementalUpgrade",
                "clusterUpgradeOptions": {
                    "gatewayClassName": "gke-l7-rilb",
                    "intervalSeconds": 30,
                    "stepSizePercent": 10,
                },
            },
        ),
        f"{RC}.enableInTreeAutoscaling:",
        "requires the Ray autoscaler",
    ),
    (
        "token auth on old Ray",
        lambda o: o["spec"]["rayClusterConfig"].update(rayVersion="2.50.0", authOptions={"mode": "token"}),
        f"{RC}.rayVersion:",
        "needs Ray >= 2.52.0",
    ),
    (
        "K8s token auth under RayService",
        _set(f"{RC}.authOptions", {"mode": "token", "enableK8sTokenAuth": True}),
        f"{RC}.authOptions.enableK8sTokenAuth:",
        "not supported for a RayService",
    ),
]


@pytest.mark.parametrize("case, mutate, path, fragment", BROKEN_CASES, ids=[c[0] for c in BROKEN_CASES])
def test_broken_rayservice_is_rejected_naming_the_path(case, mutate, path, fragment, validate_rayservice):
    obj = minimal_rayservice()
    mutate(obj)
    with pytest.raises(AssertionError) as excinfo:
        validate_rayservice(obj)
    message = str(excinfo.value)
    matching = [line for line in message.splitlines() if line.strip().startswith(f"- {path}")]
    assert matching, f"{case}: no violation at {path!r} in:\n{message}"
    assert any(fragment in line for line in matching), f"{case}: no {fragment!r} at {path!r} in:\n{message}"


def test_every_violation_is_reported_at_once(rayservice_violations):
    """The operator stops at its first error; the validator lists them all, schema and operator rules alike."""
    obj = minimal_rayservice()
    obj["spec"]["serveConfigV2"] = 1
    obj["spec"]["upgradeStrategy"] = {"type": "Blue"}
    obj["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplicas"] = 5
    _duplicate_worker_group(obj)
    paths = {v.path for v in rayservice_violations(obj)}
    expected = {
        "spec.serveConfigV2",
        "spec.upgradeStrategy.type",
        f"{RC}.workerGroupSpecs[0].minReplicas",
        f"{RC}.workerGroupSpecs[1].groupName",
    }
    assert expected <= paths, f"missing {sorted(expected - paths)}; got {sorted(paths)}"


@pytest.mark.parametrize("target_port", [8000, "serve"], ids=["int", "named"])
def test_target_port_is_int_or_string(target_port, rayservice_violations):
    obj = minimal_rayservice()
    obj["spec"]["serveService"] = {"spec": {"ports": [{"port": 8000, "targetPort": target_port}]}}
    assert rayservice_violations(obj) == [], f"targetPort={target_port!r} must be accepted (int-or-string)"


@pytest.mark.parametrize("timeout", ["90m", "1h30m", "7200"])
def test_initializing_timeout_accepts_durations_and_seconds(timeout, rayservice_violations):
    obj = minimal_rayservice()
    obj["metadata"]["annotations"] = {"ray.io/initializing-timeout": timeout}
    assert rayservice_violations(obj) == [], f"ray.io/initializing-timeout={timeout!r} must be accepted"


@pytest.mark.parametrize("timeout", ["0", "-5", "0s", "2 hours"])
def test_initializing_timeout_rejects_non_positive_or_malformed(timeout, rayservice_violations):
    obj = minimal_rayservice()
    obj["metadata"]["annotations"] = {"ray.io/initializing-timeout": timeout}
    paths = [v.path for v in rayservice_violations(obj)]
    assert paths == ["metadata.annotations['ray.io/initializing-timeout']"], f"timeout={timeout!r}: got {paths}"


def test_non_dict_input_is_reported_not_crashed(validate_rayservice):
    with pytest.raises(AssertionError, match="is not of type 'object'"):
        validate_rayservice([])  # type: ignore[arg-type]
