"""Stack configuration: read once, at the edge, into typed frozen objects, validated before any resource exists.

`CONFIG_KEYS` is the list of project config keys with their types, defaults and meaning; `Pulumi.yaml`
declares the same keys (a test keeps the two in step). `parse_stack_config` is pure: it takes the raw values
(strings, as the Pulumi engine hands them over) and returns a `StackConfig` or raises `ConfigError` listing
every problem at once. `load_stack_config` is the only function here that touches `pulumi.Config`.

Validation runs in two stages: first each key on its own (type, enum, format), then the rules that tie keys
together (capacity options that exclude each other, CIDR overlaps, NIC counts). The second stage only runs
when the first found nothing, so its messages never talk about half-parsed values.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from infra.catalog import GPU_SUBNET_SLOTS, MACHINE_PROFILES, RAY_LLM_IMAGE, GpuDirect, MachineProfile
from infra.errors import ConfigError
from infra.render.monitoring import NOTIFICATION_CHANNEL_KEY, THRESHOLD_RANGES, AlertThresholds, alert_thresholds
from infra.stackfiles import PROJECT
from infra.stackfiles import SECRET as OFFLINE_SECRET
from serve_app.auth import MIN_API_KEY_LENGTH, parse_api_keys
from serve_app.errors import ModelConfigError
from serve_app.spec import ModelSpec, parse_models


RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE", "EXTENDED")
RAY_CLUSTER_UPGRADES = ("NewCluster", "Recreate")
SERVE_EXPOSURES = ("cluster", "internal", "external")
GPU_DRIVER_VERSIONS = ("DEFAULT", "LATEST")
OPEN_TO_THE_INTERNET = ipaddress.ip_network("0.0.0.0/0")
# RFC 5737 documentation ranges: fine for an offline plan, useless for reaching a real control plane.
DOCUMENTATION_RANGES = tuple(
    ipaddress.ip_network(cidr) for cidr in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)


@dataclass(frozen=True)
class ConfigKey:
    """One project config key. `default=None` means the key is required.

    Pulumi.yaml can only type strings, integers, booleans and arrays of them, and a typed key without a
    default would be required by the CLI; so `object` keys (the model list) and `secret` keys (optional
    secrets) are documented in Pulumi.yaml's comments and the README instead of its `config:` block.
    """

    name: str
    type: str  # "string" | "integer" | "boolean" | "array" (of strings) | "object" (a list of objects)
    description: str
    default: Any = None
    secret: bool = False

    @property
    def declared_in_pulumi_yaml(self) -> bool:
        return self.type != "object" and not self.secret


CONFIG_KEYS: tuple[ConfigKey, ...] = (
    # --- GPU node pool -----------------------------------------------------------------------------------
    ConfigKey("gpuMachineType", "string",
              "Machine type of the GPU node pool; one of the machine profiles in infra/catalog.py "
              "(a3-highgpu-8g, a3-megagpu-8g, g2-standard-24)."),
    ConfigKey("gpuZones", "array",
              "Zones of the GPU node pool, all in gcp:region. Exactly one when gpuCompactPlacement is on."),
    ConfigKey("gpuNodeCount", "integer", "Static number of GPU nodes (used when gpuAutoscaling is false).", 2),
    ConfigKey("gpuAutoscaling", "boolean",
              "Let the GPU pool scale between gpuMinNodes and gpuMaxNodes instead of a static gpuNodeCount.",
              False),
    ConfigKey("gpuMinNodes", "integer", "Smallest GPU pool size with autoscaling; 0 scales the pool to zero.", 0),
    ConfigKey("gpuMaxNodes", "integer", "Largest GPU pool size with autoscaling.", 2),
    ConfigKey("gpuCompactPlacement", "boolean",
              "Place GPU nodes close together with a COLLOCATED resource policy (single zone only).", True),
    ConfigKey("gpuDirect", "boolean",
              "Wire GPUDirect-TCPX/TCPXO (extra GPU NICs, NCCL plugin) when the machine supports it.", True),
    ConfigKey("gpuNetworkCount", "integer",
              "Number of GPU NIC networks; 0 derives it from the machine (4 for A3 High, 8 for A3 Mega). "
              "A non-zero value must match the machine.", 0),
    ConfigKey("gpuSpot", "boolean", "Use Spot VMs for the GPU pool (cannot be combined with a reservation).",
              False),
    ConfigKey("gpuFlexStart", "boolean",
              "Use DWS flex-start VMs (autoscaling only; no reservation, no Spot, no compact placement on A3).",
              False),
    ConfigKey("gpuQueuedProvisioning", "boolean",
              "Use DWS queued provisioning (autoscaling from 0; no reservation, no Spot, no compact placement).",
              False),
    ConfigKey("gpuReservation", "string",
              "Name of a specific Compute Engine reservation to consume (optionally "
              "NAME/reservationBlocks/BLOCK); empty for none.", ""),
    ConfigKey("gpuDriverVersion", "string",
              "GKE-managed NVIDIA driver: LATEST (needed by CUDA 13 images) or DEFAULT.", "LATEST"),
    # --- cluster -----------------------------------------------------------------------------------------
    ConfigKey("regionalCluster", "boolean",
              "Regional (highly available) control plane; false makes a zonal cluster in the first GPU zone.",
              True),
    ConfigKey("systemMachineType", "string",
              "Machine type of the CPU system pool that runs the Ray head and controllers.", "e2-standard-16"),
    ConfigKey("systemNodeCount", "integer", "Number of system nodes per system-pool zone.", 1),
    ConfigKey("releaseChannel", "string", "GKE release channel: RAPID, REGULAR, STABLE or EXTENDED.", "REGULAR"),
    ConfigKey("kubernetesVersion", "string",
              "Minimum control-plane version (for example 1.33); empty takes the channel's default.", ""),
    ConfigKey("maintenanceWindowStart", "string", "Daily maintenance window start, HH:MM in UTC.", "03:00"),
    ConfigKey("nodeUpgradeFreeze", "boolean",
              "Add a NO_MINOR_OR_NODE_UPGRADES maintenance exclusion until end of support, so GPU nodes are "
              "never recreated by a surprise upgrade.", True),
    ConfigKey("nodeUpgradeFreezeStart", "string",
              "RFC 3339 start time of that exclusion.", "2026-11-01T00:00:00Z"),
    ConfigKey("deletionProtection", "boolean", "Refuse to delete the GKE cluster (turn off for throwaway stacks).",
              True),
    ConfigKey("masterAuthorizedNetworks", "array",
              "CIDRs allowed to reach the control plane; include the machine that runs `pulumi up`."),
    ConfigKey("allowOpenControlPlane", "boolean",
              "Explicit opt-out that permits 0.0.0.0/0 in masterAuthorizedNetworks.", False),
    # --- addresses ---------------------------------------------------------------------------------------
    ConfigKey("primarySubnetCidr", "string", "Node range of the primary subnet.", "10.0.0.0/20"),
    ConfigKey("podsCidr", "string", "Secondary range for pods.", "10.4.0.0/14"),
    ConfigKey("servicesCidr", "string", "Secondary range for services.", "10.0.32.0/20"),
    ConfigKey("masterCidr", "string", "The control plane's private /28.", "172.16.0.32/28"),
    ConfigKey("gpuNetworksCidr", "string",
              "Range split into 8 equal subnets, one per GPU NIC network.", "192.168.0.0/16"),
    # --- serving -----------------------------------------------------------------------------------------
    ConfigKey("models", "object",
              "The models to serve: a list of objects (keys in serve_app/spec.py KEYS and the README)."),
    ConfigKey("servingNamespace", "string", "Kubernetes namespace of the RayService and its secrets.", "llm"),
    ConfigKey("rayImage", "string",
              "Container image of the Ray head and workers; empty takes the pinned image in infra/catalog.py.",
              ""),
    ConfigKey("rayClusterUpgrade", "string",
              "How a change to the Ray cluster spec (image, resources, worker groups) is rolled out: NewCluster "
              "lets KubeRay build a second cluster and switch once it serves (zero downtime, needs the GPUs "
              "twice over); Recreate deletes and recreates the RayService (downtime of a cold start, no spare "
              "GPUs needed). Serve config changes apply in place either way.", "NewCluster"),
    ConfigKey("cpuWorkers", "integer",
              "Ray CPU worker pods on the system pool; they host the OpenAI ingress, so GPU groups can scale "
              "to zero and still be woken by a request.", 1),
    ConfigKey("serveExposure", "string",
              "Who can reach the OpenAI API: cluster (ClusterIP only), internal (an internal load balancer in "
              "the VPC) or external (a public load balancer; plain HTTP).", "cluster"),
    ConfigKey("serveSourceRanges", "array",
              "CIDRs allowed through the load balancer when serveExposure is internal or external; empty "
              "allows any source that can route to it.", []),
    ConfigKey("apiAuth", "boolean",
              "Require `Authorization: Bearer <key>` on the OpenAI API; false is refused unless "
              "serveExposure is cluster.", True),
    ConfigKey("serveReadyTimeoutMinutes", "integer",
              "How long `pulumi up` waits for the RayService to be Ready with every Serve application "
              "RUNNING (a cold start of a 700 GB model takes 20-40 minutes).", 150),
    ConfigKey("apiKey", "string",
              "The API key clients send; set with `pulumi config set --secret llmserve:apiKey ...`. Unset: a "
              "random key is generated and exported as the `api_key` secret output.", secret=True),
    ConfigKey("hfToken", "string",
              "Hugging Face token for gated models or higher rate limits; set with "
              "`pulumi config set --secret llmserve:hfToken ...`. Optional.", secret=True),
    # --- dashboard and alerts (ranges and the channel format are checked in infra/render/monitoring.py) ---
    ConfigKey("alertNotificationChannel", "string",
              "Cloud Monitoring notification channel the alert policies notify, as "
              "projects/<project-id>/notificationChannels/<id>; empty: alerts show in the console only.", ""),
    ConfigKey("alertNotReadyMinutes", "integer",
              "Minutes the RayService may be not Ready, or an always-on model without a healthy replica, "
              "before alerting (1-1440).", 10),
    ConfigKey("alertTtftP95Seconds", "integer",
              "Alert when a model's p95 time to first token over 10 minutes exceeds this many seconds (1-3600).",
              10),
    ConfigKey("alertKvCacheUsagePercent", "integer",
              "Alert when a model's KV-cache usage stays above this percentage (50-100) for "
              "alertKvCacheMinutes.", 95),
    ConfigKey("alertKvCacheMinutes", "integer",
              "Minutes the KV cache must stay above alertKvCacheUsagePercent before alerting (1-1440).", 10),
    ConfigKey("alertWedgedMinutes", "integer",
              "Alert when a model has waiting requests but generates no token for this many minutes (1-1440).", 5),
)
CONFIG_KEYS_BY_NAME = {key.name: key for key in CONFIG_KEYS}
ALERT_KEYS = (NOTIFICATION_CHANNEL_KEY, *(key for key, *_ in THRESHOLD_RANGES))
SECRET_KEY_NAMES = frozenset(key.name for key in CONFIG_KEYS if key.secret)


@dataclass(frozen=True)
class NetworkConfig:
    region: str
    primary_subnet_cidr: str
    pods_cidr: str
    services_cidr: str
    gpu_subnet_cidrs: tuple[str, ...]  # one per GPU NIC network; empty without GPUDirect


@dataclass(frozen=True)
class ClusterConfig:
    location: str  # the region for a regional cluster, else a zone
    node_zones: tuple[str, ...]
    release_channel: str
    kubernetes_version: Optional[str]
    maintenance_window_start: str
    node_upgrade_freeze_start: Optional[str]  # None: no exclusion
    deletion_protection: bool
    master_cidr: str
    master_authorized_networks: tuple[str, ...]
    system_machine_type: str
    system_node_count: int


@dataclass(frozen=True)
class GpuPoolConfig:
    machine: MachineProfile
    zones: tuple[str, ...]
    node_count: int  # static size; the initial size with autoscaling
    autoscaling: bool
    min_nodes: int
    max_nodes: int
    compact_placement: bool
    gpudirect: GpuDirect  # the flavour in effect: NONE when the machine lacks it or it is switched off
    spot: bool
    flex_start: bool
    queued_provisioning: bool
    reservation: Optional[str]
    driver_version: str

    @property
    def gpu_network_count(self) -> int:
        return self.machine.gpu_nic_count if self.gpudirect is not GpuDirect.NONE else 0

    @property
    def max_gpu_nodes(self) -> int:
        return largest_pool_size(self.autoscaling, self.node_count, self.max_nodes)


def largest_pool_size(autoscaling: bool, node_count: int, max_nodes: int) -> int:
    """The most nodes the GPU pool can ever have: its autoscaling ceiling, or its static size."""
    return max_nodes if autoscaling else node_count


@dataclass(frozen=True)
class ServingConfig:
    models: tuple[ModelSpec, ...]
    namespace: str
    ray_image: str
    ray_cluster_upgrade: str
    cpu_workers: int
    exposure: str
    source_ranges: tuple[str, ...]
    api_auth: bool
    ready_timeout_minutes: int
    # Secrets stay Pulumi outputs end to end; None when the stack does not set them.
    api_key: Optional[Any] = None
    hf_token: Optional[Any] = None


@dataclass(frozen=True)
class StackConfig:
    stack: str
    gcp_project: str
    region: str
    network: NetworkConfig
    cluster: ClusterConfig
    gpu_pool: GpuPoolConfig
    serving: ServingConfig
    warnings: tuple[str, ...] = field(default=())
    alerts: AlertThresholds = field(default=AlertThresholds())


# --- stage 1: one key at a time ---------------------------------------------------------------------------


class _Reader:
    """Turns raw config strings into typed values, collecting a message per bad key instead of stopping."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = values
        self.problems: list[str] = []

    def get(self, name: str) -> Any:
        key = CONFIG_KEYS_BY_NAME[name]
        raw = self._values.get(name)
        if raw is None:
            if key.default is None:
                self.problems.append(f"{PROJECT}:{name}: required but not set ({key.description})")
            return key.default
        try:
            return _COERCE[key.type](raw)
        except ValueError:
            self.problems.append(f"{PROJECT}:{name}: expected {_TYPE_WORDS[key.type]}; found {raw!r}")
            return key.default

    def one_of(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.get(name)
        if value is not None and value not in allowed:
            self.problems.append(f"{PROJECT}:{name}: unknown value {value!r}; allowed: {', '.join(allowed)}")
        return value

    def matching(self, name: str, check: Callable[[str], bool], what: str) -> str:
        value = self.get(name)
        if value and not check(value):
            self.problems.append(f"{PROJECT}:{name}: expected {what}; found {value!r}")
        return value

    def cidr(self, name: str) -> Optional[ipaddress.IPv4Network]:
        value = self.get(name)
        return self._parse_cidr(f"{PROJECT}:{name}", value)

    def cidr_list(self, name: str) -> list[ipaddress.IPv4Network]:
        networks = []
        for index, value in enumerate(self.get(name) or []):
            network = self._parse_cidr(f"{PROJECT}:{name}[{index}]", value)
            if network is not None:
                networks.append(network)
        return networks

    def _parse_cidr(self, where: str, value: Any) -> Optional[ipaddress.IPv4Network]:
        if value is None:
            return None
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError:
            self.problems.append(f"{where}: expected an IPv4 CIDR with no host bits set, like 10.0.0.0/20; "
                                 f"found {value!r}")
            return None
        if network.version != 4:
            self.problems.append(f"{where}: expected an IPv4 CIDR; found {value!r}")
            return None
        return network


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in ("true", "false"):
        return str(raw).lower() == "true"
    raise ValueError(raw)


def _to_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(raw)
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    if not re.fullmatch(r"-?\d+", text):
        raise ValueError(raw)
    return int(text)


def _to_str_list(raw: Any) -> list[str]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(raw)
    return value


def _to_json(raw: Any) -> Any:
    return json.loads(raw) if isinstance(raw, str) else raw


_COERCE: dict[str, Callable[[Any], Any]] = {"string": str, "integer": _to_int, "boolean": _to_bool,
                                            "array": _to_str_list, "object": _to_json}
_TYPE_WORDS = {"string": "a string", "integer": "a whole number", "boolean": "true or false",
               "array": "a list of strings", "object": "a YAML/JSON list of objects"}


def _is_hh_mm(value: str) -> bool:
    return re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value) is not None


def _is_rfc3339(value: str) -> bool:
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _is_reservation(value: str) -> bool:
    name = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
    return re.fullmatch(rf"{name}(/reservationBlocks/{name})?", value) is not None


# --- both stages -------------------------------------------------------------------------------------------


def parse_stack_config(stack: str, values: Mapping[str, Any], gcp_values: Mapping[str, Any],
                       secrets: Optional[Mapping[str, Any]] = None,
                       plain_secrets: Optional[Mapping[str, str]] = None) -> StackConfig:
    """Build the typed `StackConfig` from raw config values, or raise `ConfigError` listing every problem.

    `values` holds the project's keys without their `llmserve:` prefix; `gcp_values` the `gcp:` provider keys
    (`project`, `region`). Values may be strings (as the engine passes them) or already-typed JSON values.
    `secrets` maps the secret keys that are set to their (opaque) values, which are passed through unread;
    `plain_secrets` holds the same values in plain text for checks only (never stored, never printed).
    """
    secrets = dict(secrets or {})
    unknown = sorted(set(values) - set(CONFIG_KEYS_BY_NAME))
    read = _Reader(values)
    for name in unknown:
        read.problems.append(f"{PROJECT}:{name}: unknown config key; known keys: "
                             f"{', '.join(sorted(CONFIG_KEYS_BY_NAME))}")

    gcp_project = gcp_values.get("project")
    region = gcp_values.get("region")
    if not gcp_project:
        read.problems.append("gcp:project: required but not set; run `pulumi config set gcp:project <project-id>`")
    if not region:
        read.problems.append("gcp:region: required but not set; run `pulumi config set gcp:region us-central1` "
                             "(or the region of your GPU capacity)")

    machine_type = read.get("gpuMachineType")
    machine = MACHINE_PROFILES.get(machine_type) if machine_type is not None else None
    if machine_type is not None and machine is None:
        read.problems.append(f"{PROJECT}:gpuMachineType: unknown machine type {machine_type!r}; allowed: "
                             f"{', '.join(sorted(MACHINE_PROFILES))}")

    zones = read.get("gpuZones") or []
    node_count = read.get("gpuNodeCount")
    autoscaling = read.get("gpuAutoscaling")
    min_nodes = read.get("gpuMinNodes")
    max_nodes = read.get("gpuMaxNodes")
    compact_placement = read.get("gpuCompactPlacement")
    gpudirect_wanted = read.get("gpuDirect")
    gpu_network_count = read.get("gpuNetworkCount")
    spot = read.get("gpuSpot")
    flex_start = read.get("gpuFlexStart")
    queued = read.get("gpuQueuedProvisioning")
    reservation = read.matching("gpuReservation", _is_reservation,
                                "a reservation name, optionally NAME/reservationBlocks/BLOCK")
    driver_version = read.one_of("gpuDriverVersion", GPU_DRIVER_VERSIONS)
    regional = read.get("regionalCluster")
    system_machine_type = read.get("systemMachineType")
    system_node_count = read.get("systemNodeCount")
    release_channel = read.one_of("releaseChannel", RELEASE_CHANNELS)
    kubernetes_version = read.matching("kubernetesVersion", lambda v: re.fullmatch(r"1\.\d+(\.\d+(-gke\.\d+)?)?", v)
                                       is not None, "a GKE version like 1.33 or 1.33.5-gke.1080000")
    window_start = read.matching("maintenanceWindowStart", _is_hh_mm, "HH:MM (UTC)")
    freeze = read.get("nodeUpgradeFreeze")
    freeze_start = read.matching("nodeUpgradeFreezeStart", _is_rfc3339,
                                 "an RFC 3339 time with a zone, like 2026-11-01T00:00:00Z")
    deletion_protection = read.get("deletionProtection")
    authorized = read.cidr_list("masterAuthorizedNetworks")
    allow_open = read.get("allowOpenControlPlane")
    ranges = {name: read.cidr(name) for name in
              ("primarySubnetCidr", "podsCidr", "servicesCidr", "masterCidr", "gpuNetworksCidr")}
    raw_models = read.get("models")
    namespace = read.matching("servingNamespace", lambda v: re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", v)
                              is not None, "a Kubernetes namespace name (lowercase letters, digits, '-')")
    ray_image = read.get("rayImage")
    ray_cluster_upgrade = read.one_of("rayClusterUpgrade", RAY_CLUSTER_UPGRADES)
    cpu_workers = read.get("cpuWorkers")
    exposure = read.one_of("serveExposure", SERVE_EXPOSURES)
    source_ranges = read.cidr_list("serveSourceRanges")
    api_auth = read.get("apiAuth")
    ready_timeout = read.get("serveReadyTimeoutMinutes")
    alerts, alert_problems = alert_thresholds({name: read.get(name) for name in ALERT_KEYS}, f"{PROJECT}:")
    read.problems.extend(alert_problems)
    api_key = (plain_secrets or {}).get("apiKey")
    if api_key is not None:
        api_keys = parse_api_keys(api_key)
        short = [index for index, key in enumerate(api_keys) if len(key) < MIN_API_KEY_LENGTH]
        if short or not api_keys:
            read.problems.append(f"{PROJECT}:apiKey: every key (comma-separated) needs at least "
                                 f"{MIN_API_KEY_LENGTH} characters, or the ingress refuses to start; found "
                                 f"{'no key' if not short else f'short key(s) at position(s) {short}'}")
    for name in sorted(set(values) & SECRET_KEY_NAMES):
        read.problems.append(f"{PROJECT}:{name}: must be stored encrypted; found a plain value; set it with "
                             f"`pulumi config set --secret {PROJECT}:{name} <value>`")

    models: tuple[ModelSpec, ...] = ()
    if raw_models is not None:
        try:
            models = parse_models(raw_models, key=f"{PROJECT}:models")
        except ModelConfigError as error:
            read.problems.extend(error.problems)

    if read.problems:
        raise ConfigError(read.problems)

    # --- stage 2: rules between keys ----------------------------------------------------------------------
    problems: list[str] = []
    warnings: list[str] = []
    key = lambda name: f"{PROJECT}:{name}"  # noqa: E731 - a short local spelling for message keys

    if not zones:
        problems.append(f"{key('gpuZones')}: needs at least one zone in {region}; found []")
    for index, zone in enumerate(zones):
        if not re.fullmatch(rf"{re.escape(region)}-[a-z]", zone):
            problems.append(f"{key('gpuZones')}[{index}]: zone {zone!r} is not in gcp:region {region!r}; "
                            f"allowed: zones named {region}-<letter>")
    if len(set(zones)) != len(zones):
        problems.append(f"{key('gpuZones')}: lists a zone twice; found {zones}")
    if compact_placement and len(zones) > 1:
        problems.append(f"{key('gpuZones')}: compact placement keeps the pool in one zone; found {len(zones)} "
                        f"zones {zones}; allowed: exactly one zone, or set {key('gpuCompactPlacement')} to false")

    if autoscaling:
        if min_nodes < 0 or max_nodes < 1 or min_nodes > max_nodes:
            problems.append(f"{key('gpuMinNodes')}/{key('gpuMaxNodes')}: need 0 <= min <= max and max >= 1; "
                            f"found min={min_nodes}, max={max_nodes}")
    elif node_count < 0:
        problems.append(f"{key('gpuNodeCount')}: must be 0 or more; found {node_count}")
    if system_node_count < 1:
        problems.append(f"{key('systemNodeCount')}: the Ray head and controllers need at least 1 node; "
                        f"found {system_node_count}")

    capacity = {"gpuSpot": spot, "gpuFlexStart": flex_start, "gpuQueuedProvisioning": queued}
    chosen = [name for name, on in capacity.items() if on]
    if len(chosen) > 1:
        problems.append(f"{' and '.join(key(name) for name in chosen)}: these provisioning modes exclude each "
                        f"other; allowed: at most one of {', '.join(key(name) for name in capacity)}")
    if reservation:
        for name in chosen:
            problems.append(f"{key(name)}: cannot be combined with {key('gpuReservation')}={reservation!r}; "
                            f"a reservation is consumed by on-demand VMs only; allowed: {key(name)}=false or "
                            f"an empty {key('gpuReservation')}")
    if (flex_start or queued) and not autoscaling:
        mode = key("gpuFlexStart") if flex_start else key("gpuQueuedProvisioning")
        problems.append(f"{mode}: needs {key('gpuAutoscaling')}=true (the pool scales up from zero when capacity "
                        f"is granted); found {key('gpuAutoscaling')}=false")
    if queued and autoscaling and min_nodes != 0:
        problems.append(f"{key('gpuQueuedProvisioning')}: needs {key('gpuMinNodes')}=0; found {min_nodes}")
    if (flex_start or queued) and compact_placement and machine is not None \
            and not machine.compact_placement_with_dws:
        mode = key("gpuFlexStart") if flex_start else key("gpuQueuedProvisioning")
        problems.append(f"{mode}: GKE does not support compact placement with flex-start or queued provisioning "
                        f"on {machine.machine_type}; found {key('gpuCompactPlacement')}=true; allowed: turn one "
                        f"of them off")

    gpudirect = machine.gpudirect if (machine is not None and gpudirect_wanted) else GpuDirect.NONE
    needed_nics = machine.gpu_nic_count if gpudirect is not GpuDirect.NONE else 0
    if gpu_network_count and gpu_network_count != needed_nics:
        why = (f"{machine.machine_type} with GPUDirect-{gpudirect.value.upper()} uses {needed_nics} GPU NICs"
               if needed_nics else f"{machine_type} uses no GPU NIC networks here (gpuDirect off or unsupported)")
        problems.append(f"{key('gpuNetworkCount')}: {why}; found {gpu_network_count}; allowed: {needed_nics}, "
                        f"or 0 to derive it from the machine")

    problems += _check_ranges(ranges, key)

    for network in authorized:
        if network == OPEN_TO_THE_INTERNET and not allow_open:
            problems.append(f"{key('masterAuthorizedNetworks')}: 0.0.0.0/0 opens the control plane to the whole "
                            f"internet; allowed: specific CIDRs (the machine running `pulumi up`), or set "
                            f"{key('allowOpenControlPlane')}=true to accept the risk")
        if any(network.subnet_of(doc) for doc in DOCUMENTATION_RANGES):
            warnings.append(f"{key('masterAuthorizedNetworks')}: {network} is a documentation range (RFC 5737); "
                            f"replace it with the CIDR of the machine that runs `pulumi up`, or the Kubernetes "
                            f"objects cannot be applied")
    if not authorized:
        problems.append(f"{key('masterAuthorizedNetworks')}: needs at least one CIDR (the machine that runs "
                        f"`pulumi up` must reach the control plane); found []")

    if machine is not None:
        problems += serving_problems(models, machine, largest_pool_size(autoscaling, node_count, max_nodes))
    if not api_auth and exposure != "cluster":
        problems.append(f"{key('apiAuth')}: false with {key('serveExposure')}={exposure!r} would put an open "
                        f"model endpoint on a load balancer; allowed: apiAuth=true, or serveExposure=cluster")
    if cpu_workers < 1 and any(model.min_replicas == 0 for model in models):
        problems.append(f"{key('cpuWorkers')}: a model that scales to zero needs a CPU worker for the ingress "
                        f"that wakes it; found {cpu_workers}; allowed: 1 or more")
    if cpu_workers < 0:
        problems.append(f"{key('cpuWorkers')}: must be 0 or more; found {cpu_workers}")
    if ready_timeout < 1:
        problems.append(f"{key('serveReadyTimeoutMinutes')}: must be 1 or more; found {ready_timeout}")

    if problems:
        raise ConfigError(problems)

    if spot and machine is not None and (node_count > 1 or (autoscaling and max_nodes > 1)):
        warnings.append(f"{key('gpuSpot')}: a preempted Spot node takes down every model replica that spans it")
    if reservation and compact_placement and gpudirect is GpuDirect.TCPXO:
        warnings.append(f"{key('gpuCompactPlacement')}: A3 Mega pool creation has been reported to fail when a "
                        f"placement policy is added on top of a dense specific reservation; if it does, set it "
                        f"to false")
    if exposure == "external":
        warnings.append(f"{key('serveExposure')}: external serves plain HTTP on a public address; the API key "
                        f"travels unencrypted. Put a TLS-terminating gateway in front for production")
    if exposure != "cluster" and not source_ranges:
        warnings.append(f"{key('serveSourceRanges')}: empty, so the {exposure} load balancer accepts any source")
    if not api_auth:
        warnings.append(f"{key('apiAuth')}: false; anyone who can reach the cluster-internal service can use "
                        f"the models")
    if machine is not None and machine.gpudirect is not GpuDirect.NONE and not gpudirect_wanted:
        warnings.append(f"{key('gpuDirect')}: off on {machine.machine_type}; cross-node NCCL traffic uses eth0 only")

    gpu_cidr = ranges["gpuNetworksCidr"]
    slots = list(gpu_cidr.subnets(prefixlen_diff=3))[:GPU_SUBNET_SLOTS]
    return StackConfig(
        stack=stack,
        gcp_project=gcp_project,
        region=region,
        network=NetworkConfig(
            region=region,
            primary_subnet_cidr=str(ranges["primarySubnetCidr"]),
            pods_cidr=str(ranges["podsCidr"]),
            services_cidr=str(ranges["servicesCidr"]),
            gpu_subnet_cidrs=tuple(str(slot) for slot in slots[:needed_nics]),
        ),
        cluster=ClusterConfig(
            location=region if regional else zones[0],
            node_zones=tuple(zones),
            release_channel=release_channel,
            kubernetes_version=kubernetes_version or None,
            maintenance_window_start=window_start,
            node_upgrade_freeze_start=freeze_start if freeze else None,
            deletion_protection=deletion_protection,
            master_cidr=str(ranges["masterCidr"]),
            master_authorized_networks=tuple(str(network) for network in authorized),
            system_machine_type=system_machine_type,
            system_node_count=system_node_count,
        ),
        gpu_pool=GpuPoolConfig(
            machine=machine,
            zones=tuple(zones),
            node_count=node_count,
            autoscaling=autoscaling,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            compact_placement=compact_placement,
            gpudirect=gpudirect,
            spot=spot,
            flex_start=flex_start,
            queued_provisioning=queued,
            reservation=reservation or None,
            driver_version=driver_version,
        ),
        serving=ServingConfig(
            models=models,
            namespace=namespace,
            ray_image=ray_image or RAY_LLM_IMAGE,
            ray_cluster_upgrade=ray_cluster_upgrade,
            cpu_workers=cpu_workers,
            exposure=exposure,
            source_ranges=tuple(str(network) for network in source_ranges),
            api_auth=api_auth,
            ready_timeout_minutes=ready_timeout,
            api_key=secrets.get("apiKey"),
            hf_token=secrets.get("hfToken"),
        ),
        warnings=tuple(warnings),
        alerts=alerts,
    )


def serving_problems(models: tuple[ModelSpec, ...], machine: MachineProfile, max_gpu_nodes: int) -> list[str]:
    """Rules between the models and the GPU pool they run on."""
    problems = []
    per_node = machine.gpu_count
    pool_gpus = per_node * max_gpu_nodes
    for index, model in enumerate(models):
        where = f"{PROJECT}:models[{index}]"
        if model.accelerator_type != machine.ray_accelerator:
            problems.append(f"{where}.acceleratorType: {model.accelerator_type!r} does not match the GPU pool's "
                            f"{machine.gke_accelerator} ({machine.machine_type}); allowed: "
                            f"{machine.ray_accelerator!r}")
        gpus = model.gpus_per_replica
        if gpus % per_node and per_node % gpus:
            problems.append(f"{where}: tensorParallelSize x pipelineParallelSize = {gpus} GPUs does not fill "
                            f"whole {machine.machine_type} nodes ({per_node} GPUs each); allowed: a multiple of "
                            f"{per_node}, or a divisor of it so that replicas share a node evenly")
        elif gpus * max(model.min_replicas, 1) > pool_gpus:
            problems.append(f"{where}: needs {gpus * max(model.min_replicas, 1)} GPUs "
                            f"({max(model.min_replicas, 1)} x {gpus}) but the GPU pool can never have more than "
                            f"{pool_gpus} ({max_gpu_nodes} x {per_node}); allowed: raise gpuNodeCount/gpuMaxNodes "
                            f"or shrink the model")
    needed = sum(model.gpus_per_replica * model.min_replicas for model in models)
    if needed > pool_gpus and not problems:
        problems.append(f"{PROJECT}:models: the minimum replicas need {needed} GPUs together but the GPU pool can "
                        f"never have more than {pool_gpus}; allowed: lower minReplicas or grow the pool")
    return problems


def _check_ranges(ranges: Mapping[str, ipaddress.IPv4Network], key: Callable[[str], str]) -> list[str]:
    problems = []
    master = ranges["masterCidr"]
    if master.prefixlen != 28:
        problems.append(f"{key('masterCidr')}: GKE needs a /28 for the control plane; found {master}")
    gpu = ranges["gpuNetworksCidr"]
    if gpu.prefixlen > 29 - 3:
        problems.append(f"{key('gpuNetworksCidr')}: too small to split into {GPU_SUBNET_SLOTS} GPU subnets; "
                        f"found {gpu}; allowed: /26 or larger (/16 recommended)")
    names = list(ranges)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if ranges[first].overlaps(ranges[second]):
                problems.append(f"{key(first)} and {key(second)}: ranges overlap; found {ranges[first]} and "
                                f"{ranges[second]}; allowed: disjoint ranges")
    return problems


def load_stack_config() -> StackConfig:
    """Read the current stack's config through `pulumi.Config`, once. The only place that does."""
    import pulumi

    project_config = pulumi.Config(PROJECT)
    gcp_config = pulumi.Config("gcp")
    names = (set(CONFIG_KEYS_BY_NAME) | _project_keys_set()) - SECRET_KEY_NAMES
    values = {name: project_config.get(name) for name in sorted(names)}
    values = {name: value for name, value in values.items() if value is not None}
    secrets = {name: project_config.get_secret(name) for name in sorted(SECRET_KEY_NAMES)}
    secrets = {name: value for name, value in secrets.items() if value is not None}
    # The runtime's own reader returns a secret's text without the "use get_secret" warning; it is used
    # for checks only and never leaves parse_stack_config. The offline plan cannot decrypt secrets and
    # passes a placeholder, which is not checked.
    from pulumi.runtime.config import get_config

    plain = {name: get_config(f"{PROJECT}:{name}") for name in secrets}
    gcp_values = {"project": gcp_config.get("project"), "region": gcp_config.get("region")}
    return parse_stack_config(pulumi.get_stack(), values, gcp_values, secrets,
                              {name: value for name, value in plain.items()
                               if isinstance(value, str) and value != OFFLINE_SECRET})


def _project_keys_set() -> set[str]:
    """Every `llmserve:` key the stack sets, so that a misspelt key is reported instead of silently ignored.

    `pulumi.Config` cannot list keys; the runtime's config map can (set by the engine or `set_all_config`).
    """
    from pulumi.runtime import config as runtime_config

    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{PROJECT}:"
    return {name[len(prefix):] for name in everything if name.startswith(prefix)}
