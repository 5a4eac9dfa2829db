"""The GKE cluster, its CPU system pool, the node service account, and a Kubernetes provider for it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from infra.catalog import SYSTEM_POOL_LABELS
from infra.components.network import PODS_RANGE_NAME, SERVICES_RANGE_NAME
from infra.components.resources import grant_name, service_account_member
from infra.config.gcp_rules import stack_slug
from infra.config.settings import ClusterConfig
from infra.render.kubeconfig import render_kubeconfig

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Least privilege for nodes: GKE's own role for logs, metrics and autoscaler signals, plus image pulls.
NODE_SERVICE_ACCOUNT_ROLES = ("roles/container.defaultNodeServiceAccount", "roles/artifactregistry.reader")
MONITORED_COMPONENTS = ("SYSTEM_COMPONENTS", "POD", "DAEMONSET", "DEPLOYMENT", "STATEFULSET", "DCGM")


@dataclass(frozen=True)
class ClusterArgs:
    settings: ClusterConfig
    gcp_project: str
    stack: str
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]


def node_service_account_id(stack: str) -> str:
    """A service-account id (6-30 characters, lowercase) that is unique per stack within a project."""
    return f"gke-nodes-{stack_slug(stack)}"[:30].rstrip("-")


class Cluster(pulumi.ComponentResource):
    """A private, VPC-native GKE Standard cluster ready for multi-NIC GPU nodes.

    Multi-networking and Dataplane V2 cannot be switched on after creation, so they are always on. The default
    node pool is removed; a small CPU system pool takes the Ray head and controllers, which do not tolerate the
    GPU taint. Node auto-upgrades stay on (release channels require them) but a NO_MINOR_OR_NODE_UPGRADES
    exclusion keeps GKE from recreating GPU nodes under a running model.
    """

    cluster: gcp.container.Cluster
    system_pool: gcp.container.NodePool
    node_service_account: gcp.serviceaccount.Account
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:gke:Cluster", name, None, opts)
        self.node_service_account, grants = self._node_identity(name, args)
        self.cluster = self._cluster(name, args, grants)
        self.system_pool = self._system_pool(name, args.settings)
        self.kubeconfig, self.provider = self._kubernetes_provider(name)
        self.register_outputs(
            {"cluster_name": self.cluster.name, "endpoint": self.cluster.endpoint, "kubeconfig": self.kubeconfig}
        )

    def _node_identity(
        self, name: str, args: ClusterArgs
    ) -> tuple[gcp.serviceaccount.Account, list[gcp.projects.IAMMember]]:
        """The nodes' own service account and its project roles (the cluster waits for the grants)."""
        child = pulumi.ResourceOptions(parent=self)
        account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=node_service_account_id(args.stack),
            display_name=f"GKE nodes of llmserve stack {args.stack}",
            opts=child,
        )
        member = service_account_member(account.email)
        grants = [
            gcp.projects.IAMMember(
                grant_name(f"{name}-nodes", role), project=args.gcp_project, role=role, member=member, opts=child
            )
            for role in NODE_SERVICE_ACCOUNT_ROLES
        ]
        return account, grants

    def _cluster(self, name: str, args: ClusterArgs, grants: list[gcp.projects.IAMMember]) -> gcp.container.Cluster:
        settings = args.settings
        return gcp.container.Cluster(
            name,
            location=settings.location,
            node_locations=_extra_node_zones(settings),
            network=args.network,
            subnetwork=args.subnetwork,
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=settings.deletion_protection,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=PODS_RANGE_NAME, services_secondary_range_name=SERVICES_RANGE_NAME
            ),
            datapath_provider="ADVANCED_DATAPATH",
            enable_multi_networking=True,
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                # The public endpoint stays, fenced by authorized networks: `pulumi up` applies the Kubernetes
                # objects through it.
                enable_private_endpoint=False,
                master_ipv4_cidr_block=settings.master_cidr,
            ),
            master_authorized_networks_config=_authorized_networks(settings),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{args.gcp_project}.svc.id.goog"
            ),
            addons_config=_addons(),
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                enable_components=list(MONITORED_COMPONENTS),
                managed_prometheus=gcp.container.ClusterMonitoringConfigManagedPrometheusArgs(enabled=True),
            ),
            enable_shielded_nodes=True,
            # The Gateway API (GKE's controller and CRDs) for the HTTPS endpoint of serveExposure=external.
            gateway_api_config=gcp.container.ClusterGatewayApiConfigArgs(channel="CHANNEL_STANDARD"),
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=settings.release_channel),
            min_master_version=settings.kubernetes_version,
            maintenance_policy=_maintenance_policy(settings),
            opts=pulumi.ResourceOptions(parent=self, depends_on=grants),
        )

    def _system_pool(self, name: str, settings: ClusterConfig) -> gcp.container.NodePool:
        """The small CPU pool for the Ray head and the controllers, in the first of the node zones."""
        return gcp.container.NodePool(
            f"{name}-system",
            cluster=self.cluster.id,
            location=settings.location,
            node_locations=list(settings.node_zones[:1]) if settings.location != settings.node_zones[0] else None,
            node_count=settings.system_node_count,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=settings.system_machine_type,
                image_type="COS_CONTAINERD",
                gvnic=gcp.container.NodePoolNodeConfigGvnicArgs(enabled=True),
                service_account=self.node_service_account.email,
                oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
                labels=dict(SYSTEM_POOL_LABELS),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _kubernetes_provider(self, name: str) -> tuple[pulumi.Output[str], k8s.Provider]:
        kubeconfig = pulumi.Output.all(self.cluster.name, self.cluster.endpoint, self.cluster.master_auth).apply(
            lambda values: render_kubeconfig(values[0], values[1], values[2]["cluster_ca_certificate"])
        )
        provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig,
            # Without it the provider replaces a Secret whose data changes (pulumi-kubernetes
            # provider/pkg/provider/diff.go, `forceNewProperties`): every API-key rotation would delete the
            # Secret and create it again, and a Ray pod starting in that gap could not mount its keys. With it
            # the Secret is updated in place and the kubelet refreshes the mounted file. Turning it on is an
            # in-place update of the provider (provider.go `DiffConfig` replaces only on a new cluster).
            enable_secret_mutable=True,
            # Objects such as the GPU network CRs must wait for the system pool: their controllers run there.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_pool]),
        )
        return kubeconfig, provider


def _addons() -> gcp.container.ClusterAddonsConfigArgs:
    """The CSI drivers for the GCS FUSE weight volumes and persistent disks."""
    return gcp.container.ClusterAddonsConfigArgs(
        gcs_fuse_csi_driver_config=gcp.container.ClusterAddonsConfigGcsFuseCsiDriverConfigArgs(enabled=True),
        gce_persistent_disk_csi_driver_config=(
            gcp.container.ClusterAddonsConfigGcePersistentDiskCsiDriverConfigArgs(enabled=True)
        ),
    )


def _authorized_networks(settings: ClusterConfig) -> gcp.container.ClusterMasterAuthorizedNetworksConfigArgs:
    return gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
        cidr_blocks=[
            gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                cidr_block=cidr, display_name=f"authorized-{index}"
            )
            for index, cidr in enumerate(settings.master_authorized_networks)
        ],
        gcp_public_cidrs_access_enabled=False,
    )


def _extra_node_zones(settings: ClusterConfig) -> list[str] | None:
    """Zones for nodes besides the cluster's own location.

    A regional cluster would otherwise spread every pool over three zones, so nodes stay in the GPU zones.
    A zonal cluster lists only the other zones (GKE wants the cluster's own zone left out).
    """
    if settings.location in settings.node_zones:
        return [zone for zone in settings.node_zones if zone != settings.location] or None
    return list(settings.node_zones)


def _maintenance_policy(settings: ClusterConfig) -> gcp.container.ClusterMaintenancePolicyArgs:
    exclusions = []
    if settings.node_upgrade_freeze_start:
        exclusions.append(
            gcp.container.ClusterMaintenancePolicyMaintenanceExclusionArgs(
                exclusion_name="no-minor-or-node-upgrades",
                start_time=settings.node_upgrade_freeze_start,
                exclusion_options=gcp.container.ClusterMaintenancePolicyMaintenanceExclusionExclusionOptionsArgs(
                    scope="NO_MINOR_OR_NODE_UPGRADES", end_time_behavior="UNTIL_END_OF_SUPPORT"
                ),
            )
        )
    return gcp.container.ClusterMaintenancePolicyArgs(
        daily_maintenance_window=gcp.container.ClusterMaintenancePolicyDailyMaintenanceWindowArgs(
            start_time=settings.maintenance_window_start
        ),
        maintenance_exclusions=exclusions or None,
    )
