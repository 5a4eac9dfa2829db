"""The project's config keys: one declaration each, with everything its reader and the reference need.

`CONFIG_KEYS` lists every `llmserve:` key, grouped by the section that reads it (`infra/config/sections/`);
`PROVIDER_KEYS` the provider keys this project requires. `Pulumi.yaml`'s `config:` block and
docs/configuration.md are generated from these tables (`python -m infra.config.reference`, which a test runs in
`--check` mode). Every key is read through its declaration (`infra/config/values.py`): type, range, choices and
whether it is required are checked before any rule between keys runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from configkit import ConfigKey, Range
from infra.catalog import GPU_SUBNET_SLOTS
from infra.config.gcs_ft_keys import GCS_FT_KEYS
from infra.config.tenant_keys import TENANT_KEYS
from serve_app.spec import WEIGHT_SOURCES

RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE", "EXTENDED")
RAY_CLUSTER_UPGRADES = ("NewCluster", "Recreate")
SERVE_EXPOSURES = ("cluster", "internal", "external")
GPU_DRIVER_VERSIONS = ("DEFAULT", "LATEST")
HOST_MAINTENANCE_INTERVALS = ("", "AS_NEEDED", "PERIODIC")
STACK_WEIGHT_SOURCES = ("auto", *WEIGHT_SOURCES)

# Every integer key has a range (a test checks that a new key gets one), so a huge or negative value is refused
# when it is read rather than by Google's API or a Go duration overflow.
_NODES_PER_POOL_ZONE = "GKE allows at most 1000 nodes per node pool and zone"
_NODES = Range(0, 1000, why=_NODES_PER_POOL_ZONE)
_A_WEEK = Range(1, 10080, why="at most a week")
_ALERT_MINUTES = Range(1, 1440)


def declared_in_pulumi_yaml(key: ConfigKey) -> bool:
    """Whether Pulumi.yaml's `config:` block declares `key`.

    Pulumi.yaml can only type strings, integers, booleans and arrays of them, and a typed key without a
    default would be required by the CLI; so `object` keys (the model list) and `secret` keys (optional
    secrets) are documented in Pulumi.yaml's comments and the reference instead of its `config:` block.
    """
    return key.type in ("string", "integer", "boolean", "array") and not key.secret


PROVIDER_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "gcp:project",
        "string",
        "The Google Cloud project id: `pulumi config set gcp:project my-project`.",
        required=True,
    ),
    ConfigKey(
        "gcp:region",
        "string",
        "The region of the cluster and of the GPU capacity, e.g. us-east4; a region of REGION_ZONES in "
        "infra/catalog.py (from the SkyPilot catalog v9 at 2c3d7ea, 2026-11-28).",
        required=True,
    ),
)

# The GPU node pool (sections/gpu_pool.py).
GPU_POOL_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "gpuMachineType",
        "string",
        "Machine type of the GPU node pool; one of the machine profiles in infra/catalog.py "
        "(a3-highgpu-8g, a3-megagpu-8g, g2-standard-24).",
        required=True,
    ),
    ConfigKey(
        "gpuZones",
        "array",
        "Zones of the GPU node pool, all zones of gcp:region that exist (REGION_ZONES in infra/catalog.py). "
        "Exactly one when gpuCompactPlacement is on. A region where MACHINE_ZONES lists gpuMachineType in no "
        "zone is refused; a zone it does not list, in a region that has the machine, is a warning (GKE would "
        "refuse the pool there; the table may be out of date).",
        required=True,
    ),
    ConfigKey(
        "gpuNodeCount", "integer", "Static number of GPU nodes (used when gpuAutoscaling is false).", 2, range=_NODES
    ),
    ConfigKey(
        "gpuAutoscaling",
        "boolean",
        "Let the GPU pool scale between gpuMinNodes and gpuMaxNodes instead of a static gpuNodeCount.",
        False,
    ),
    ConfigKey(
        "gpuMinNodes", "integer", "Smallest GPU pool size with autoscaling; 0 scales the pool to zero.", 0, range=_NODES
    ),
    ConfigKey("gpuMaxNodes", "integer", "Largest GPU pool size with autoscaling.", 2, range=_NODES),
    ConfigKey(
        "gpuCompactPlacement",
        "boolean",
        "Place GPU nodes close together with a COLLOCATED resource policy (single zone only).",
        True,
    ),
    ConfigKey(
        "gpuDirect",
        "boolean",
        "Wire GPUDirect-TCPX/TCPXO (extra GPU NICs, NCCL plugin) when the machine supports it.",
        True,
    ),
    ConfigKey(
        "gpuNetworkCount",
        "integer",
        "Number of GPU NIC networks; 0 derives it from the machine (4 for A3 High, 8 for A3 Mega). "
        "A non-zero value must match the machine.",
        0,
        range=Range(0, GPU_SUBNET_SLOTS, why="0 derives it from the machine"),
    ),
    ConfigKey("gpuSpot", "boolean", "Use Spot VMs for the GPU pool (cannot be combined with a reservation).", False),
    ConfigKey(
        "gpuFlexStart",
        "boolean",
        "Use DWS flex-start VMs (autoscaling only; no reservation, no Spot, no compact placement on A3).",
        False,
    ),
    ConfigKey(
        "gpuQueuedProvisioning",
        "boolean",
        "DWS queued provisioning: refused (true is a config error), because only a ProvisioningRequest "
        "fills such a pool and the Ray autoscaler's workers cannot use one; use gpuFlexStart.",
        False,
    ),
    ConfigKey(
        "gpuReservation",
        "string",
        "Name of a specific Compute Engine reservation to consume (optionally "
        "NAME/reservationBlocks/BLOCK); empty for none.",
        "",
    ),
    ConfigKey(
        "gpuDriverVersion",
        "string",
        "GKE-managed NVIDIA driver: LATEST (needed by CUDA 13 images) or DEFAULT.",
        "LATEST",
        choices=GPU_DRIVER_VERSIONS,
    ),
)

# The GKE cluster and its control plane (sections/cluster.py).
CLUSTER_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "regionalCluster",
        "boolean",
        "Regional (highly available) control plane; false makes a zonal cluster in the first GPU zone.",
        True,
    ),
    ConfigKey(
        "systemMachineType",
        "string",
        "Machine type of the CPU system pool that runs the Ray head and controllers.",
        "e2-standard-16",
    ),
    ConfigKey(
        "systemNodeCount",
        "integer",
        "Number of system nodes per system-pool zone.",
        1,
        range=Range(1, 1000, why="the Ray head and controllers need at least 1 node; " + _NODES_PER_POOL_ZONE),
    ),
    ConfigKey(
        "releaseChannel",
        "string",
        "GKE release channel: RAPID, REGULAR, STABLE or EXTENDED.",
        "REGULAR",
        choices=RELEASE_CHANNELS,
    ),
    ConfigKey(
        "kubernetesVersion",
        "string",
        "Minimum control-plane version (for example 1.33); empty takes the channel's default.",
        "",
    ),
    ConfigKey("maintenanceWindowStart", "string", "Daily maintenance window start, HH:MM in UTC.", "03:00"),
    ConfigKey(
        "nodeUpgradeFreeze",
        "boolean",
        "Add a NO_MINOR_OR_NODE_UPGRADES maintenance exclusion until end of support, so GPU nodes are "
        "never recreated by a surprise upgrade.",
        True,
    ),
    ConfigKey("nodeUpgradeFreezeStart", "string", "RFC 3339 start time of that exclusion.", "2026-11-01T00:00:00Z"),
    ConfigKey(
        "deletionProtection", "boolean", "Refuse to delete the GKE cluster (turn off for throwaway stacks).", True
    ),
    ConfigKey(
        "masterAuthorizedNetworks",
        "array",
        "CIDRs allowed to reach the control plane; include the machine that runs `pulumi up`.",
        required=True,
    ),
    ConfigKey(
        "allowOpenControlPlane",
        "boolean",
        "Explicit opt-out that permits 0.0.0.0/0 in masterAuthorizedNetworks.",
        False,
    ),
)

# Address ranges (sections/network.py).
ADDRESS_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("primarySubnetCidr", "string", "Node range of the primary subnet.", "10.0.0.0/20"),
    ConfigKey("podsCidr", "string", "Secondary range for pods.", "10.4.0.0/14"),
    ConfigKey("servicesCidr", "string", "Secondary range for services.", "10.0.32.0/20"),
    ConfigKey("masterCidr", "string", "The control plane's private /28.", "172.16.0.32/28"),
    ConfigKey(
        "gpuNetworksCidr", "string", "Range split into 8 equal subnets, one per GPU NIC network.", "192.168.0.0/16"
    ),
)

# What is served and how it is reached (sections/serving.py).
SERVING_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "models",
        "object",
        "The models to serve: a list of objects, one per model, with the keys declared in serve_app/spec/keys.py.",
        required=True,
    ),
    ConfigKey(
        "pipelines",
        "object",
        "Multi-model pipelines: a list of objects {id, steps}, each served as an OpenAI model id whose chat "
        "completions run guard, route and generate steps over the models (docs/pipelines.md).",
        default_text="none",
    ),
    ConfigKey("servingNamespace", "string", "Kubernetes namespace of the RayService and its secrets.", "llm"),
    ConfigKey(
        "rayImage",
        "string",
        "Container image of the Ray head and workers; empty takes the pinned image in infra/catalog.py.",
        "",
    ),
    ConfigKey(
        "rayClusterUpgrade",
        "string",
        "How a change to the Ray cluster spec (image, resources, worker groups) is rolled out: NewCluster "
        "lets KubeRay build a second cluster and switch once it serves (zero downtime, needs the GPUs "
        "twice over); Recreate deletes and recreates the RayService (downtime of a cold start, no spare "
        "GPUs needed). Serve config changes apply in place either way.",
        "NewCluster",
        choices=RAY_CLUSTER_UPGRADES,
    ),
    ConfigKey(
        "cpuWorkers",
        "integer",
        "Ray CPU worker pods on the system pool; they host the OpenAI ingress, so GPU groups can scale "
        "to zero and still be woken by a request.",
        1,
        range=Range(0, 1000),
    ),
    ConfigKey(
        "serveExposure",
        "string",
        "Who can reach the OpenAI API: cluster (ClusterIP only), internal (an internal load balancer in "
        "the VPC; plain HTTP, needs serveAllowPlainHttp) or external (HTTPS through a GKE Gateway with a "
        "Google-managed certificate for serveHostname).",
        "cluster",
        choices=SERVE_EXPOSURES,
    ),
    ConfigKey(
        "serveSourceRanges",
        "array",
        "CIDRs allowed through the internal load balancer when serveExposure is internal; empty "
        "allows any source that can route to it. Not supported with external (HTTPS Gateway).",
        [],
    ),
    ConfigKey(
        "apiAuth",
        "boolean",
        "Require `Authorization: Bearer <key>` on the OpenAI API; false is refused unless serveExposure is cluster.",
        True,
    ),
    ConfigKey(
        "streamDrainSeconds",
        "integer",
        "How long a stopping model or ingress replica (scale-down, a config change, a drained node, a deleted "
        "pod) lets its in-flight requests and streams finish before it is stopped: Serve's "
        "graceful_shutdown_timeout_s (20 s in Ray 2.60), the Ray pods' preStop drain, and their "
        "terminationGracePeriodSeconds (this plus 30 s). A longer stream is cut. See docs/operations.md.",
        900,
        range=Range(30, 3600),
    ),
    ConfigKey(
        "serveReadyTimeoutMinutes",
        "integer",
        "How long `pulumi up` waits for the RayService to be Ready with every Serve application of the new "
        "config RUNNING (a cold start of DeepSeek-R1 takes about 7.5-20 minutes from the model store, up to 41 "
        "from the Hub; see capacity.json); a change that ends in DEPLOY_FAILED fails only after this long.",
        150,
        range=_A_WEEK,
    ),
    ConfigKey(
        "apiKey",
        "string",
        "The API key clients send; set with `pulumi config set --secret llmserve:apiKey ...`. Unset: a "
        "random key is generated and exported as the `api_key` secret output.",
        secret=True,
    ),
    ConfigKey(
        "hfToken",
        "string",
        "Hugging Face token for gated models or higher rate limits; set with "
        "`pulumi config set --secret llmserve:hfToken ...`. Optional.",
        secret=True,
    ),
)

# Secure defaults and capacity settings (sections/secure.py).
SECURE_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "gpuSecureBoot",
        "boolean",
        "Secure boot on GPU nodes (verified boot chain; GKE's NVIDIA drivers and the GPUDirect installers "
        "load signed modules). false is an opt-out for custom unsigned kernel modules.",
        True,
    ),
    ConfigKey(
        "gpuHostMaintenanceInterval",
        "string",
        "Host maintenance interval of GPU nodes: empty leaves it to GKE (as Google's A3 blueprints do); "
        "PERIODIC or AS_NEEDED only when Google Cloud asks for it, since a pool that sets it may not match a "
        "reservation created without it.",
        "",
        choices=HOST_MAINTENANCE_INTERVALS,
    ),
    ConfigKey(
        "networkPolicies",
        "boolean",
        "NetworkPolicies that let only the Ray cluster's own pods reach the Ray ports (plus the KubeRay "
        "operator on the head's dashboard and Serve proxy, and Managed Prometheus on the metrics ports) and "
        "only the ingress path reach the Serve port. false removes them.",
        True,
    ),
    ConfigKey(
        "serveClientNamespaces",
        "array",
        "Namespaces whose pods may call the OpenAI API (Serve port 8000) inside the cluster, besides the "
        "serving namespace itself.",
        [],
    ),
    ConfigKey(
        "serveHostname",
        "string",
        "DNS name of the public HTTPS endpoint when serveExposure is external (a Google-managed certificate "
        "is issued for it); empty otherwise.",
        "",
    ),
    ConfigKey(
        "serveAllowPlainHttp",
        "boolean",
        "Accept plain HTTP on the internal load balancer (serveExposure=internal); external exposure is always HTTPS.",
        False,
    ),
)

# Model weights and the model store (sections/weights.py).
WEIGHT_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "weightSource",
        "string",
        "Default weight source of models that set none: auto (gcsfuse for the 690 GB class, models with "
        "the deepseek-r1 preset; huggingface for the rest), gcsfuse (staged once into the model store, "
        "mounted on every GPU worker), runai-streamer (streamed from the store into GPU memory) or "
        "huggingface (each node downloads at every start).",
        "auto",
        choices=STACK_WEIGHT_SOURCES,
    ),
    ConfigKey(
        "modelStoreBucket",
        "string",
        "GCS bucket of the model store, created when a model uses gcsfuse or runai-streamer; empty "
        "derives <gcp project>-<stack>-models.",
        "",
    ),
    ConfigKey(
        "modelStoreLocation",
        "string",
        "Location of the model store; must be gcp:region (the GPU pool's region). Empty takes gcp:region.",
        "",
    ),
    ConfigKey(
        "modelStoreForceDestroy",
        "boolean",
        "Let `pulumi destroy` delete the model store with its staged weights; refused while "
        "deletionProtection is true.",
        False,
    ),
    ConfigKey(
        "modelStoreSoftDeleteDays",
        "integer",
        "Days Cloud Storage keeps a deleted or replaced object of the model store, billed as stored (soft "
        "delete). 0 turns soft delete off: a replaced 690 GB revision stops costing at once, and staged "
        "weights can be staged again from their source. Google's own default for a new bucket is 7; "
        "1-6 are refused by Google.",
        0,
        range=Range(0, 90, why="Cloud Storage keeps soft-deleted objects at most 90 days"),
    ),
    ConfigKey(
        "rayImageHasRunaiStreamer",
        "boolean",
        "Declare that rayImage contains runai-model-streamer[gcs]; required by weightSource "
        "runai-streamer (the pinned Ray image is not known to contain it).",
        False,
    ),
    ConfigKey(
        "stagingTimeoutMinutes",
        "integer",
        "Deadline of the in-cluster staging Job of a model, its retries included (690 GB takes roughly "
        "10-30 minutes in-region); `pulumi up` waits 10 minutes longer, so that the Job's own failure is "
        "what it reports.",
        180,
        range=_A_WEEK,
    ),
    ConfigKey(
        "s3EndpointUrl",
        "string",
        "Endpoint of an S3-compatible store for s3:// staging sources; empty means AWS S3.",
        "",
    ),
    ConfigKey(
        "s3AccessKeyId",
        "string",
        "Access key id for s3:// staging sources; set with `pulumi config set --secret "
        "llmserve:s3AccessKeyId ...` together with s3SecretAccessKey. Optional (public buckets).",
        secret=True,
    ),
    ConfigKey(
        "s3SecretAccessKey",
        "string",
        "Secret access key for s3:// staging sources; set with `pulumi config set --secret "
        "llmserve:s3SecretAccessKey ...`.",
        secret=True,
    ),
)

# The dashboard's alerts (sections/alerts.py).
ALERT_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "alertNotificationChannel",
        "string",
        "Cloud Monitoring notification channel the alert policies notify, as "
        "projects/<project-id>/notificationChannels/<id>; empty: alerts show in the console only.",
        "",
    ),
    ConfigKey(
        "alertNotReadyMinutes",
        "integer",
        "Minutes the RayService may be not Ready, or an always-on model without a healthy replica, "
        "before alerting (1-1440).",
        10,
        range=_ALERT_MINUTES,
    ),
    ConfigKey(
        "alertTtftP95Seconds",
        "integer",
        "Alert when a model's p95 time to first token over 10 minutes exceeds this many seconds (1-3600).",
        10,
        range=Range(1, 3600),
    ),
    ConfigKey(
        "alertKvCacheUsagePercent",
        "integer",
        "Alert when a model's KV-cache usage stays above this percentage (50-100) for alertKvCacheMinutes.",
        95,
        range=Range(50, 100),
    ),
    ConfigKey(
        "alertKvCacheMinutes",
        "integer",
        "Minutes the KV cache must stay above alertKvCacheUsagePercent before alerting (1-1440).",
        10,
        range=_ALERT_MINUTES,
    ),
    ConfigKey(
        "alertWedgedMinutes",
        "integer",
        "Alert when a model has waiting requests but generates no token for this many minutes (1-1440).",
        5,
        range=_ALERT_MINUTES,
    ),
)

# (section title, its keys), in the order of Pulumi.yaml and the reference.
KEY_SECTIONS: tuple[tuple[str, tuple[ConfigKey, ...]], ...] = (
    ("GPU node pool", GPU_POOL_KEYS),
    ("Cluster", CLUSTER_KEYS),
    ("Address ranges", ADDRESS_KEYS),
    ("Serving", SERVING_KEYS),
    ("Secure defaults and capacity", SECURE_KEYS),
    ("Model weights", WEIGHT_KEYS),
    ("Alerts", ALERT_KEYS),
    ("GCS fault tolerance", GCS_FT_KEYS),
    ("Tenants and admission", TENANT_KEYS),
)
CONFIG_KEYS: tuple[ConfigKey, ...] = tuple(key for _, keys in KEY_SECTIONS for key in keys)
CONFIG_KEYS_BY_NAME: Mapping[str, ConfigKey] = MappingProxyType({key.name: key for key in CONFIG_KEYS})
SECRET_KEY_NAMES = frozenset(key.name for key in CONFIG_KEYS if key.secret)
