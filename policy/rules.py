"""The guardrails as pure functions: resource props in, violation messages out.

No `pulumi_policy` import here, so the project's unit tests run these rules on every stack's offline plan, and
`policies.py` wraps them for `pulumi preview --policy-pack policy/`. Props are the resource inputs keyed by
Pulumi schema names (camelCase), as the engine's analyzer and the offline plan's resources.json both see them.

Unknown values: under `pulumi preview`, reading a value that is not known yet raises pulumi_policy's
`UnknownValueError`, which the analyzer reports as "can't run policy during preview" instead of a verdict.
The rules therefore read values only through `Mapping.get`, indexing and iteration, never catch exceptions,
and never decide on a value they could not read.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import yaml

NODE_POOL = "gcp:container/nodePool:NodePool"
CLUSTER = "gcp:container/cluster:Cluster"
BUCKET = "gcp:storage/bucket:Bucket"
RAYSERVICE = "kubernetes:ray.io/v1:RayService"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_V1 = "kubernetes:v1:Service"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"

# The machine's number of GPU NIC networks for GPUDirect (4 for A3 High / TCPX, 8 for A3 Mega / TCPXO).
# Kept here so the pack runs without the project; tests/stacks/test_policy_rules.py checks it against infra/catalog.py.
A3_GPU_NETWORKS = {"a3-highgpu-8g": 4, "a3-megagpu-8g": 8}
GPU_TAINT_KEY = "nvidia.com/gpu"
INTERNAL_LB_ANNOTATION = ("networking.gke.io/load-balancer-type", "Internal")
INTERNAL_GATEWAY_CLASSES = ("gke-l7-rilb", "gke-l7-regional-internal-managed", "gke-l7-cross-regional-internal-managed")
RAY_NODE_LABEL = ("ray.io/is-ray-node", "yes")
AUTHENTICATED_INGRESS = "serve_app.ingress:AuthenticatedOpenAiIngress"
INGRESS_APP_BUILDER = "serve_app.apps:build_ingress_app"
OPEN = ipaddress.ip_network("0.0.0.0/0")

Rule = Callable[[str, Mapping], list]


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _items(value: Any) -> Iterable:
    return value if _is_list(value) else ()


def _dig(props: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(props, Mapping):
            return None
        props = props.get(key)
    return props


def _is_gpu_pool(props: Mapping) -> bool:
    return any(_dig(accelerator, "count") for accelerator in _items(_dig(props, "nodeConfig", "guestAccelerators")))


# --- node pools ---------------------------------------------------------------------------------------------


def gpu_pool_secure_boot(resource_type: str, props: Mapping) -> list[str]:
    """GPU node pools boot with secure boot (llmserve:gpuSecureBoot)."""
    if resource_type != NODE_POOL or not _is_gpu_pool(props):
        return []
    if _dig(props, "nodeConfig", "shieldedInstanceConfig", "enableSecureBoot") is not True:
        return [
            "GPU node pool without secure boot: set nodeConfig.shieldedInstanceConfig.enableSecureBoot=true "
            "(llmserve:gpuSecureBoot)"
        ]
    return []


def a3_pool_placement_gvnic_networks(resource_type: str, props: Mapping) -> list[str]:
    """A3 pools: compact placement (unless flex-start, which GKE never places compactly on A3), gVNIC, and
    exactly the machine's number of GPU NIC networks."""
    if resource_type != NODE_POOL:
        return []
    machine = _dig(props, "nodeConfig", "machineType")
    if machine not in A3_GPU_NETWORKS:
        return []
    problems = []
    flex_start = _dig(props, "nodeConfig", "flexStart") is True
    if not flex_start and _dig(props, "placementPolicy", "type") != "COMPACT":
        problems.append(
            f"{machine} pool without compact placement: set placementPolicy.type=COMPACT (llmserve:gpuCompactPlacement)"
        )
    if _dig(props, "nodeConfig", "gvnic", "enabled") is not True:
        problems.append(f"{machine} pool without gVNIC: set nodeConfig.gvnic.enabled=true")
    networks = list(_items(_dig(props, "networkConfig", "additionalNodeNetworkConfigs")))
    if len(networks) != A3_GPU_NETWORKS[machine]:
        problems.append(
            f"{machine} pool has {len(networks)} GPU NIC networks; the machine needs exactly "
            f"{A3_GPU_NETWORKS[machine]} (llmserve:gpuDirect)"
        )
    return problems


def gpu_pool_taint(resource_type: str, props: Mapping) -> list[str]:
    """GPU node pools carry the nvidia.com/gpu NoSchedule taint, so only GPU workloads land there."""
    if resource_type != NODE_POOL or not _is_gpu_pool(props):
        return []
    for taint in _items(_dig(props, "nodeConfig", "taints")):
        if _dig(taint, "key") == GPU_TAINT_KEY and _dig(taint, "effect") == "NO_SCHEDULE":
            return []
    return [f"GPU node pool without the {GPU_TAINT_KEY} NO_SCHEDULE taint in nodeConfig.taints"]


# --- cluster and buckets ------------------------------------------------------------------------------------


def control_plane_not_open(resource_type: str, props: Mapping) -> list[str]:
    """The control plane is never open to 0.0.0.0/0 (llmserve:masterAuthorizedNetworks)."""
    if resource_type != CLUSTER:
        return []
    authorized = _dig(props, "masterAuthorizedNetworksConfig")
    private_endpoint = _dig(props, "privateClusterConfig", "enablePrivateEndpoint") is True
    if not isinstance(authorized, Mapping):
        return (
            []
            if private_endpoint
            else ["cluster without masterAuthorizedNetworksConfig: its public endpoint accepts any address"]
        )
    problems = []
    for block in _items(authorized.get("cidrBlocks")):
        cidr = _dig(block, "cidrBlock")
        try:
            if ipaddress.ip_network(cidr, strict=False).prefixlen == 0:
                problems.append(f"control plane open to {cidr} (llmserve:masterAuthorizedNetworks)")
        except (TypeError, ValueError):
            problems.append(f"masterAuthorizedNetworksConfig.cidrBlocks has an invalid CIDR {cidr!r}")
    if authorized.get("gcpPublicCidrsAccessEnabled") is True:
        problems.append(
            "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled=true lets every Google Cloud "
            "address reach the control plane"
        )
    return problems


def no_public_bucket(resource_type: str, props: Mapping) -> list[str]:
    """Buckets use uniform bucket-level access and enforce public access prevention."""
    if resource_type != BUCKET:
        return []
    problems = []
    if props.get("uniformBucketLevelAccess") is not True:
        problems.append("bucket without uniformBucketLevelAccess=true (object ACLs could make objects public)")
    if props.get("publicAccessPrevention") != "enforced":
        problems.append('bucket without publicAccessPrevention="enforced"')
    return problems


# --- Kubernetes ---------------------------------------------------------------------------------------------


def _annotations(metadata: Any) -> Mapping:
    annotations = _dig(metadata, "annotations")
    return annotations if isinstance(annotations, Mapping) else {}


def _public_load_balancer(service: Any) -> bool:
    if _dig(service, "spec", "type") != "LoadBalancer":
        return False
    key, value = INTERNAL_LB_ANNOTATION
    return _annotations(_dig(service, "metadata")).get(key) != value


def no_plain_http_exposure(resource_type: str, props: Mapping) -> list[str]:
    """Nothing is exposed outside the cluster over plain HTTP: no public LoadBalancer Service (the Serve port
    speaks HTTP), and external Gateways listen on HTTPS only."""
    if resource_type in (SERVICE, SERVICE_V1) and _public_load_balancer(props):
        return [
            "public LoadBalancer Service: its ports are reachable from the internet without TLS; use "
            "serveExposure=external (HTTPS Gateway) or an internal load balancer"
        ]
    if resource_type == RAYSERVICE and _public_load_balancer(_dig(props, "spec", "serveService")):
        return [
            "RayService serveService is a public LoadBalancer: the Serve port (plain HTTP) would face the "
            "internet; use serveExposure=external (HTTPS Gateway)"
        ]
    if resource_type == GATEWAY and _dig(props, "spec", "gatewayClassName") not in INTERNAL_GATEWAY_CLASSES:
        plain = [
            _dig(listener, "name")
            for listener in _items(_dig(props, "spec", "listeners"))
            if _dig(listener, "protocol") != "HTTPS"
        ]
        if plain:
            return [f"external Gateway listener(s) {plain} are not HTTPS"]
    return []


# The keys on the way from a workload object to its pod specs; only these are read, so an unknown value
# elsewhere in the object (a VPC name, say) does not stop the check during preview.
_POD_SPEC_PATH_KEYS = ("spec", "template", "jobTemplate", "rayClusterConfig", "headGroupSpec", "workerGroupSpecs")
_CONTAINER_KEYS = ("containers", "initContainers", "ephemeralContainers")


def _containers(node: Any) -> Iterable[Mapping]:
    if _is_list(node):
        for item in node:
            yield from _containers(item)
    elif isinstance(node, Mapping):
        keys = set(node.keys())
        for key in _CONTAINER_KEYS:
            if key in keys:
                yield from (c for c in _items(node[key]) if isinstance(c, Mapping))
        for key in _POD_SPEC_PATH_KEYS:
            if key in keys:
                yield from _containers(node[key])


_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_problem(image: Any) -> str | None:
    if not isinstance(image, str) or not image:
        return f"container without an image: {image!r}"
    if _DIGEST.search(image):
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image} is not pinned: add a tag or a digest"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image} uses :latest: pin a version tag or a digest"
    return None


def images_pinned(resource_type: str, props: Mapping) -> list[str]:
    """Every container image (and the KubeRay chart's operator image) is pinned by tag or digest, never latest."""
    if not resource_type.startswith("kubernetes:"):
        return []
    problems = []
    if resource_type == HELM_RELEASE:
        image = _dig(props, "values", "image")
        if isinstance(image, Mapping) and "repository" in image:
            tag = image.get("tag")
            reference = f"{image.get('repository')}:{tag}" if tag else image.get("repository")
            problem = image_problem(reference)
            if problem:
                problems.append(f"Helm values: {problem}")
        return problems
    for container in _containers(props):
        problem = image_problem(container.get("image"))
        if problem:
            problems.append(f"container {container.get('name')!r}: {problem}")
    return problems


def endpoint_key_check(resource_type: str, props: Mapping) -> list[str]:
    """Every Serve application of a RayService that takes HTTP traffic is the API-key-checking ingress
    (llmserve:apiAuth). An application with `route_prefix: null` is not exposed over HTTP (the per-model
    applications and the config marker); one without a route_prefix gets Serve's default, "/"."""
    if resource_type != RAYSERVICE:
        return []
    text = _dig(props, "spec", "serveConfigV2")
    if not isinstance(text, str):
        return ["RayService without a serveConfigV2 to check"]
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        return [f"RayService serveConfigV2 is not YAML: {error}"]
    problems = []
    for application in _items(config.get("applications") if isinstance(config, Mapping) else None):
        if isinstance(application, Mapping) and "route_prefix" in application and application["route_prefix"] is None:
            continue
        ingress = _dig(application, "args", "ingress_cls")
        if _dig(application, "import_path") != INGRESS_APP_BUILDER or ingress != AUTHENTICATED_INGRESS:
            problems.append(
                f"Serve application {_dig(application, 'name')!r} has no API key check but takes HTTP traffic "
                f"(import_path {_dig(application, 'import_path')}, ingress {ingress or 'default'}; expected "
                f"{INGRESS_APP_BUILDER} with {AUTHENTICATED_INGRESS}, llmserve:apiAuth=true, or route_prefix null)"
            )
    return problems


RESOURCE_RULES: dict[str, Rule] = {
    "gpu-pool-secure-boot": gpu_pool_secure_boot,
    "a3-pool-compact-gvnic-gpu-networks": a3_pool_placement_gvnic_networks,
    "gpu-pool-gpu-taint": gpu_pool_taint,
    "control-plane-not-open": control_plane_not_open,
    "no-public-buckets": no_public_bucket,
    "no-plain-http-exposure": no_plain_http_exposure,
    "images-pinned": images_pinned,
    "endpoint-key-check": endpoint_key_check,
}


# --- whole stack ----------------------------------------------------------------------------------------------


def network_policies_present(resources: Sequence[tuple[str, Mapping]]) -> list[str]:
    """Each RayService's namespace has a NetworkPolicy that selects the Ray pods (llmserve:networkPolicies):
    without one, every pod in the cluster reaches the Ray GCS and dashboard."""
    fenced = set()
    for resource_type, props in resources:
        if resource_type != NETWORK_POLICY:
            continue
        labels = _dig(props, "spec", "podSelector", "matchLabels")
        if isinstance(labels, Mapping) and labels.get(RAY_NODE_LABEL[0]) == RAY_NODE_LABEL[1]:
            fenced.add(_dig(props, "metadata", "namespace"))
    problems = []
    for resource_type, props in resources:
        if resource_type == RAYSERVICE:
            namespace = _dig(props, "metadata", "namespace")
            if namespace not in fenced:
                problems.append(
                    f"RayService {_dig(props, 'metadata', 'name')!r} in namespace {namespace!r} has no "
                    f"NetworkPolicy selecting its Ray pods (ray.io/is-ray-node=yes)"
                )
    return problems


STACK_RULES = {"network-policies-present": network_policies_present}
