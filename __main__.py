"""The Pulumi program: wiring only. Each concern lives in its own component under infra/."""

import pulumi

from infra.catalog import GpuDirect
from infra.cluster import Cluster, ClusterArgs
from infra.config import load_stack_config
from infra.gpu_pool import GpuNodePool, GpuPoolArgs
from infra.gpudirect import GpuDirectObjects, GpuDirectArgs
from infra.network import Network, NetworkArgs

config = load_stack_config()
for warning in config.warnings:
    pulumi.log.warn(warning)

network = Network("llm-net", NetworkArgs(settings=config.network))
cluster = Cluster("llm-gke", ClusterArgs(
    settings=config.cluster,
    gcp_project=config.gcp_project,
    stack=config.stack,
    network=network.vpc.id,
    subnetwork=network.subnet.id,
))
gpu_pool = GpuNodePool("llm-gpu", GpuPoolArgs(
    settings=config.gpu_pool,
    region=config.region,
    cluster_id=cluster.cluster.id,
    cluster_location=config.cluster.location,
    node_service_account=cluster.node_service_account.email,
    gpu_networks=network.gpu_networks,
))
if config.gpu_pool.gpudirect is not GpuDirect.NONE:
    GpuDirectObjects("llm-gpudirect", GpuDirectArgs(
        flavour=config.gpu_pool.gpudirect,
        gpu_networks=network.gpu_networks,
    ), pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster.cluster]))

pulumi.export("cluster_name", cluster.cluster.name)
pulumi.export("cluster_location", config.cluster.location)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("get_credentials_command", cluster.cluster.name.apply(
    lambda name: f"gcloud container clusters get-credentials {name} --location {config.cluster.location} "
                 f"--project {config.gcp_project}"))
pulumi.export("gpu_node_pool", gpu_pool.node_pool.name)
pulumi.export("gpudirect", config.gpu_pool.gpudirect.value)
