"""Stack configuration: read once, at the edge, into typed frozen objects, validated before any resource exists.

`CONFIG_KEYS` is the list of project config keys with their types, defaults and meaning; `Pulumi.yaml`
declares the same keys (a test keeps the two in step). `parse_stack_config` is pure: it takes the raw values
(strings, as the Pulumi engine hands them over) and returns a `StackConfig` or raises `ConfigError` listing
every problem at once. `load_stack_config` is the only function here that touches `pulumi.Config`.

One reader per section (GPU pool, network, cluster, serving) turns its keys into its frozen settings: first
each key on its own (type, range, format; `infra/config/values.py`), then the rules between its keys, each
run only when the values it depends on were read cleanly. A section with a bad value returns None, and the
sections and rules that depend on it are skipped, so every problem is reported once, by the key that holds
it: `gpuNodeCount: -1` says "out of range" and nothing about how many GPUs a pool of -1 nodes has.
Google Cloud's naming rules live in `infra/config/gcp_rules.py`.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

from infra.config import gcp_rules
from infra.planning.capacity import capacity_findings
from infra.catalog import GPU_SUBNET_SLOTS, MACHINE_PROFILES, RAY_LLM_IMAGE, GpuDirect, MachineProfile
from configkit import ConfigKey, Range, closest, did_you_mean, shown
from infra.config.values import ValueReader
from infra.config.errors import ConfigError
from infra.config.alerts import NOTIFICATION_CHANNEL_KEY, THRESHOLD_RANGES, AlertThresholds, alert_thresholds
from infra.config.secure import (HOST_MAINTENANCE_INTERVALS, QUEUED_PROVISIONING_REFUSAL, SecureSettings,
                                 read_secure_settings, secure_problems, secure_warnings)
from infra.config.stackfiles import CONFIG_NAMESPACES, PROJECT
from infra.config.stackfiles import SECRET as OFFLINE_SECRET
from infra.config.weights import STACK_WEIGHT_SOURCES, WeightsConfig, read_weight_keys, resolve_weights
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


def declared_in_pulumi_yaml(key: ConfigKey) -> bool:
    """Whether Pulumi.yaml's `config:` block declares `key`.

    Pulumi.yaml can only type strings, integers, booleans and arrays of them, and a typed key without a
    default would be required by the CLI; so `object` keys (the model list) and `secret` keys (optional
    secrets) are documented in Pulumi.yaml's comments and the reference instead of its `config:` block.
    """
    return key.type in ("string", "integer", "boolean", "array") and not key.secret


# Ranges of the integer keys, with the reason for a bound that is not obvious. Every integer key has one (a test
# checks that a new key gets one), so a huge or negative value is refused here rather than by Google's API or a
# Go duration overflow.
_NODES_PER_POOL_ZONE = "GKE allows at most 1000 nodes per node pool and zone"
_NODES = Range(0, 1000, why=_NODES_PER_POOL_ZONE)
_A_WEEK = Range(1, 10080, why="at most a week")
_ALERT_RANGES = {key: Range(lowest, highest) for key, _, lowest, highest in THRESHOLD_RANGES}

CONFIG_KEYS: tuple[ConfigKey, ...] = (
    # --- GPU node pool -----------------------------------------------------------------------------------
    ConfigKey("gpuMachineType", "string",
              "Machine type of the GPU node pool; one of the machine profiles in infra/catalog.py "
              "(a3-highgpu-8g, a3-megagpu-8g, g2-standard-24).", required=True),
    ConfigKey("gpuZones", "array",
              "Zones of the GPU node pool, all in gcp:region. Exactly one when gpuCompactPlacement is on.",
              required=True),
    ConfigKey("gpuNodeCount", "integer", "Static number of GPU nodes (used when gpuAutoscaling is false).", 2,
              range=_NODES),
    ConfigKey("gpuAutoscaling", "boolean",
              "Let the GPU pool scale between gpuMinNodes and gpuMaxNodes instead of a static gpuNodeCount.",
              False),
    ConfigKey("gpuMinNodes", "integer", "Smallest GPU pool size with autoscaling; 0 scales the pool to zero.", 0,
              range=_NODES),
    ConfigKey("gpuMaxNodes", "integer", "Largest GPU pool size with autoscaling.", 2, range=_NODES),
    ConfigKey("gpuCompactPlacement", "boolean",
              "Place GPU nodes close together with a COLLOCATED resource policy (single zone only).", True),
    ConfigKey("gpuDirect", "boolean",
              "Wire GPUDirect-TCPX/TCPXO (extra GPU NICs, NCCL plugin) when the machine supports it.", True),
    ConfigKey("gpuNetworkCount", "integer",
              "Number of GPU NIC networks; 0 derives it from the machine (4 for A3 High, 8 for A3 Mega). "
              "A non-zero value must match the machine.", 0,
              range=Range(0, GPU_SUBNET_SLOTS, why="0 derives it from the machine")),
    ConfigKey("gpuSpot", "boolean", "Use Spot VMs for the GPU pool (cannot be combined with a reservation).",
              False),
    ConfigKey("gpuFlexStart", "boolean",
              "Use DWS flex-start VMs (autoscaling only; no reservation, no Spot, no compact placement on A3).",
              False),
    ConfigKey("gpuQueuedProvisioning", "boolean",
              "DWS queued provisioning: refused (true is a config error), because only a ProvisioningRequest "
              "fills such a pool and the Ray autoscaler's workers cannot use one; use gpuFlexStart.",
              False),
    ConfigKey("gpuReservation", "string",
              "Name of a specific Compute Engine reservation to consume (optionally "
              "NAME/reservationBlocks/BLOCK); empty for none.", ""),
    ConfigKey("gpuDriverVersion", "string",
              "GKE-managed NVIDIA driver: LATEST (needed by CUDA 13 images) or DEFAULT.", "LATEST",
              choices=GPU_DRIVER_VERSIONS),
    # --- cluster -----------------------------------------------------------------------------------------
    ConfigKey("regionalCluster", "boolean",
              "Regional (highly available) control plane; false makes a zonal cluster in the first GPU zone.",
              True),
    ConfigKey("systemMachineType", "string",
              "Machine type of the CPU system pool that runs the Ray head and controllers.", "e2-standard-16"),
    ConfigKey("systemNodeCount", "integer", "Number of system nodes per system-pool zone.", 1,
              range=Range(1, 1000, why="the Ray head and controllers need at least 1 node; " + _NODES_PER_POOL_ZONE)),
    ConfigKey("releaseChannel", "string", "GKE release channel: RAPID, REGULAR, STABLE or EXTENDED.", "REGULAR",
              choices=RELEASE_CHANNELS),
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
              "CIDRs allowed to reach the control plane; include the machine that runs `pulumi up`.", required=True),
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
              "The models to serve: a list of objects (keys in serve_app/spec.py KEYS and the README).",
              required=True),
    ConfigKey("servingNamespace", "string", "Kubernetes namespace of the RayService and its secrets.", "llm"),
    ConfigKey("rayImage", "string",
              "Container image of the Ray head and workers; empty takes the pinned image in infra/catalog.py.",
              ""),
    ConfigKey("rayClusterUpgrade", "string",
              "How a change to the Ray cluster spec (image, resources, worker groups) is rolled out: NewCluster "
              "lets KubeRay build a second cluster and switch once it serves (zero downtime, needs the GPUs "
              "twice over); Recreate deletes and recreates the RayService (downtime of a cold start, no spare "
              "GPUs needed). Serve config changes apply in place either way.", "NewCluster",
              choices=RAY_CLUSTER_UPGRADES),
    ConfigKey("cpuWorkers", "integer",
              "Ray CPU worker pods on the system pool; they host the OpenAI ingress, so GPU groups can scale "
              "to zero and still be woken by a request.", 1, range=Range(0, 1000)),
    ConfigKey("serveExposure", "string",
              "Who can reach the OpenAI API: cluster (ClusterIP only), internal (an internal load balancer in "
              "the VPC; plain HTTP, needs serveAllowPlainHttp) or external (HTTPS through a GKE Gateway with a "
              "Google-managed certificate for serveHostname).", "cluster", choices=SERVE_EXPOSURES),
    ConfigKey("serveSourceRanges", "array",
              "CIDRs allowed through the internal load balancer when serveExposure is internal; empty "
              "allows any source that can route to it. Not supported with external (HTTPS Gateway).", []),
    ConfigKey("apiAuth", "boolean",
              "Require `Authorization: Bearer <key>` on the OpenAI API; false is refused unless "
              "serveExposure is cluster.", True),
    ConfigKey("serveReadyTimeoutMinutes", "integer",
              "How long `pulumi up` waits for the RayService to be Ready with every Serve application "
              "RUNNING (a cold start of DeepSeek-R1 takes about 7.5-20 minutes from the model store, up to 41 "
              "from the Hub; see capacity.json).", 150, range=_A_WEEK),
    ConfigKey("apiKey", "string",
              "The API key clients send; set with `pulumi config set --secret llmserve:apiKey ...`. Unset: a "
              "random key is generated and exported as the `api_key` secret output.", secret=True),
    ConfigKey("hfToken", "string",
              "Hugging Face token for gated models or higher rate limits; set with "
              "`pulumi config set --secret llmserve:hfToken ...`. Optional.", secret=True),
    # --- secure defaults and capacity settings (infra/config/secure.py) -------------------------------------------
    ConfigKey("gpuSecureBoot", "boolean",
              "Secure boot on GPU nodes (verified boot chain; GKE's NVIDIA drivers and the GPUDirect installers "
              "load signed modules). false is an opt-out for custom unsigned kernel modules.", True),
    ConfigKey("gpuHostMaintenanceInterval", "string",
              "Host maintenance interval of GPU nodes: empty leaves it to GKE (as Google's A3 blueprints do); "
              "PERIODIC or AS_NEEDED only when Google Cloud asks for it, since a pool that sets it may not match a "
              "reservation created without it.", "", choices=HOST_MAINTENANCE_INTERVALS),
    ConfigKey("networkPolicies", "boolean",
              "NetworkPolicies that let only the Ray cluster's own pods reach the Ray ports (plus the KubeRay "
              "operator on the head's dashboard and Serve proxy, and Managed Prometheus on the metrics ports) and "
              "only the ingress path reach the Serve port. false removes them.", True),
    ConfigKey("serveClientNamespaces", "array",
              "Namespaces whose pods may call the OpenAI API (Serve port 8000) inside the cluster, besides the "
              "serving namespace itself.", []),
    ConfigKey("serveHostname", "string",
              "DNS name of the public HTTPS endpoint when serveExposure is external (a Google-managed certificate "
              "is issued for it); empty otherwise.", ""),
    ConfigKey("serveAllowPlainHttp", "boolean",
              "Accept plain HTTP on the internal load balancer (serveExposure=internal); external exposure is "
              "always HTTPS.", False),
    # --- model weights (infra/config/weights.py) ----------------------------------------------------------------
    ConfigKey("weightSource", "string",
              "Default weight source of models that set none: auto (gcsfuse for the 690 GB class, models with "
              "the deepseek-r1 preset; huggingface for the rest), gcsfuse (staged once into the model store, "
              "mounted on every GPU worker), runai-streamer (streamed from the store into GPU memory) or "
              "huggingface (each node downloads at every start).", "auto", choices=STACK_WEIGHT_SOURCES),
    ConfigKey("modelStoreBucket", "string",
              "GCS bucket of the model store, created when a model uses gcsfuse or runai-streamer; empty "
              "derives <gcp project>-<stack>-models.", ""),
    ConfigKey("modelStoreLocation", "string",
              "Location of the model store; must be gcp:region (the GPU pool's region). Empty takes gcp:region.",
              ""),
    ConfigKey("modelStoreForceDestroy", "boolean",
              "Let `pulumi destroy` delete the model store with its staged weights; refused while "
              "deletionProtection is true.", False),
    ConfigKey("rayImageHasRunaiStreamer", "boolean",
              "Declare that rayImage contains runai-model-streamer[gcs]; required by weightSource "
              "runai-streamer (the pinned Ray image is not known to contain it).", False),
    ConfigKey("stagingTimeoutMinutes", "integer",
              "How long `pulumi up` waits for the in-cluster staging Job of a model (690 GB takes roughly "
              "10-30 minutes in-region) before failing.", 180, range=_A_WEEK),
    ConfigKey("s3EndpointUrl", "string",
              "Endpoint of an S3-compatible store for s3:// staging sources; empty means AWS S3.", ""),
    ConfigKey("s3AccessKeyId", "string",
              "Access key id for s3:// staging sources; set with `pulumi config set --secret "
              "llmserve:s3AccessKeyId ...` together with s3SecretAccessKey. Optional (public buckets).",
              secret=True),
    ConfigKey("s3SecretAccessKey", "string",
              "Secret access key for s3:// staging sources; set with `pulumi config set --secret "
              "llmserve:s3SecretAccessKey ...`.", secret=True),
    # --- dashboard and alerts (ranges and the channel format are checked in infra/render/monitoring.py) ---
    ConfigKey("alertNotificationChannel", "string",
              "Cloud Monitoring notification channel the alert policies notify, as "
              "projects/<project-id>/notificationChannels/<id>; empty: alerts show in the console only.", ""),
    ConfigKey("alertNotReadyMinutes", "integer",
              "Minutes the RayService may be not Ready, or an always-on model without a healthy replica, "
              "before alerting (1-1440).", 10, range=_ALERT_RANGES["alertNotReadyMinutes"]),
    ConfigKey("alertTtftP95Seconds", "integer",
              "Alert when a model's p95 time to first token over 10 minutes exceeds this many seconds (1-3600).",
              10, range=_ALERT_RANGES["alertTtftP95Seconds"]),
    ConfigKey("alertKvCacheUsagePercent", "integer",
              "Alert when a model's KV-cache usage stays above this percentage (50-100) for "
              "alertKvCacheMinutes.", 95, range=_ALERT_RANGES["alertKvCacheUsagePercent"]),
    ConfigKey("alertKvCacheMinutes", "integer",
              "Minutes the KV cache must stay above alertKvCacheUsagePercent before alerting (1-1440).", 10,
              range=_ALERT_RANGES["alertKvCacheMinutes"]),
    ConfigKey("alertWedgedMinutes", "integer",
              "Alert when a model has waiting requests but generates no token for this many minutes (1-1440).", 5,
              range=_ALERT_RANGES["alertWedgedMinutes"]),
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
    reservation: Optional[str]
    driver_version: str

    @property
    def gpu_network_count(self) -> int:
        return self.machine.gpu_nic_count if self.gpudirect is not GpuDirect.NONE else 0

    @property
    def max_gpu_nodes(self) -> int:
        return largest_pool_size(self.autoscaling, self.node_count, self.max_nodes)

    @property
    def min_gpu_nodes(self) -> int:
        """The fewest nodes the pool keeps: its autoscaling floor, or its static size."""
        return self.min_nodes if self.autoscaling else self.node_count


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
    secure: SecureSettings = field(default=SecureSettings())
    weights: Optional[WeightsConfig] = None  # None only for StackConfigs built by hand in tests
    alerts: AlertThresholds = field(default=AlertThresholds())


# --- stage 1: one key at a time ---------------------------------------------------------------------------


# Provider keys that carry credentials: like the project's secret keys, they must be stored encrypted.
PROVIDER_SECRET_KEYS = ("gcp:accessToken", "gcp:credentials")


# --- the sections -------------------------------------------------------------------------------------------
#
# One reader per section. Each reads its keys (type, range, format: one problem per bad key), then checks the
# rules between them, running a rule only when every value it depends on was read cleanly, and returns its
# frozen settings, or None when anything in it is bad. A section that depends on another (the network needs the
# GPU pool's NIC count, serving needs the pool's machine and size) gets None for it and skips those rules, so a
# bad value is reported once, by the key that holds it, and never as follow-on nonsense.


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def _ok(*values: Any) -> bool:
    """Every value a rule depends on was read cleanly."""
    return all(value is not None for value in values)


def _read_gcp(read: ValueReader, gcp_values: Mapping[str, Any]) -> tuple[Optional[str], Optional[str]]:
    """The `gcp:` provider keys: (project, region), each None when missing or refused."""
    project, region = gcp_values.get("project"), gcp_values.get("region")
    if not project:
        read.problem("gcp:project: required but not set; run `pulumi config set gcp:project <project-id>`")
        project = None
    elif not isinstance(project, str) or gcp_rules.project_id_problem(project):
        read.problem(f"gcp:project: not a valid project id; found {shown(project)}; allowed: "
                     f"{gcp_rules.PROJECT_ID_RULE}")
        project = None
    if not region:
        read.problem("gcp:region: required but not set; run `pulumi config set gcp:region us-central1` "
                     "(or the region of your GPU capacity)")
        region = None
    elif not isinstance(region, str) or gcp_rules.region_problem(region):
        read.problem(f"gcp:region: not a region name; found {shown(region)}; allowed: {gcp_rules.REGION_RULE}")
        region = None
    return project, region


def _read_zones(read: ValueReader, region: Optional[str]) -> Optional[tuple[str, ...]]:
    """gpuZones: at least one, each a zone of gcp:region, none twice."""
    zones = read.get("gpuZones")
    if zones is None:
        return None
    start = len(read.problems)
    if not zones:
        read.problem(f"{_key('gpuZones')}: needs at least one zone{f' in {region}' if region else ''}; found []")
    for index, zone in enumerate(zones):
        if gcp_rules.zone_problem(zone):
            read.problem(f"{_key('gpuZones')}[{index}]: not a zone name; found {shown(zone)}; allowed: "
                         f"{gcp_rules.ZONE_RULE}")
        elif region is not None and zone.rsplit("-", 1)[0] != region:
            read.problem(f"{_key('gpuZones')}[{index}]: zone {zone!r} is not in gcp:region {region!r}; "
                         f"allowed: zones named {region}-<letter>")
    if len(set(zones)) != len(zones):
        read.problem(f"{_key('gpuZones')}: lists a zone twice; found {shown(zones)}; allowed: each zone once")
    return tuple(zones) if len(read.problems) == start else None


def _read_machine(read: ValueReader) -> Optional[MachineProfile]:
    """gpuMachineType: a profile of infra/catalog.py. Read on its own, because the models' rules need only the
    machine and are checked even when the pool's size is bad."""
    machine_type = read.get("gpuMachineType")
    machine = MACHINE_PROFILES.get(machine_type) if machine_type is not None else None
    if machine_type is not None and machine is None:
        read.problem(f"{_key('gpuMachineType')}: unknown machine type {shown(machine_type)}; allowed: "
                     f"{', '.join(sorted(MACHINE_PROFILES))}")
    return machine


def _read_gpu_pool(read: ValueReader, machine: Optional[MachineProfile],
                   zones: Optional[tuple[str, ...]]) -> Optional[GpuPoolConfig]:
    start = len(read.problems)
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
                                f"a reservation name, optionally NAME/reservationBlocks/BLOCK, each "
                                f"{gcp_rules.RFC1035_RULE}")
    driver_version = read.get("gpuDriverVersion")

    if _ok(compact_placement, zones) and compact_placement and len(zones) > 1:
        read.problem(f"{_key('gpuZones')}: compact placement keeps the pool in one zone; found {len(zones)} "
                     f"zones {list(zones)}; allowed: exactly one zone, or set {_key('gpuCompactPlacement')} to "
                     f"false")
    if _ok(autoscaling, min_nodes, max_nodes) and autoscaling and (max_nodes < 1 or min_nodes > max_nodes):
        read.problem(f"{_key('gpuMinNodes')}/{_key('gpuMaxNodes')}: need 0 <= min <= max and max >= 1; "
                     f"found min={min_nodes}, max={max_nodes}")

    if queued:
        # Refused on its own (infra/config/secure.py says why), so no other rule talks about a queued pool.
        read.problem(f"{_key('gpuQueuedProvisioning')}: true is refused: {QUEUED_PROVISIONING_REFUSAL}")
    capacity = {"gpuSpot": spot, "gpuFlexStart": flex_start}
    chosen = [name for name, on in capacity.items() if on]
    if len(chosen) > 1:
        read.problem(f"{' and '.join(_key(name) for name in chosen)}: these provisioning modes exclude each "
                     f"other; allowed: at most one of {', '.join(_key(name) for name in capacity)}")
    if reservation:
        for name in chosen:
            read.problem(f"{_key(name)}: cannot be combined with {_key('gpuReservation')}={reservation!r}; a "
                         f"reservation is consumed by on-demand VMs only; allowed: {_key(name)}=false or an "
                         f"empty {_key('gpuReservation')}")
    if flex_start and autoscaling is False:
        read.problem(f"{_key('gpuFlexStart')}: needs {_key('gpuAutoscaling')}=true (the pool scales up from zero "
                     f"when capacity is granted); found {_key('gpuAutoscaling')}=false")
    if flex_start and compact_placement and machine is not None and not machine.compact_placement_with_dws:
        read.problem(f"{_key('gpuFlexStart')}: GKE does not support compact placement with flex-start on "
                     f"{machine.machine_type}; found {_key('gpuCompactPlacement')}=true; allowed: turn one of them "
                     f"off")

    gpudirect = None
    if _ok(machine, gpudirect_wanted):
        gpudirect = machine.gpudirect if gpudirect_wanted else GpuDirect.NONE
        needed_nics = machine.gpu_nic_count if gpudirect is not GpuDirect.NONE else 0
        if gpu_network_count and gpu_network_count != needed_nics:
            why = (f"{machine.machine_type} with GPUDirect-{gpudirect.value.upper()} uses {needed_nics} GPU NICs"
                   if needed_nics else
                   f"{machine.machine_type} uses no GPU NIC networks here (gpuDirect off or unsupported)")
            read.problem(f"{_key('gpuNetworkCount')}: {why}; found {gpu_network_count}; allowed: {needed_nics}, "
                         f"or 0 to derive it from the machine")
        if machine.gpudirect is not GpuDirect.NONE and not gpudirect_wanted:
            read.warnings.append(f"{_key('gpuDirect')}: off on {machine.machine_type}; cross-node NCCL traffic "
                                 f"uses eth0 only")
    if len(read.problems) > start or not _ok(machine, zones):
        return None

    if spot and (node_count > 1 or (autoscaling and max_nodes > 1)):
        read.warnings.append(f"{_key('gpuSpot')}: a preempted Spot node takes down every model replica that "
                             f"spans it")
    if reservation and compact_placement and gpudirect is GpuDirect.TCPXO:
        read.warnings.append(f"{_key('gpuCompactPlacement')}: A3 Mega pool creation has been reported to fail when "
                             f"a placement policy is added on top of a dense specific reservation; if it does, set "
                             f"it to false")
    return GpuPoolConfig(
        machine=machine, zones=zones, node_count=node_count, autoscaling=autoscaling, min_nodes=min_nodes,
        max_nodes=max_nodes, compact_placement=compact_placement, gpudirect=gpudirect, spot=spot,
        flex_start=flex_start, reservation=reservation or None,
        driver_version=driver_version)


_RANGE_KEYS = ("primarySubnetCidr", "podsCidr", "servicesCidr", "masterCidr", "gpuNetworksCidr")


def _read_ranges(read: ValueReader) -> dict[str, Optional[ipaddress.IPv4Network]]:
    """The address ranges, each None when bad; sizes checked on their own, overlaps between the good ones."""
    ranges = {name: read.cidr(name) for name in _RANGE_KEYS}
    master, gpu = ranges["masterCidr"], ranges["gpuNetworksCidr"]
    if master is not None and master.prefixlen != 28:
        read.problem(f"{_key('masterCidr')}: GKE needs a /28 for the control plane; found {master}")
        ranges["masterCidr"] = None
    if gpu is not None and gpu.prefixlen > gcp_rules.SMALLEST_SUBNET_PREFIX - 3:
        read.problem(f"{_key('gpuNetworksCidr')}: too small to split into {GPU_SUBNET_SLOTS} GPU subnets of at "
                     f"least /{gcp_rules.SMALLEST_SUBNET_PREFIX} (Google's smallest subnet); found {gpu}; allowed: "
                     f"/{gcp_rules.SMALLEST_SUBNET_PREFIX - 3} or larger (/16 recommended)")
        ranges["gpuNetworksCidr"] = None
    for name in ("primarySubnetCidr", "podsCidr", "servicesCidr"):
        network = ranges[name]
        if network is not None and network.prefixlen > gcp_rules.SMALLEST_SUBNET_PREFIX:
            read.problem(f"{_key(name)}: Google's smallest subnet range is a /{gcp_rules.SMALLEST_SUBNET_PREFIX}; "
                         f"found {network}; allowed: /{gcp_rules.SMALLEST_SUBNET_PREFIX} or larger")
            ranges[name] = None
    good = [name for name in _RANGE_KEYS if ranges[name] is not None]
    for i, first in enumerate(good):
        for second in good[i + 1:]:
            if ranges[first].overlaps(ranges[second]):
                read.problem(f"{_key(first)} and {_key(second)}: ranges overlap; found {ranges[first]} and "
                             f"{ranges[second]}; allowed: disjoint ranges")
    return ranges


def _read_network(read: ValueReader, region: Optional[str], ranges: Mapping[str, Any],
                  pool: Optional[GpuPoolConfig]) -> Optional[NetworkConfig]:
    if not _ok(region, pool, *ranges.values()):
        return None
    slots = list(ranges["gpuNetworksCidr"].subnets(prefixlen_diff=3))[:GPU_SUBNET_SLOTS]
    return NetworkConfig(
        region=region,
        primary_subnet_cidr=str(ranges["primarySubnetCidr"]),
        pods_cidr=str(ranges["podsCidr"]),
        services_cidr=str(ranges["servicesCidr"]),
        gpu_subnet_cidrs=tuple(str(slot) for slot in slots[:pool.gpu_network_count]),
    )


def _read_cluster(read: ValueReader, region: Optional[str], zones: Optional[tuple[str, ...]],
                  master_cidr: Optional[ipaddress.IPv4Network]) -> Optional[ClusterConfig]:
    start = len(read.problems)
    regional = read.get("regionalCluster")
    system_machine_type = read.matching("systemMachineType", lambda value: not gcp_rules.machine_type_problem(value),
                                        gcp_rules.MACHINE_TYPE_RULE)
    if system_machine_type == "":
        read.problem(f"{_key('systemMachineType')}: must not be empty; allowed: {gcp_rules.MACHINE_TYPE_RULE}")
    system_node_count = read.get("systemNodeCount")
    release_channel = read.get("releaseChannel")
    kubernetes_version = read.matching("kubernetesVersion", _is_gke_version,
                                       "a GKE version like 1.33 or 1.33.5-gke.1080000")
    window_start = read.matching("maintenanceWindowStart", _is_hh_mm, "HH:MM (UTC)")
    if window_start == "":
        read.problem(f"{_key('maintenanceWindowStart')}: must not be empty; allowed: HH:MM (UTC)")
    freeze = read.get("nodeUpgradeFreeze")
    freeze_start = read.matching("nodeUpgradeFreezeStart", _is_rfc3339,
                                 "an RFC 3339 time with a zone, like 2026-11-01T00:00:00Z")
    if freeze and freeze_start == "":
        read.problem(f"{_key('nodeUpgradeFreezeStart')}: must be set while {_key('nodeUpgradeFreeze')} is true; "
                     f"allowed: an RFC 3339 time with a zone, like 2026-11-01T00:00:00Z")
    deletion_protection = read.get("deletionProtection")
    authorized = read.cidr_list("masterAuthorizedNetworks")
    allow_open = read.get("allowOpenControlPlane")

    if authorized is not None:
        if not authorized:
            read.problem(f"{_key('masterAuthorizedNetworks')}: needs at least one CIDR (the machine that runs "
                         f"`pulumi up` must reach the control plane); found []")
        for network in authorized:
            if network == OPEN_TO_THE_INTERNET and allow_open is False:
                read.problem(f"{_key('masterAuthorizedNetworks')}: {network} opens the control plane to the whole "
                             f"internet; allowed: specific CIDRs (the machine running `pulumi up`), or set "
                             f"{_key('allowOpenControlPlane')}=true to accept the risk")
            if any(network.subnet_of(doc) for doc in DOCUMENTATION_RANGES):
                read.warnings.append(f"{_key('masterAuthorizedNetworks')}: {network} is a documentation range "
                                     f"(RFC 5737); replace it with the CIDR of the machine that runs `pulumi up`, "
                                     f"or the Kubernetes objects cannot be applied")
    if len(read.problems) > start or not _ok(region, zones, regional, master_cidr):
        return None
    return ClusterConfig(
        location=region if regional else zones[0],
        node_zones=zones,
        release_channel=release_channel,
        kubernetes_version=kubernetes_version or None,
        maintenance_window_start=window_start,
        node_upgrade_freeze_start=freeze_start if freeze else None,
        deletion_protection=deletion_protection,
        master_cidr=str(master_cidr),
        master_authorized_networks=tuple(str(network) for network in authorized),
        system_machine_type=system_machine_type,
        system_node_count=system_node_count,
    )


def _read_serving(read: ValueReader, machine: Optional[MachineProfile], pool: Optional[GpuPoolConfig],
                  secure: Optional[SecureSettings], secrets: Mapping[str, Any],
                  plain_secrets: Mapping[str, str]) -> Optional[ServingConfig]:
    start = len(read.problems)
    models = _read_models(read)
    namespace = read.matching("servingNamespace", lambda value: _K8S_LABEL.fullmatch(value) is not None,
                              "a Kubernetes namespace name: 1 to 63 lowercase letters, digits and '-', starting "
                              "and ending with a letter or digit")
    if namespace == "":
        read.problem(f"{_key('servingNamespace')}: must not be empty; allowed: a Kubernetes namespace name")
    ray_image = read.matching("rayImage", lambda value: _IMAGE.fullmatch(value) is not None,
                              "a container image reference like registry/repository:tag or "
                              "repository@sha256:<digest>, or empty for the pinned image")
    ray_cluster_upgrade = read.get("rayClusterUpgrade")
    cpu_workers = read.get("cpuWorkers")
    exposure = read.get("serveExposure")
    source_ranges = read.cidr_list("serveSourceRanges")
    api_auth = read.get("apiAuth")
    ready_timeout = read.get("serveReadyTimeoutMinutes")
    _check_api_key(read, plain_secrets.get("apiKey"))

    if api_auth is False and exposure is not None and exposure != "cluster":
        read.problem(f"{_key('apiAuth')}: false with {_key('serveExposure')}={exposure!r} would put an open "
                     f"model endpoint on a load balancer; allowed: apiAuth=true, or serveExposure=cluster")
    if _ok(cpu_workers, models) and cpu_workers < 1 and any(model.min_replicas == 0 for model in models):
        read.problem(f"{_key('cpuWorkers')}: a model that scales to zero needs a CPU worker for the ingress that "
                     f"wakes it; found {cpu_workers}; allowed: 1 or more")
    if _ok(models, machine):
        read.problems.extend(serving_problems(models, machine, pool.max_gpu_nodes if pool is not None else None))
        capacity_errors, capacity_warnings = capacity_findings(models, machine, _key("models"))
        read.problems.extend(capacity_errors)
        read.warnings.extend(capacity_warnings)
    if _ok(secure, exposure, source_ranges):
        read.problems.extend(secure_problems(secure, exposure=exposure, source_ranges=source_ranges))
    if len(read.problems) > start or not _ok(models, pool, secure):
        return None

    if exposure == "internal" and not source_ranges:
        read.warnings.append(f"{_key('serveSourceRanges')}: empty, so the {exposure} load balancer accepts any "
                             f"source")
    if exposure == "cluster" and source_ranges:
        read.warnings.append(f"{_key('serveSourceRanges')}: has no effect with {_key('serveExposure')}=cluster "
                             f"(no load balancer)")
    image = ray_image or RAY_LLM_IMAGE
    if pool.driver_version == "DEFAULT" and "-cu13" in image:
        read.warnings.append(f"{_key('gpuDriverVersion')}: DEFAULT with a CUDA 13 image "
                             f"({image}); CUDA 13 needs an R580 or newer driver, which GKE's "
                             f"default driver may not be; LATEST is the safe choice")
    if not api_auth:
        read.warnings.append(f"{_key('apiAuth')}: false; anyone who can reach the cluster-internal service can use "
                             f"the models")
    return ServingConfig(
        models=models,
        namespace=namespace,
        ray_image=image,
        ray_cluster_upgrade=ray_cluster_upgrade,
        cpu_workers=cpu_workers,
        exposure=exposure,
        source_ranges=tuple(str(network) for network in source_ranges),
        api_auth=api_auth,
        ready_timeout_minutes=ready_timeout,
        api_key=secrets.get("apiKey"),
        hf_token=secrets.get("hfToken"),
    )


def _read_alerts(read: ValueReader) -> Optional[AlertThresholds]:
    """The alert thresholds and notification channel (ranges and the channel's format: infra/render/monitoring.py);
    None when any is bad."""
    raw = {name: read.get(name) for name in ALERT_KEYS}
    if not _ok(*raw.values()):
        return None
    alerts, problems = alert_thresholds(raw, f"{PROJECT}:")
    read.problems.extend(problems)
    return None if problems else alerts


def _read_models(read: ValueReader) -> Optional[tuple[ModelSpec, ...]]:
    raw_models = read.get("models")
    if raw_models is None:
        return None
    try:
        return parse_models(raw_models, key=_key("models"))
    except ModelConfigError as error:
        read.problems.extend(error.problems)
        return None


def _check_api_key(read: ValueReader, api_key: Optional[str]) -> None:
    if api_key is None:
        return
    api_keys = parse_api_keys(api_key)
    short = [index for index, key in enumerate(api_keys) if len(key) < MIN_API_KEY_LENGTH]
    if short or not api_keys:
        read.problem(f"{_key('apiKey')}: every key (comma-separated) needs at least {MIN_API_KEY_LENGTH} "
                     f"characters, or the ingress refuses to start; found "
                     f"{'no key' if not short else f'short key(s) at position(s) {short}'}")


def _namespace_problems(other_keys: Iterable[str]) -> list[str]:
    """Keys outside this project's namespace: refused when no one reads them, or when they hold credentials in
    plain text (`other_keys` maps each to whether it is stored encrypted)."""
    problems = []
    allowed = ", ".join(f"{namespace}:" for namespace in CONFIG_NAMESPACES)
    for name in sorted(other_keys):
        namespace, colon, rest = name.partition(":")
        if not colon:
            problems.append(f"{name}: config key without a namespace; allowed: {PROJECT}:{name} for this "
                            f"project's key, or a key in one of the namespaces {allowed}")
        elif namespace not in CONFIG_NAMESPACES:
            hint = closest(namespace, CONFIG_NAMESPACES)
            problems.append(f"{name}: namespace {namespace!r} is read by neither this project nor its providers, "
                            f"so `pulumi up` would ignore the key{did_you_mean(hint and f'{hint}:{rest}')}; "
                            f"allowed namespaces: {allowed}")
    return problems


def _check_keys(read: ValueReader, values: Mapping[str, Any], other_keys: Mapping[str, bool],
                encrypted: set[str]) -> None:
    """Problems with the keys themselves, before any value is read: unknown keys and namespaces, secrets in
    plain text, encrypted values where none belongs."""
    for name in sorted(set(values) - set(CONFIG_KEYS_BY_NAME)):
        read.problem(f"{_key(name)}: unknown config key{did_you_mean(closest(name, CONFIG_KEYS_BY_NAME))}; "
                     f"known keys: {', '.join(sorted(CONFIG_KEYS_BY_NAME))}")
    for name in sorted(set(values) & SECRET_KEY_NAMES):
        read.problem(_plain_secret_problem(_key(name)))
    read.problems.extend(_namespace_problems(other_keys))
    for name in PROVIDER_SECRET_KEYS:
        if name in other_keys and not other_keys[name]:
            read.problem(_plain_secret_problem(name))
    if "models" in encrypted:
        read.problem(f"{_key('models')}: holds an encrypted value, but the models end up in the Serve config, "
                     f"which the RayService stores in plain text; allowed: no secrets in models (the Hugging "
                     f"Face token goes in {_key('hfToken')}, set with `pulumi config set --secret`)")
        read.reported.add("models")


def _plain_secret_problem(full_name: str) -> str:
    return (f"{full_name}: must be stored encrypted; found a plain value; set it with "
            f"`pulumi config set --secret {full_name} <value>`")


# --- both stages, all sections --------------------------------------------------------------------------------


def parse_stack_config(stack: str, values: Mapping[str, Any], gcp_values: Mapping[str, Any],
                       secrets: Optional[Mapping[str, Any]] = None,
                       plain_secrets: Optional[Mapping[str, str]] = None,
                       other_keys: Optional[Mapping[str, bool]] = None,
                       encrypted: Iterable[str] = ()) -> StackConfig:
    """Build the typed `StackConfig` from raw config values, or raise `ConfigError` listing every problem.

    `values` holds the project's keys without their `llmserve:` prefix; `gcp_values` the `gcp:` provider keys
    (`project`, `region`). Values may be strings (as the engine passes them) or already-typed JSON values. A
    secret key found in `values` was stored in plain text and is refused. `secrets` maps the secret keys that
    are set to their (opaque) values, which are passed through unread; `plain_secrets` holds the same values
    in plain text for checks only (never stored, never printed). `other_keys` maps every key the stack sets
    outside the project's namespace (`gcp:project`, a misspelt `llmserv:gpuNodeCount`, a bare `gpuNodeCount`)
    to whether it is stored encrypted. `encrypted` names the project keys that are not secrets but are stored
    encrypted (an encrypted part inside `models` would reach the plain-text serve config).
    """
    read = ValueReader(values, CONFIG_KEYS_BY_NAME)
    _check_keys(read, values, dict(other_keys or {}), set(encrypted))

    gcp_project, region = _read_gcp(read, gcp_values)
    zones = _read_zones(read, region)
    machine = _read_machine(read)
    pool = _read_gpu_pool(read, machine, zones)
    ranges = _read_ranges(read)
    network = _read_network(read, region, ranges, pool)
    cluster = _read_cluster(read, region, zones, ranges["masterCidr"])
    secure = read_secure_settings(read)
    serving = _read_serving(read, machine, pool, secure, secrets or {}, plain_secrets or {})
    alerts = _read_alerts(read)
    weight_keys = read_weight_keys(read.get)
    weights = None
    if _ok(serving, cluster, gcp_project, region, *weight_keys.values()):
        weights, weight_problems, weight_warnings = resolve_weights(
            weight_keys, serving.models, stack=stack, gcp_project=gcp_project, region=region,
            deletion_protection=cluster.deletion_protection, ray_image=serving.ray_image, secrets=secrets or {})
        read.problems.extend(weight_problems)
        read.warnings.extend(weight_warnings)
    if secure is not None and pool is not None:
        read.warnings.extend(secure_warnings(secure, machine_type=pool.machine.machine_type,
                                             on_demand=not (pool.reservation or pool.spot or pool.flex_start)))

    if read.problems:
        raise ConfigError(read.problems)
    return StackConfig(stack=stack, gcp_project=gcp_project, region=region, network=network, cluster=cluster,
                       gpu_pool=pool, serving=serving, warnings=tuple(read.warnings), secure=secure,
                       weights=weights, alerts=alerts)


def serving_problems(models: tuple[ModelSpec, ...], machine: MachineProfile,
                     max_gpu_nodes: Optional[int]) -> list[str]:
    """Rules between the models and the GPU pool they run on; those about the pool's size are skipped when
    `max_gpu_nodes` is None (the size is bad and already reported)."""
    problems = []
    per_node = machine.gpu_count
    pool_gpus = per_node * max_gpu_nodes if max_gpu_nodes is not None else None
    for index, model in enumerate(models):
        where = f"{PROJECT}:models[{index}]"
        if model.accelerator_type != machine.ray_accelerator:
            problems.append(f"{where}.acceleratorType: {model.accelerator_type!r} does not match the GPU pool's "
                            f"{machine.gke_accelerator} ({machine.machine_type}); allowed: "
                            f"{machine.ray_accelerator!r}")
        tensor = model.tensor_parallel_size
        if per_node % tensor:
            problems.append(f"{where}.tensorParallelSize: a tensor-parallel group stays within one node (its GPUs "
                            f"exchange activations every layer; only pipeline stages cross nodes); found {tensor} "
                            f"on {machine.machine_type} nodes with {per_node} GPUs; allowed: a divisor of "
                            f"{per_node} ({', '.join(str(n) for n in range(1, per_node + 1) if per_node % n == 0)}); "
                            f"use pipelineParallelSize to span nodes")
            continue
        gpus = model.gpus_per_replica
        if gpus % per_node and per_node % gpus:
            problems.append(f"{where}: tensorParallelSize x pipelineParallelSize = {gpus} GPUs does not fill "
                            f"whole {machine.machine_type} nodes ({per_node} GPUs each); allowed: a multiple of "
                            f"{per_node}, or a divisor of it so that replicas share a node evenly")
        elif pool_gpus is not None and gpus * max(model.min_replicas, 1) > pool_gpus:
            problems.append(f"{where}: needs {gpus * max(model.min_replicas, 1)} GPUs "
                            f"({max(model.min_replicas, 1)} x {gpus}) but the GPU pool can never have more than "
                            f"{pool_gpus} ({max_gpu_nodes} x {per_node}); allowed: raise gpuNodeCount/gpuMaxNodes "
                            f"or shrink the model")
    needed = sum(model.gpus_per_replica * model.min_replicas for model in models)
    if pool_gpus is not None and needed > pool_gpus and not problems:
        problems.append(f"{PROJECT}:models: the minimum replicas need {needed} GPUs together but the GPU pool can "
                        f"never have more than {pool_gpus}; allowed: lower minReplicas or grow the pool")
    return problems


def _is_gke_version(value: str) -> bool:
    return re.fullmatch(r"1\.\d+(\.\d+(-gke\.\d+)?)?", value, re.ASCII) is not None


def _is_hh_mm(value: str) -> bool:
    return re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value, re.ASCII) is not None


def _is_rfc3339(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value, re.ASCII):
        return False
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _is_reservation(value: str) -> bool:
    """NAME or NAME/reservationBlocks/BLOCK, each an RFC 1035 name (a name holds no '/', so the split is exact)."""
    parts = value.split("/reservationBlocks/")
    return len(parts) <= 2 and not any(gcp_rules.rfc1035_problem(part) for part in parts)


_K8S_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# A container image reference (distribution/reference's grammar, simplified): [registry[:port]/]path[:tag][@digest].
_IMAGE = re.compile(r"([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
                    r"(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?")


# --- reading through Pulumi ---------------------------------------------------------------------------------


def load_stack_config() -> StackConfig:
    """Read the current stack's config through `pulumi.Config`, once. The only place that does."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    # `pulumi.Config` cannot list keys; the runtime's config map can (set by the engine or `set_all_config`),
    # so that a misspelt key or namespace is reported instead of silently ignored.
    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    encrypted = set(runtime_config.get_config_secret_keys_env()) | {
        name for name in everything if runtime_config.is_config_secret(name)}
    project_config = pulumi.Config(PROJECT)
    return config_from_map(pulumi.get_stack(), everything, encrypted, project_config.get_secret)


def config_from_map(stack: str, config: Mapping[str, Any], encrypted: Iterable[str],
                    secret: Callable[[str], Any] = lambda name: None) -> StackConfig:
    """`parse_stack_config` for a whole config map as the engine holds it, `{"namespace:key": "text"}`, with the
    keys stored encrypted. `secret(name)` wraps a secret key's value (a `pulumi.Output` under the engine); its
    text is used for checks only. Pure: the property tests call it with stack files read by infra/stackfiles."""
    prefix = f"{PROJECT}:"
    encrypted = set(encrypted)
    project_keys = {name[len(prefix):] for name in config if name.startswith(prefix)}
    # A secret key stored in plain text goes with the ordinary values, where parse_stack_config refuses it.
    plain_text = {name for name in SECRET_KEY_NAMES & project_keys if f"{prefix}{name}" not in encrypted}
    stored_secrets = (SECRET_KEY_NAMES & project_keys) - plain_text
    values = {name: config[f"{prefix}{name}"] for name in sorted(project_keys - stored_secrets)}
    values = {name: value for name, value in values.items() if value is not None}
    secrets = {name: secret(name) or config[f"{prefix}{name}"] for name in sorted(stored_secrets)}
    # The offline plan cannot decrypt secrets and passes a placeholder, which is not checked.
    plain = {name: config[f"{prefix}{name}"] for name in stored_secrets}
    gcp_values = {"project": config.get("gcp:project"), "region": config.get("gcp:region")}
    other_keys = {name: name in encrypted for name in config if not name.startswith(prefix)}
    return parse_stack_config(stack, values, gcp_values, secrets,
                              {name: value for name, value in plain.items()
                               if isinstance(value, str) and value != OFFLINE_SECRET},
                              other_keys=other_keys,
                              encrypted={name[len(prefix):] for name in encrypted if name.startswith(prefix)})
