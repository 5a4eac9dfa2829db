"""Who may reach the serving pods, as plain Kubernetes objects: NetworkPolicies and the HTTPS Gateway.

Pure: the functions take typed settings and return dicts; `infra/components/exposure.py` and `LlmService` turn them
into resources. On GKE with Dataplane V2, NetworkPolicy is always enforced, but every pod accepts everything
until a policy selects it. Once a policy selects a pod, only what some policy allows gets in (policies add up),
so each policy here states one allowed path:

- `<name>-ray-internal`: Ray pods of the cluster talk to each other on any port (GCS 6379, client 10001,
  dashboard 8265, object manager, node manager and worker ports, which Ray picks at random);
- `<name>-ray-operator`: the KubeRay operator reaches the head's dashboard port (8265), through which it
  deploys serveConfigV2 and reads the Serve application status, and the head's Serve port (8000), where it
  asks the proxy's `/-/healthz` to set the head's `ray.io/serve` label (KubeRay's RayHttpProxyClient);
- `<name>-ray-metrics`: Managed Prometheus collectors (namespace gmp-system) scrape the metrics ports;
- `<name>-serve-ingress`: the Serve port (8000) from the serving namespace, the namespaces listed in
  `serveClientNamespaces`, and the exposure's own path: the internal load balancer's clients, or the Google
  front ends of the HTTPS Gateway (130.211.0.0/22 and 35.191.0.0/16, which also carry its health checks).

Kubelet probes and `kubectl port-forward` come from the node itself, which NetworkPolicy never blocks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra.catalog import KUBERAY_OPERATOR_SELECTOR, PART_OF_LABEL, RAY_NODE_SELECTOR
from infra.render.rayservice import DASHBOARD_PORT, HEAD_PORTS, SERVE_PORT, RayServiceSettings

if TYPE_CHECKING:  # the names' type only: rendering runs without Pulumi
    import pulumi

NETWORK_POLICY_API = "networking.k8s.io/v1"
GATEWAY_API = "gateway.networking.k8s.io/v1"
GKE_NETWORKING_API = "networking.gke.io/v1"
# GKE's global external Application Load Balancer (Envoy-based), the class that takes Certificate Manager maps.
GATEWAY_CLASS = "gke-l7-global-external-managed"
CERTMAP_ANNOTATION = "networking.gke.io/certmap"
# Source ranges of Google's front ends and health checkers for external Application Load Balancers.
GOOGLE_FRONT_END_RANGES = ("130.211.0.0/22", "35.191.0.0/16")
MANAGED_PROMETHEUS_NAMESPACE = "gmp-system"
RAY_HEAD_SELECTOR = {**RAY_NODE_SELECTOR, "ray.io/node-type": "head"}
METRICS_PORT_NAMES = ("metrics", "as-metrics", "dash-metrics")
HTTPS_PORT = 443
# LLM replies stream for minutes; the load balancer's 30 s default backend timeout would cut them off.
BACKEND_TIMEOUT_SECONDS = 3600
# When a pod leaves the load balancer (its Serve proxy drains, it turns not-ready, it is deleted), GKE's
# default drain of 0 s cuts the streams it is still sending. Draining lets them finish for up to this long
# while no new request reaches the pod: as long as the backend timeout allows a stream to run, within the
# API's maximum of 3600 s (GoogleCloudPlatform/gke-gateway-api apis/networking/v1/gcpbackendpolicy_types.go,
# ConnectionDraining.DrainingTimeoutSec; https://cloud.google.com/load-balancing/docs/enabling-connection-draining).
# A drain outlives the pod only if the pod keeps running: a deleted pod still stops at its grace period.
CONNECTION_DRAINING_SECONDS = min(BACKEND_TIMEOUT_SECONDS, 3600)
SERVE_HEALTH_PATH = "/-/healthz"  # Ray Serve's proxy health endpoint, exempt from the API key check


@dataclass(frozen=True)
class ExposureSettings:
    """What the policies and the Gateway depend on; built from the validated stack config."""

    serving: RayServiceSettings
    operator_namespace: str
    pods_cidr: str
    client_namespaces: tuple[str, ...] = ()
    hostname: str | None = None  # set exactly when serving.exposure == "external"


def _namespace_selector(namespace: str) -> dict:
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}


def _tcp(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _policy(settings: ExposureSettings, suffix: str, selector: dict, ingress: list[dict]) -> dict:
    return {
        "apiVersion": NETWORK_POLICY_API,
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{settings.serving.name}-{suffix}",
            "namespace": settings.serving.namespace,
            "labels": dict(PART_OF_LABEL),
        },
        "spec": {"podSelector": {"matchLabels": dict(selector)}, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def serve_ingress_sources(settings: ExposureSettings) -> list[dict]:
    """The `from` peers of the Serve port."""
    peers: list[dict] = [{"podSelector": {}}]  # every pod of the serving namespace
    peers += [{"namespaceSelector": _namespace_selector(namespace)} for namespace in settings.client_namespaces]
    exposure = settings.serving.exposure
    if exposure == "internal":
        peers += source_ranges_for_internal(settings.serving.source_ranges, settings.pods_cidr)
    elif exposure == "external":
        peers += [{"ipBlock": {"cidr": cidr}} for cidr in GOOGLE_FRONT_END_RANGES]
    return peers


def render_network_policies(settings: ExposureSettings) -> list[dict]:
    metrics_ports = [port for name, port in HEAD_PORTS if name in METRICS_PORT_NAMES]
    return [
        _policy(
            settings,
            "ray-internal",
            RAY_NODE_SELECTOR,
            [{"from": [{"podSelector": {"matchLabels": dict(RAY_NODE_SELECTOR)}}]}],
        ),
        _policy(
            settings,
            "ray-operator",
            RAY_HEAD_SELECTOR,
            [
                {
                    "from": [
                        {
                            "namespaceSelector": _namespace_selector(settings.operator_namespace),
                            "podSelector": {"matchLabels": dict(KUBERAY_OPERATOR_SELECTOR)},
                        }
                    ],
                    "ports": _tcp(DASHBOARD_PORT, SERVE_PORT),
                }
            ],
        ),
        _policy(
            settings,
            "ray-metrics",
            RAY_NODE_SELECTOR,
            [
                {
                    "from": [{"namespaceSelector": _namespace_selector(MANAGED_PROMETHEUS_NAMESPACE)}],
                    "ports": _tcp(*metrics_ports),
                }
            ],
        ),
        _policy(
            settings,
            "serve-ingress",
            RAY_NODE_SELECTOR,
            [{"from": serve_ingress_sources(settings), "ports": _tcp(SERVE_PORT)}],
        ),
    ]


def gateway_name(settings: ExposureSettings) -> str:
    return f"{settings.serving.name}-gateway"


def render_gateway_objects(
    settings: ExposureSettings, certificate_map: pulumi.Input[str], address_name: pulumi.Input[str]
) -> list[dict]:
    """The HTTPS-only Gateway, its route to KubeRay's serve Service, and the GKE policies for that Service.
    `certificate_map` and `address_name` may be Pulumi outputs."""
    if settings.hostname is None:
        raise ValueError("render_gateway_objects needs settings.hostname (serveExposure=external)")
    return [
        _gateway(settings, settings.hostname, certificate_map, address_name),
        _openai_route(settings, settings.hostname),
        _serve_health_check_policy(settings),
        _serve_backend_policy(settings),
    ]


def _gateway_metadata(settings: ExposureSettings, name: str, **extra: Any) -> dict:
    return {"name": name, "namespace": settings.serving.namespace, "labels": dict(PART_OF_LABEL), **extra}


def _serve_service_ref(settings: ExposureSettings) -> dict:
    return {"group": "", "kind": "Service", "name": settings.serving.serve_service}


def _gateway(
    settings: ExposureSettings, hostname: str, certificate_map: pulumi.Input[str], address_name: pulumi.Input[str]
) -> dict:
    """A single HTTPS listener: there is no port 80 to send an API key to in clear text. The certificate comes
    from a Certificate Manager map (annotation), which GKE does not allow together with `tls.certificateRefs`,
    so the listener has no `tls` block."""
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": _gateway_metadata(
            settings, gateway_name(settings), annotations={CERTMAP_ANNOTATION: certificate_map}
        ),
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [
                {
                    "name": "https",
                    "protocol": "HTTPS",
                    "port": HTTPS_PORT,
                    "hostname": hostname,
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
            "addresses": [{"type": "NamedAddress", "value": address_name}],
        },
    }


def _openai_route(settings: ExposureSettings, hostname: str) -> dict:
    """Every path of the hostname goes to the Serve port of KubeRay's serve Service."""
    serving = settings.serving
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": _gateway_metadata(settings, f"{serving.name}-openai"),
        "spec": {
            "parentRefs": [{"name": gateway_name(settings), "sectionName": "https"}],
            "hostnames": [hostname],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": serving.serve_service, "port": SERVE_PORT}],
                }
            ],
        },
    }


def _serve_health_check_policy(settings: ExposureSettings) -> dict:
    """The load balancer checks Serve's proxy health endpoint, which answers without an API key."""
    return {
        "apiVersion": GKE_NETWORKING_API,
        "kind": "HealthCheckPolicy",
        "metadata": _gateway_metadata(settings, f"{settings.serving.name}-serve-health"),
        "spec": {
            "default": {
                "config": {
                    "type": "HTTP",
                    "httpHealthCheck": {
                        "portSpecification": "USE_FIXED_PORT",
                        "port": SERVE_PORT,
                        "requestPath": SERVE_HEALTH_PATH,
                    },
                }
            },
            "targetRef": _serve_service_ref(settings),
        },
    }


def _serve_backend_policy(settings: ExposureSettings) -> dict:
    """A backend timeout long enough for a streamed reply, and a drain that lets replies in flight finish."""
    return {
        "apiVersion": GKE_NETWORKING_API,
        "kind": "GCPBackendPolicy",
        "metadata": _gateway_metadata(settings, f"{settings.serving.name}-serve-backend"),
        "spec": {
            "default": {
                "timeoutSec": BACKEND_TIMEOUT_SECONDS,
                "connectionDraining": {"drainingTimeoutSec": CONNECTION_DRAINING_SECONDS},
            },
            "targetRef": _serve_service_ref(settings),
        },
    }


def public_base_url(hostname: str) -> str:
    return f"https://{hostname}/v1"


def source_ranges_for_internal(source_ranges: tuple[str, ...], pods_cidr: str) -> list[dict]:
    """NetworkPolicy ipBlocks for clients of an internal load balancer: its source ranges (everything when
    none are set), minus the pod range, so that pods still need their namespace to be allowed."""
    pods = ipaddress.IPv4Network(pods_cidr)
    blocks = []
    for cidr in source_ranges or ("0.0.0.0/0",):
        network = ipaddress.IPv4Network(cidr)
        block: dict[str, Any] = {"cidr": cidr}
        if pods != network and pods.subnet_of(network):
            block["except"] = [pods_cidr]
        if not network.subnet_of(pods):
            blocks.append({"ipBlock": block})
    return blocks
