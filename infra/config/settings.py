"""The typed stack configuration: frozen settings, one dataclass per section, built once by `infra/config/stack.py`.

Components and renderers read these and nothing else (never `pulumi.Config`). Every value here was checked when it
was read (`infra/config/sections/`); secrets stay opaque (Pulumi outputs) end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from infra.catalog import GpuDirect, MachineProfile
from serve_app.admission import TenantLimits
from serve_app.pipeline_spec import Pipeline
from serve_app.spec import ModelSpec

if TYPE_CHECKING:  # the secrets' type only: the config is read where Pulumi may not be installed (local_run)
    import pulumi

STORE_SOURCES = ("gcsfuse", "runai-streamer")  # the weight sources that read the model store


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
    kubernetes_version: str | None
    maintenance_window_start: str
    node_upgrade_freeze_start: str | None  # None: no exclusion
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
    reservation: str | None
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
    stream_drain_seconds: int = 900  # streamDrainSeconds
    # Secrets stay Pulumi outputs end to end (text in an offline plan or a test); None when the stack does not
    # set them.
    api_key: pulumi.Input[str] | None = None
    hf_token: pulumi.Input[str] | None = None
    # Multi-model pipelines over `models` (infra/config/sections/pipelines.py), none by default.
    pipelines: tuple[Pipeline, ...] = ()


@dataclass(frozen=True)
class SecureSettings:
    """The secure-default switches and capacity choices, already validated."""

    gpu_secure_boot: bool = True
    host_maintenance_interval: str | None = None  # None: leave it to GKE (Google's blueprints do)
    network_policies: bool = True
    serve_client_namespaces: tuple[str, ...] = ()
    serve_hostname: str | None = None
    serve_allow_plain_http: bool = False


@dataclass(frozen=True)
class ModelStoreConfig:
    bucket: str
    location: str
    force_destroy: bool
    soft_delete_days: int = 0  # 0: soft delete off; else 7-90 (Cloud Storage's bounds)


@dataclass(frozen=True)
class ModelWeights:
    """How one model gets its weights."""

    model_id: str
    source: str  # "gcsfuse" | "runai-streamer" | "huggingface"
    origin: str = ""  # what staging copies from: an HF id or s3:// URI; "" when staged by hand or not staged
    revision: str = ""
    prefix: str = ""  # "<model id>/<revision>/" in the store; "" for huggingface

    @property
    def uses_store(self) -> bool:
        return self.source in STORE_SOURCES

    @property
    def staged_by_job(self) -> bool:
        return self.uses_store and bool(self.origin)


@dataclass(frozen=True)
class WeightsConfig:
    models: tuple[ModelWeights, ...]
    store: ModelStoreConfig | None  # None when no model reads the store
    staging_timeout_minutes: int
    s3_endpoint_url: str = ""
    # Pulumi secret outputs (or None): the S3 staging source's keys.
    s3_access_key_id: pulumi.Input[str] | None = None
    s3_secret_access_key: pulumi.Input[str] | None = None

    def for_model(self, model_id: str) -> ModelWeights:
        return next(model for model in self.models if model.model_id == model_id)

    @property
    def staged_models(self) -> tuple[ModelWeights, ...]:
        return tuple(model for model in self.models if model.staged_by_job)

    @property
    def uses_runai(self) -> bool:
        return any(model.source == "runai-streamer" for model in self.models)

    @property
    def s3_credentials(self) -> bool:
        return self.s3_access_key_id is not None


@dataclass(frozen=True)
class AlertThresholds:
    """Validated alert thresholds and the notification channel (from the `alert*` keys)."""

    not_ready_minutes: int = 10
    ttft_p95_seconds: int = 10
    kv_cache_percent: int = 95
    kv_cache_minutes: int = 10
    wedged_minutes: int = 5
    notification_channel: str = ""


@dataclass(frozen=True)
class GcsRedisConfig:
    """The Memorystore for Redis instance behind GCS fault tolerance (the `gcsRedis*` keys); see
    infra/config/gcs_ft_keys.py."""

    tier: str  # "BASIC" | "STANDARD_HA"
    size_gb: int
    redis_version: str


@dataclass(frozen=True)
class TenantsConfig:
    """Tenants (name, limits) sorted by name, their keys (a Pulumi secret, or None), and the overload bound."""

    tenants: tuple[tuple[str, TenantLimits], ...] = ()
    keys: pulumi.Input[str] | None = None
    in_flight_per_seq: float = 2.0
    wait_s: float = 5.0
    throttled_alert_minutes: int = 15


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
    weights: WeightsConfig | None = None  # None only for StackConfigs built by hand in tests
    alerts: AlertThresholds = field(default=AlertThresholds())
    gcs_redis: GcsRedisConfig | None = None  # None: GCS fault tolerance off (`gcsFaultTolerance`)
    tenants: TenantsConfig = field(default=TenantsConfig())
