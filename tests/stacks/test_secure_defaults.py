"""Secure defaults and capacity settings that hold (infra/config/sections/secure.py, infra/render/exposure.py,
infra/components/exposure.py).

Config rules are checked by their messages; what the stacks create is checked on the real program under mocks,
the same way as tests/stacks/test_platform.py, including stack variants (external HTTPS exposure, opt-outs).
"""

from __future__ import annotations

import ipaddress
import json
import re

import jsonschema
import pytest

from infra.cli import plan as plan_module
from infra.config.settings import SecureSettings
from infra.config.stackfiles import stack_config
from infra.render.exposure import ExposureSettings, render_network_policies, source_ranges_for_internal
from infra.render.rayservice import HEAD_PORTS, SERVE_PORT

# --- config --------------------------------------------------------------------------------------------------


def test_defaults_are_the_secure_ones(parse_config):
    assert parse_config().secure == SecureSettings(
        gpu_secure_boot=True,
        host_maintenance_interval=None,
        network_policies=True,
        serve_client_namespaces=(),
        serve_hostname=None,
        serve_allow_plain_http=False,
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            dict(serveExposure="external"),
            r"llmserve:serveExposure: external is served over HTTPS only .* found no llmserve:serveHostname; allowed: "
            r"set llmserve:serveHostname",
        ),
        (
            dict(serveExposure="internal"),
            r"llmserve:serveExposure: internal serves plain HTTP .* found llmserve:serveAllowPlainHttp=false; allowed: "
            r"set llmserve:serveAllowPlainHttp=true",
        ),
        (
            dict(serveHostname="api.example.com"),
            r"llmserve:serveHostname: only used with serveExposure=external; found 'api.example.com' with "
            r"serveExposure='cluster'",
        ),
        (
            dict(serveExposure="external", serveHostname="https://api.example.com"),
            r"llmserve:serveHostname: expected a lowercase DNS name like api.example.com .*; found 'https://api",
        ),
        (
            dict(serveExposure="external", serveHostname="api.example.com", serveSourceRanges=["10.0.0.0/8"]),
            r"llmserve:serveSourceRanges: not supported with serveExposure=external",
        ),
        (
            dict(gpuHostMaintenanceInterval="WEEKLY"),
            r"llmserve:gpuHostMaintenanceInterval: unknown value 'WEEKLY'; "
            r"allowed: \"\" \(unset\), AS_NEEDED, PERIODIC",
        ),
        (
            dict(serveClientNamespaces=["Team_A"]),
            r"llmserve:serveClientNamespaces\[0\]: expected a Kubernetes namespace name .*; found 'Team_A'",
        ),
        (
            dict(gpuQueuedProvisioning=True, gpuAutoscaling=True, gpuCompactPlacement=False),
            r"llmserve:gpuQueuedProvisioning: true is refused: .*ProvisioningRequest.* Use gpuFlexStart=true",
        ),
    ],
)
def test_bad_secure_input_is_refused_naming_the_switch(overrides, message, config_problems):
    problems = config_problems(**overrides)
    assert re.search(message, problems), f"expected /{message}/ in:\n{problems}"


def test_opt_outs_are_accepted_and_warned_about(parse_config):
    config = parse_config(
        gpuSecureBoot=False,
        networkPolicies=False,
        gpuHostMaintenanceInterval="PERIODIC",
        serveExposure="internal",
        serveAllowPlainHttp=True,
        serveSourceRanges=["10.0.0.0/8"],
    )
    assert config.secure.host_maintenance_interval == "PERIODIC"
    text = "\n".join(config.warnings)
    for switch in ("gpuSecureBoot: false", "networkPolicies: false", "gpuHostMaintenanceInterval: PERIODIC"):
        assert f"llmserve:{switch}" in text, text


def test_a3_high_on_demand_is_warned_about_automatic_reservations(parse_config):
    warnings = parse_config(gpuMachineType="a3-highgpu-8g").warnings
    assert any("a3-highgpu-8g cannot consume automatic reservations" in w for w in warnings), warnings
    assert not any(
        "automatic reservations" in w
        for w in parse_config(gpuMachineType="a3-highgpu-8g", gpuReservation="res-1").warnings
    )


# --- capacity that holds ---------------------------------------------------------------------------------------


def test_host_maintenance_interval_is_left_to_gke_by_default(stack, planned):
    assert "hostMaintenancePolicy" not in planned(stack).gpu_pool()["nodeConfig"], stack


def test_staging_uses_flex_start_that_a3_high_can_obtain(planned):
    pool = planned("staging").gpu_pool()
    assert pool["nodeConfig"]["machineType"] == "a3-highgpu-8g"
    assert pool["nodeConfig"]["flexStart"] is True
    assert pool["nodeConfig"]["reservationAffinity"] == {"consumeReservationType": "NO_RESERVATION"}
    assert pool["autoscaling"]["totalMinNodeCount"] == 0 and pool["autoscaling"]["totalMaxNodeCount"] == 2
    assert "placementPolicy" not in pool, "GKE does not place flex-start A3 nodes compactly"
    warnings = planned("staging").config.warnings
    assert not any("automatic reservations" in w for w in warnings), warnings


# --- secure boot -----------------------------------------------------------------------------------------------


def test_every_node_pool_boots_securely(stack, planned):
    pools = [r for r in planned(stack).resources if r.type == "gcp:container/nodePool:NodePool"]
    assert len(pools) == 2
    for pool in pools:
        shielded = pool.inputs["nodeConfig"]["shieldedInstanceConfig"]
        assert shielded == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}, f"{stack}: {pool.name}"


# --- network policies ------------------------------------------------------------------------------------------


def manifests_of(resources) -> list[dict]:
    return plan_module.kubernetes_manifests(resources)


def policies_of(resources) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests_of(resources) if m["kind"] == "NetworkPolicy"}


def allowed_peers(policies: dict[str, dict], port: int, pod_labels: dict) -> list[dict]:
    """Every `from` peer that some policy selecting a pod with `pod_labels` lets reach `port` (TCP)."""
    peers = []
    for policy in policies.values():
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if any(pod_labels.get(k) != v for k, v in selector.items()):
            continue
        for rule in policy["spec"]["ingress"]:
            ports = rule.get("ports")
            if ports is None or any(p["port"] == port for p in ports):
                peers += rule["from"]
    return peers


HEAD_LABELS = {"ray.io/is-ray-node": "yes", "ray.io/node-type": "head", "ray.io/cluster": "llm-abcde"}
WORKER_LABELS = {"ray.io/is-ray-node": "yes", "ray.io/node-type": "worker", "ray.io/cluster": "llm-abcde"}
RAY_PEER = {"podSelector": {"matchLabels": {"ray.io/is-ray-node": "yes"}}}
OPERATOR_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kuberay-system"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}},
}
GMP_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gmp-system"}}}


def test_network_policies_are_valid_and_created_before_the_ray_pods(stack, assert_valid_kubernetes_object, planned):
    resources = planned(stack).resources
    policies = policies_of(resources)
    assert sorted(policies) == ["llm-ray-internal", "llm-ray-metrics", "llm-ray-operator", "llm-serve-ingress"]
    for policy in policies.values():
        assert_valid_kubernetes_object(policy, stack)
    rayservice = next(r for r in resources if r.type == "kubernetes:ray.io/v1:RayService")
    missing = {f"llm-serve-networkpolicy-{name}" for name in policies} - set(rayservice.options["dependencies"])
    assert not missing, f"{stack}: the RayService does not wait for {missing}"


@pytest.mark.parametrize("port_name, port", [(n, p) for n, p in HEAD_PORTS if n in ("gcs-server", "client")])
def test_gcs_and_client_ports_are_reachable_only_from_ray_pods(port_name, port, planned):
    policies = policies_of(planned("prod").resources)
    for labels in (HEAD_LABELS, WORKER_LABELS):
        assert allowed_peers(policies, port, labels) == [RAY_PEER], f"{port_name} {port} on {labels}"


def test_dashboard_is_reachable_from_ray_pods_and_the_kuberay_operator_only(planned):
    policies = policies_of(planned("prod").resources)
    peers = allowed_peers(policies, 8265, HEAD_LABELS)
    assert sorted(map(json.dumps, peers)) == sorted(map(json.dumps, [RAY_PEER, OPERATOR_PEER]))


@pytest.mark.parametrize(
    "port_name, port", [(n, p) for n, p in HEAD_PORTS if n in ("metrics", "as-metrics", "dash-metrics")]
)
def test_metrics_ports_are_reachable_from_ray_pods_and_managed_prometheus_only(port_name, port, planned):
    policies = policies_of(planned("prod").resources)
    peers = allowed_peers(policies, port, HEAD_LABELS)
    assert sorted(map(json.dumps, peers)) == sorted(map(json.dumps, [RAY_PEER, GMP_PEER])), port_name


def test_a_random_ray_worker_port_is_reachable_from_ray_pods_only(planned):
    policies = policies_of(planned("prod").resources)
    assert allowed_peers(policies, 10002, WORKER_LABELS) == [RAY_PEER]


def test_serve_port_in_cluster_exposure_is_open_to_the_serving_namespace_only(planned):
    policies = policies_of(planned("prod").resources)
    peers = allowed_peers(policies, SERVE_PORT, WORKER_LABELS)
    assert sorted(map(json.dumps, peers)) == sorted(map(json.dumps, [RAY_PEER, {"podSelector": {}}]))
    # and the operator, which health-checks the head's Serve proxy to label the head for the serve Service
    head = allowed_peers(policies, SERVE_PORT, HEAD_LABELS)
    assert sorted(map(json.dumps, head)) == sorted(map(json.dumps, [RAY_PEER, {"podSelector": {}}, OPERATOR_PEER]))


def _exposure(serving, **overrides) -> ExposureSettings:
    values = dict(serving=serving, operator_namespace="kuberay-system", pods_cidr="10.4.0.0/14")
    values.update(overrides)
    return ExposureSettings(**values)


def test_serve_port_admits_listed_client_namespaces_and_the_internal_load_balancers_clients(
    assert_valid_kubernetes_object, rayservice_settings
):
    settings = _exposure(
        serving=rayservice_settings(exposure="internal", source_ranges=("10.0.0.0/8",)), client_namespaces=("apps",)
    )
    policy = {p["metadata"]["name"]: p for p in render_network_policies(settings)}["llm-serve-ingress"]
    assert policy["spec"]["ingress"] == [
        {
            "ports": [{"protocol": "TCP", "port": SERVE_PORT}],
            "from": [
                {"podSelector": {}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.4.0.0/14"]}},
            ],
        }
    ]
    assert_valid_kubernetes_object(policy, "internal exposure")


@pytest.mark.parametrize(
    "ranges, blocks",
    [
        ((), [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.4.0.0/14"]}}]),
        (("192.168.10.0/24",), [{"ipBlock": {"cidr": "192.168.10.0/24"}}]),
        (("10.4.1.0/24",), []),  # only pods: they need their namespace listed, not an address range
    ],
)
def test_internal_source_ranges_never_bypass_the_namespace_rule(ranges, blocks):
    assert source_ranges_for_internal(ranges, "10.4.0.0/14") == blocks


# --- HTTPS-only external exposure ------------------------------------------------------------------------------

# Structural checks of the Gateway API v1 and GKE policy objects this project renders, written from the Gateway
# API v1 reference (gateway.networking.k8s.io) and GKE's "Configure Gateway resources using Policies" page:
# required fields, types, enums and no unknown fields at the levels rendered. Not the CRDs' full OpenAPI (no
# copy is vendored), so CEL rules such as listener-name uniqueness are not checked here.
_META = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {"type": "object"},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_HOSTNAME = {"type": "string", "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}
_TARGET_REF = {
    "type": "object",
    "required": ["group", "kind", "name"],
    "additionalProperties": False,
    "properties": {"group": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"}},
}


def _object(api_version: str, kind: str, spec: dict) -> dict:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": _META, "spec": spec},
    }


STRUCTURAL_SCHEMAS = {
    "Gateway": _object(
        "gateway.networking.k8s.io/v1",
        "Gateway",
        {
            "type": "object",
            "required": ["gatewayClassName", "listeners"],
            "additionalProperties": False,
            "properties": {
                "gatewayClassName": {"type": "string", "minLength": 1, "maxLength": 253},
                "listeners": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 64,
                    "items": {
                        "type": "object",
                        "required": ["name", "port", "protocol"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "hostname": _HOSTNAME,
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "protocol": {"enum": ["HTTP", "HTTPS", "TLS", "TCP", "UDP"]},
                            "allowedRoutes": {
                                "type": "object",
                                "properties": {
                                    "namespaces": {
                                        "type": "object",
                                        "properties": {"from": {"enum": ["All", "Same", "Selector"]}},
                                    }
                                },
                            },
                        },
                    },
                },
                "addresses": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["value"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"enum": ["IPAddress", "Hostname", "NamedAddress"]},
                            "value": {"type": "string", "minLength": 1},
                        },
                    },
                },
            },
        },
    ),
    "HTTPRoute": _object(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        {
            "type": "object",
            "required": ["parentRefs", "rules"],
            "additionalProperties": False,
            "properties": {
                "parentRefs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {"name": {"type": "string"}, "sectionName": {"type": "string"}},
                    },
                },
                "hostnames": {"type": "array", "items": _HOSTNAME},
                "rules": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "matches": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "required": ["type", "value"],
                                            "properties": {
                                                "type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                                                "value": {"type": "string", "pattern": "^/"},
                                            },
                                        }
                                    },
                                },
                            },
                            "backendRefs": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["name", "port"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "name": {"type": "string"},
                                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    ),
    "HealthCheckPolicy": _object(
        "networking.gke.io/v1",
        "HealthCheckPolicy",
        {
            "type": "object",
            "required": ["default", "targetRef"],
            "additionalProperties": False,
            "properties": {
                "targetRef": _TARGET_REF,
                "default": {
                    "type": "object",
                    "properties": {
                        "config": {
                            "type": "object",
                            "required": ["type"],
                            "properties": {
                                "type": {"enum": ["TCP", "HTTP", "HTTPS", "HTTP2", "GRPC"]},
                                "httpHealthCheck": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "portSpecification": {
                                            "enum": ["USE_FIXED_PORT", "USE_NAMED_PORT", "USE_SERVING_PORT"]
                                        },
                                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                        "requestPath": {"type": "string", "pattern": "^/"},
                                    },
                                },
                            },
                        }
                    },
                },
            },
        },
    ),
    "GCPBackendPolicy": _object(
        "networking.gke.io/v1",
        "GCPBackendPolicy",
        {
            "type": "object",
            "required": ["default", "targetRef"],
            "additionalProperties": False,
            "properties": {
                "targetRef": _TARGET_REF,
                "default": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "timeoutSec": {"type": "integer", "minimum": 1, "maximum": 86400},
                        # gke-gateway-api apis/networking/v1/gcpbackendpolicy_types.go: ConnectionDraining
                        "connectionDraining": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"drainingTimeoutSec": {"type": "integer", "minimum": 0, "maximum": 3600}},
                        },
                    },
                },
            },
        },
    ),
}

EXTERNAL = {"llmserve:serveExposure": "external", "llmserve:serveHostname": "api.example.com"}


def plan_variant(monkeypatch, stack: str, overrides: dict, secrets: dict | None = None):
    """Run the real program for `stack` with config `overrides` (and plaintext `secrets`, marked secret)."""
    values, secret_keys = stack_config(stack)
    values = {**values, **overrides, **(secrets or {})}
    monkeypatch.setattr(plan_module, "stack_config", lambda name, root: (values, [*secret_keys, *(secrets or {})]))
    return plan_module.run_program(stack)


@pytest.fixture(scope="module")
def external_prod():
    with pytest.MonkeyPatch.context() as monkeypatch:
        return plan_variant(monkeypatch, "prod", EXTERNAL)


def test_external_exposure_is_an_https_only_gateway_with_a_managed_certificate(external_prod):
    _config, resources = external_prod
    manifests = {m["kind"]: m for m in manifests_of(resources)}
    gateway = manifests["Gateway"]
    assert gateway["spec"]["gatewayClassName"] == "gke-l7-global-external-managed"
    assert gateway["spec"]["listeners"] == [
        {
            "name": "https",
            "protocol": "HTTPS",
            "port": 443,
            "hostname": "api.example.com",
            "allowedRoutes": {"namespaces": {"from": "Same"}},
        }
    ]
    assert gateway["metadata"]["annotations"]["networking.gke.io/certmap"] == "llm-exposure-certmap"
    assert gateway["spec"]["addresses"] == [{"type": "NamedAddress", "value": "llm-exposure-address"}]
    route = manifests["HTTPRoute"]["spec"]
    assert route["rules"][0]["backendRefs"] == [{"name": "llm-serve-svc", "port": 8000}]
    certificate = next(r for r in resources if r.type == "gcp:certificatemanager/certificate:Certificate")
    assert certificate.inputs["managed"]["domains"] == ["api.example.com"]
    assert certificate.inputs["managed"]["dnsAuthorizations"], "the certificate is DNS-authorized"
    entry = next(r for r in resources if r.type == "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry")
    assert entry.inputs["hostname"] == "api.example.com"
    rayservice = manifests["RayService"]
    assert "serveService" not in rayservice["spec"], "no plain-HTTP load balancer next to the Gateway"
    services = [m for m in manifests_of(resources) if m["kind"] == "Service"]
    assert not services


def test_streams_in_flight_survive_a_pod_leaving_the_load_balancer(external_prod):
    """GKE drains a removed endpoint for 0 s unless told otherwise (gke-gateway-api gcpbackendpolicy_types.go),
    cutting every reply still streaming from it. The drain lasts as long as a stream may (the backend timeout),
    at most the API's 3600 s."""
    (policy,) = [m for m in manifests_of(external_prod[1]) if m["kind"] == "GCPBackendPolicy"]
    default = policy["spec"]["default"]
    assert default["connectionDraining"] == {"drainingTimeoutSec": 3600}
    assert default["timeoutSec"] == 3600
    assert policy["spec"]["targetRef"] == {"group": "", "kind": "Service", "name": "llm-serve-svc"}


def test_external_objects_validate_structurally(external_prod, assert_valid_kubernetes_object):
    for manifest in manifests_of(external_prod[1]):
        if manifest["kind"] in STRUCTURAL_SCHEMAS:
            jsonschema.validate(manifest, STRUCTURAL_SCHEMAS[manifest["kind"]])
        elif manifest["kind"] == "NetworkPolicy":
            assert_valid_kubernetes_object(manifest, "external")
    kinds = {m["kind"] for m in manifests_of(external_prod[1])}
    assert set(STRUCTURAL_SCHEMAS) <= kinds, kinds


def test_structural_check_can_fail(external_prod):
    gateway = next(m for m in manifests_of(external_prod[1]) if m["kind"] == "Gateway")
    broken = json.loads(json.dumps(gateway))
    broken["spec"]["listeners"][0]["protocol"] = "HTTPX"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, STRUCTURAL_SCHEMAS["Gateway"])


def test_external_serve_port_admits_google_front_ends_not_the_internet(external_prod):
    policies = policies_of(external_prod[1])
    blocks = [
        peer["ipBlock"]["cidr"] for peer in allowed_peers(policies, SERVE_PORT, WORKER_LABELS) if "ipBlock" in peer
    ]
    # Google's documented proxy and health-check ranges for external Application Load Balancers (README).
    assert sorted(blocks) == ["130.211.0.0/22", "35.191.0.0/16"]
    assert not any(ipaddress.ip_network(b).prefixlen < 16 for b in blocks)


def test_network_policies_switch_off(monkeypatch):
    _, resources = plan_variant(monkeypatch, "dev", {"llmserve:networkPolicies": "false"})
    assert not policies_of(resources)


def test_secure_boot_and_maintenance_switches_reach_the_gpu_pool(monkeypatch):
    _, resources = plan_variant(
        monkeypatch, "prod", {"llmserve:gpuSecureBoot": "false", "llmserve:gpuHostMaintenanceInterval": "PERIODIC"}
    )
    pool = next(r for r in resources if r.name == "llm-gpu" and r.type == "gcp:container/nodePool:NodePool")
    assert pool.inputs["nodeConfig"]["shieldedInstanceConfig"]["enableSecureBoot"] is False
    assert pool.inputs["nodeConfig"]["hostMaintenancePolicy"] == {"maintenanceInterval": "PERIODIC"}


# --- secrets never in plain sight ------------------------------------------------------------------------------

API_KEY_CANARY = "canary-api-key-7f3c9e1d5b2a4c6e8f0a"
HF_TOKEN_CANARY = "hf_canaryToken0123456789abcdef"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


def _walk(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    else:
        yield path, value


def _containers(obj: dict) -> list[dict]:
    found: list[dict] = []

    def visit(node):
        if isinstance(node, dict):
            for key in ("containers", "initContainers"):
                if isinstance(node.get(key), list):
                    found.extend(node[key])
            for item in node.values():
                visit(item)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(obj)
    return found


def test_secrets_reach_only_kubernetes_secrets(monkeypatch, stack):
    overrides = EXTERNAL if stack == "prod" else {}
    _, resources = plan_variant(
        monkeypatch, stack, overrides, {"llmserve:apiKey": API_KEY_CANARY, "llmserve:hfToken": HF_TOKEN_CANARY}
    )
    recorded = json.dumps([r.as_json() for r in resources])
    assert API_KEY_CANARY not in recorded and HF_TOKEN_CANARY not in recorded, f"{stack}: a secret in plain text"
    secret_places = [
        (r.type, r.name, path) for r in resources for path, value in _walk(r.inputs) if value == plan_module.SECRET
    ]
    for type_, name, path in secret_places:
        assert type_ == "kubernetes:v1:Secret" and path.startswith(".stringData."), (
            f"{stack}: a secret value in {type_} {name} at {path}"
        )
    # staging and prod: the Memorystore AUTH string (the plan's mock: "offline-plan-redis-auth") is in the GCS
    # fault-tolerance Secret only, never in plain text (infra/components/gcs_redis.py).
    assert "offline-plan-redis-auth" not in recorded, f"{stack}: the Redis AUTH string in plain text"
    redis = {"llm-serve-gcs-redis"} if stack != "dev" else set()
    assert {name for _, name, _ in secret_places} == {"llm-serve-api-key", "llm-serve-hf-token", *redis}, secret_places
    rayservice = next(r for r in resources if r.type == "kubernetes:ray.io/v1:RayService").inputs
    serve_config = rayservice["spec"]["serveConfigV2"]
    assert not re.search(r"(api_key|hf_token|token)\s*:\s*\S{16,}", serve_config, re.IGNORECASE), serve_config
    for manifest in manifests_of(resources):
        for container in _containers(manifest):
            for env in container.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "value" not in env and "secretKeyRef" in env.get("valueFrom", {}), (
                        f"{stack}: {manifest['kind']} container {container['name']} sets {env['name']} literally"
                    )


def test_during_a_rotation_api_key_is_the_newest_key_and_api_keys_every_accepted_one(monkeypatch):
    """The README's and the docs' client commands send `pulumi stack output api_key` as the bearer token: during
    a rotation ("OLD,NEW") it must be the one new key, not the whole list (which gets 401). The accepted list
    goes to the Secret and to the api_keys output; all of them stay secret."""
    from pulumi.runtime import settings
    from pulumi.runtime.sync_await import _sync_await

    old_key = "old-" + API_KEY_CANARY
    plan_variant(monkeypatch, "dev", {}, {"llmserve:apiKey": f"{old_key},{API_KEY_CANARY}"})
    outputs = settings.get_root_resource().outputs
    for name in ("api_key", "api_keys"):
        assert _sync_await(outputs[name].is_secret()), f"the {name} output must be a secret"
    assert _sync_await(outputs["api_key"].future()) == API_KEY_CANARY
    assert _sync_await(outputs["api_keys"].future()) == f"{old_key},{API_KEY_CANARY}"


def test_the_scan_catches_a_literal_secret_in_a_pod_spec():
    manifest = {"kind": "Pod", "spec": {"containers": [{"name": "c", "env": [{"name": "HF_TOKEN", "value": "x"}]}]}}
    env = _containers(manifest)[0]["env"][0]
    assert SECRET_NAME.search(env["name"]) and "value" in env


@pytest.mark.parametrize("stack, overrides", [("dev", {}), ("prod", EXTERNAL)])
def test_stack_outputs_hold_no_plain_secret(monkeypatch, stack, overrides):
    from pulumi.runtime import settings
    from pulumi.runtime.sync_await import _sync_await

    plan_variant(monkeypatch, stack, overrides, {"llmserve:apiKey": API_KEY_CANARY})
    outputs = settings.get_root_resource().outputs
    assert _sync_await(outputs["api_key"].is_secret()), "the api_key output must be a secret"
    assert _sync_await(outputs["api_key"].future()) == API_KEY_CANARY
    for name, value in outputs.items():
        if name == "api_key":
            continue
        plain = value
        if hasattr(value, "future"):
            if _sync_await(value.is_secret()):
                continue
            plain = _sync_await(value.future())
        assert API_KEY_CANARY not in json.dumps(plain, default=str), f"{stack}: output {name} holds the key"
    if overrides:
        url = outputs["public_base_url"]
        assert (_sync_await(url.future()) if hasattr(url, "future") else url) == "https://api.example.com/v1"
