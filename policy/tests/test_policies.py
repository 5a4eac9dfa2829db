"""Every policy of the pack, offline, through pulumi_policy itself: on the resources each stack's offline plan
records (all compliant), on a violating copy of such a resource, and with the value it reads unknown.

Run in the pack's environment (requirements/policy-test.txt): `.venv-policy/bin/python -m pytest policy/tests`.
Props are wrapped in pulumi_policy's `unknown_checking_proxy`, as the analyzer does during `pulumi preview`.
"""

from __future__ import annotations

import copy
import re

import policies
import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

OPTIONS = PolicyResourceOptions(
    protect=False,
    ignore_changes=[],
    delete_before_replace=None,
    aliases=[],
    custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
    additional_secret_outputs=[],
)


def policy(name: str):
    return next(p for p in policies.ALL if p.name == name)


def validate(name: str, resource_type: str, props: dict) -> list[str]:
    messages: list[str] = []
    args = ResourceValidationArgs(
        resource_type,
        unknown_checking_proxy(props),
        f"urn:pulumi:test::llmserve::{resource_type}::r",
        "r",
        OPTIONS,
        None,
    )
    policy(name).validate(args, lambda message, urn=None: messages.append(message))
    return messages


def validate_stack(name: str, recorded: list[tuple[str, dict]]) -> list[str]:
    messages: list[str] = []
    args = StackValidationArgs(
        [
            PolicyResource(
                t,
                unknown_checking_proxy(p),
                f"urn:pulumi:test::llmserve::{t}::r{i}",
                f"r{i}",
                OPTIONS,
                None,
                None,
                [],
                {},
            )
            for i, (t, p) in enumerate(recorded)
        ]
    )
    policy(name).validate(args, lambda message, urn=None: messages.append(message))
    return messages


def pick(plan, resource_type: str, name: str) -> dict:
    matches = [r for r in plan.resources if r.type == resource_type and r.name == name]
    assert len(matches) == 1, f"{plan.stack}: {resource_type} {name}"
    return copy.deepcopy(matches[0].inputs)


def set_path(props: dict, path: tuple, value) -> dict:
    node = props
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return props


BUCKET = {"location": "US-EAST4", "uniformBucketLevelAccess": True, "publicAccessPrevention": "enforced"}

# policy, stack, (type, name) of a planned resource (or a literal props dict), mutation path and bad value,
# expected message, the path made unknown.
CASES = [
    (
        "gpu-pool-secure-boot",
        "prod",
        ("gcp:container/nodePool:NodePool", "llm-gpu"),
        ("nodeConfig", "shieldedInstanceConfig", "enableSecureBoot"),
        False,
        r"GPU node pool without secure boot",
        ("nodeConfig", "shieldedInstanceConfig", "enableSecureBoot"),
        UNKNOWN_BOOLEAN_VALUE,
    ),
    (
        "a3-pool-compact-gvnic-gpu-networks",
        "prod",
        ("gcp:container/nodePool:NodePool", "llm-gpu"),
        ("placementPolicy", "type"),
        "",
        r"a3-megagpu-8g pool without compact placement",
        ("nodeConfig", "gvnic", "enabled"),
        UNKNOWN_BOOLEAN_VALUE,
    ),
    (
        "a3-pool-compact-gvnic-gpu-networks",
        "staging",
        ("gcp:container/nodePool:NodePool", "llm-gpu"),
        ("networkConfig", "additionalNodeNetworkConfigs"),
        [],
        r"a3-highgpu-8g pool has 0 GPU NIC networks; the "
        r"machine needs exactly 4",
        ("nodeConfig", "machineType"),
        UNKNOWN_STRING_VALUE,
    ),
    (
        "gpu-pool-gpu-taint",
        "dev",
        ("gcp:container/nodePool:NodePool", "llm-gpu"),
        ("nodeConfig", "taints"),
        [],
        r"GPU node pool without the nvidia.com/gpu NO_SCHEDULE taint",
        ("nodeConfig", "taints"),
        UNKNOWN_STRING_VALUE,
    ),
    (
        "control-plane-not-open",
        "prod",
        ("gcp:container/cluster:Cluster", "llm-gke"),
        ("masterAuthorizedNetworksConfig", "cidrBlocks"),
        [{"cidrBlock": "0.0.0.0/0", "displayName": "all"}],
        r"control plane open to 0.0.0.0/0",
        ("masterAuthorizedNetworksConfig", "cidrBlocks"),
        UNKNOWN_STRING_VALUE,
    ),
    (
        "no-public-buckets",
        None,
        ("gcp:storage/bucket:Bucket", BUCKET),
        ("publicAccessPrevention",),
        "inherited",
        r"bucket without publicAccessPrevention=\"enforced\"",
        ("uniformBucketLevelAccess",),
        UNKNOWN_BOOLEAN_VALUE,
    ),
    (
        "no-plain-http-exposure",
        "prod",
        ("kubernetes:ray.io/v1:RayService", "llm-serve-rayservice"),
        ("spec", "serveService"),
        {"spec": {"type": "LoadBalancer", "ports": [{"port": 8000}]}},
        r"serveService is a public LoadBalancer",
        ("spec", "serveService"),
        UNKNOWN_STRING_VALUE,
    ),
    (
        "images-pinned",
        "prod",
        ("kubernetes:ray.io/v1:RayService", "llm-serve-rayservice"),
        ("spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "containers", 0, "image"),
        "rayproject/ray-llm:latest",
        r"container 'ray-head': image rayproject/ray-llm:latest uses :latest",
        ("spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "containers", 0, "image"),
        UNKNOWN_STRING_VALUE,
    ),
    (
        "images-pinned",
        "prod",
        ("kubernetes:helm.sh/v3:Release", "llm-kuberay"),
        ("values", "image", "tag"),
        "",
        r"Helm values: image quay.io/kuberay/operator is not pinned",
        ("values", "image", "tag"),
        UNKNOWN_STRING_VALUE,
    ),
    (
        "endpoint-key-check",
        "dev",
        ("kubernetes:ray.io/v1:RayService", "llm-serve-rayservice"),
        ("spec", "serveConfigV2"),
        "applications:\n- name: llm\n  import_path: ray.serve.llm:build_openai_app\n  args: {}\n",
        r"Serve application 'llm' has no API key check",
        ("spec", "serveConfigV2"),
        UNKNOWN_STRING_VALUE,
    ),
]


def _base(planned, stack, target) -> tuple[str, dict]:
    resource_type, name_or_props = target
    if stack is None:
        return resource_type, copy.deepcopy(name_or_props)
    return resource_type, pick(planned(stack), resource_type, name_or_props)


@pytest.mark.parametrize("name", [p.name for p in policies.RESOURCE_POLICIES])
def test_every_planned_resource_of_every_stack_complies(stack, name, planned):
    violations = [(r.type, r.name, m) for r in planned(stack).resources for m in validate(name, r.type, r.inputs)]
    assert not violations, f"{stack}: {name}: {violations}"


def test_every_stack_passes_the_stack_policies(stack, planned):
    for stack_policy in policies.STACK_POLICIES:
        assert validate_stack(stack_policy.name, [(r.type, r.inputs) for r in planned(stack).resources]) == [], (
            f"{stack}: {stack_policy.name}"
        )


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{'.'.join(map(str, c[3]))}" for c in CASES])
def test_compliant_violating_and_unknown(case, planned):
    name, stack, target, path, bad, message, unknown_path, unknown = case
    resource_type, props = _base(planned, stack, target)
    assert validate(name, resource_type, props) == [], "the compliant resource passes"
    violations = validate(name, resource_type, set_path(copy.deepcopy(props), path, bad))
    assert any(re.search(message, v) for v in violations), f"expected /{message}/ in {violations}"
    with pytest.raises(UnknownValueError):
        validate(name, resource_type, set_path(copy.deepcopy(props), unknown_path, unknown))


def test_every_resource_policy_has_a_case():
    assert {p.name for p in policies.RESOURCE_POLICIES} == {case[0] for case in CASES}


def test_network_policies_present_compliant_violating_and_unknown(planned):
    recorded = [(r.type, copy.deepcopy(r.inputs)) for r in planned("prod").resources]
    assert validate_stack("network-policies-present", recorded) == []
    without = [(t, p) for t, p in recorded if t != "kubernetes:networking.k8s.io/v1:NetworkPolicy"]
    assert any(
        "has no NetworkPolicy selecting its Ray pods" in v for v in validate_stack("network-policies-present", without)
    )
    unknown = copy.deepcopy(recorded)
    for t, p in unknown:
        if t == "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            p["spec"]["podSelector"]["matchLabels"] = UNKNOWN_STRING_VALUE
    with pytest.raises(UnknownValueError):
        validate_stack("network-policies-present", unknown)


def test_external_https_gateway_passes_and_a_plain_http_listener_fails():
    gateway = {
        "spec": {
            "gatewayClassName": "gke-l7-global-external-managed",
            "listeners": [{"name": "https", "protocol": "HTTPS", "port": 443}],
        }
    }
    kind = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
    assert validate("no-plain-http-exposure", kind, gateway) == []
    gateway["spec"]["listeners"].append({"name": "http", "protocol": "HTTP", "port": 80})
    assert validate("no-plain-http-exposure", kind, gateway) == ["external Gateway listener(s) ['http'] are not HTTPS"]
