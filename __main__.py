"""The Pulumi program: wiring only. Each concern lives in its own component under infra/components/."""

import pulumi

from infra.catalog import GpuDirect
from infra.components.cluster import Cluster, ClusterArgs
from infra.components.exposure import ServingExposure, ServingExposureArgs
from infra.components.gcs_redis import GcsRedis, GcsRedisArgs
from infra.components.gpu_pool import GpuNodePool, GpuPoolArgs
from infra.components.gpudirect import GpuDirectArgs, GpuDirectObjects
from infra.components.kuberay import OPERATOR_NAMESPACE, KubeRayArgs, KubeRayOperator
from infra.components.monitoring import Monitoring, MonitoringArgs, monitoring_settings
from infra.components.network import Network, NetworkArgs
from infra.components.serving import LlmService, LlmServiceArgs
from infra.components.weight_staging import model_weights
from infra.config.stack import load_stack_config
from infra.render.exposure import ExposureSettings, public_base_url
from infra.render.rayservice import RayServiceSettings, serve_urls
from infra.render.tenants import admission_settings

config = load_stack_config()
for warning in config.warnings:
    pulumi.log.warn(warning)
serving = config.serving

network = Network("llm-net", NetworkArgs(settings=config.network))
cluster = Cluster(
    "llm-gke",
    ClusterArgs(
        settings=config.cluster,
        gcp_project=config.gcp_project,
        stack=config.stack,
        network=network.vpc.id,
        subnetwork=network.subnet.id,
    ),
)
on_cluster = pulumi.ResourceOptions(provider=cluster.provider)  # the provider itself waits for the system pool
gpu_pool = GpuNodePool(
    "llm-gpu",
    GpuPoolArgs(
        settings=config.gpu_pool,
        region=config.region,
        cluster_id=cluster.cluster.id,
        cluster_location=config.cluster.location,
        node_service_account=cluster.node_service_account.email,
        gpu_networks=network.gpu_networks,
        secure_boot=config.secure.gpu_secure_boot,
        host_maintenance_interval=config.secure.host_maintenance_interval,
    ),
)
gpudirect = []
if config.gpu_pool.gpudirect is not GpuDirect.NONE:
    gpudirect = [
        GpuDirectObjects(
            "llm-gpudirect",
            GpuDirectArgs(flavour=config.gpu_pool.gpudirect, gpu_networks=network.gpu_networks),
            on_cluster,
        )
    ]
kuberay = KubeRayOperator("llm-kuberay", KubeRayArgs(), on_cluster)

weights, weight_staging, model_store = model_weights("llm", config, hf_token=serving.hf_token is not None)
rayservice = RayServiceSettings(
    name="llm",
    namespace=serving.namespace,
    image=serving.ray_image,
    models=serving.models,
    machine=config.gpu_pool.machine,
    gpudirect=config.gpu_pool.gpudirect,
    max_gpu_nodes=config.gpu_pool.max_gpu_nodes,
    cpu_workers=serving.cpu_workers,
    upgrade=serving.ray_cluster_upgrade,
    exposure=serving.exposure,
    source_ranges=serving.source_ranges,
    api_auth=serving.api_auth,
    weights=weights,
    pipelines=serving.pipelines,
    stream_drain_s=serving.stream_drain_seconds,
    admission=admission_settings(config.tenants),
)
exposure = ServingExposure(
    "llm-exposure",
    ServingExposureArgs(
        settings=ExposureSettings(
            serving=rayservice,
            operator_namespace=OPERATOR_NAMESPACE,
            pods_cidr=config.network.pods_cidr,
            client_namespaces=config.secure.serve_client_namespaces,
            hostname=config.secure.serve_hostname,
        ),
        secure=config.secure,
    ),
)
# GCS fault tolerance: the Ray head's metadata in Memorystore, so a head restart keeps the workers and their models.
gcs_redis = None
if config.gcs_redis is not None:
    gcs_redis = GcsRedis(
        "llm-gcs",
        GcsRedisArgs(
            settings=config.gcs_redis,
            region=config.region,
            network=network.vpc.id,
            stack=config.stack,
            deletion_protection=config.cluster.deletion_protection,
        ),
    )
llm = LlmService(
    "llm-serve",
    LlmServiceArgs(
        settings=rayservice,
        ready_timeout_minutes=serving.ready_timeout_minutes,
        api_key=serving.api_key,
        hf_token=serving.hf_token,
        tenant_keys=config.tenants.keys,
        guard_objects=exposure.guard_objects,
        prerequisites=weight_staging,
        gcs_redis=gcs_redis.connection if gcs_redis is not None else None,
    ),
    pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[kuberay, gpu_pool, *gpudirect])),
)
monitoring = Monitoring(
    "llm-monitoring",
    MonitoringArgs(
        settings=monitoring_settings(config, rayservice),
        gcp_project=config.gcp_project,
        cluster_name=cluster.cluster.name,
        kubernetes_provider=cluster.provider,
        operator_namespace=OPERATOR_NAMESPACE,
        operator=kuberay,
    ),
)

pulumi.export("cluster_name", cluster.cluster.name)
pulumi.export("cluster_location", config.cluster.location)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export(
    "get_credentials_command",
    cluster.cluster.name.apply(
        lambda name: (
            f"gcloud container clusters get-credentials {name} --location {config.cluster.location} "
            f"--project {config.gcp_project}"
        )
    ),
)
pulumi.export("gpu_node_pool", gpu_pool.node_pool.name)
pulumi.export("gpudirect", config.gpu_pool.gpudirect.value)
pulumi.export("models", [model.model_id for model in serving.models])
for output_name, value in serve_urls(rayservice).items():
    pulumi.export(output_name, value)
# One key that clients send, whatever the rotation stage: the newest. Every key the endpoint accepts is in api_keys.
pulumi.export("api_key", llm.current_api_key)
pulumi.export("api_keys", llm.api_key)
if llm.tenant_keys is not None:  # tenant -> the key its clients send (given, or generated)
    pulumi.export("tenant_keys", llm.tenant_keys)
if exposure.address is not None:
    # The address exists for an external exposure, which the config accepts only with serveHostname.
    assert config.secure.serve_hostname is not None
    pulumi.export("public_base_url", public_base_url(config.secure.serve_hostname))
    pulumi.export("public_address", exposure.address.address)
    pulumi.export("dns_records_to_create", exposure.dns_records)
if model_store is not None:
    pulumi.export("model_store_bucket", model_store.bucket.name)
pulumi.export("dashboard", monitoring.dashboard.id)
if gcs_redis is not None:
    pulumi.export("gcs_redis_address", gcs_redis.connection.address)
