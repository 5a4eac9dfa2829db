"""The GPU node pool: machine and accelerators from the profile table, GPU NICs, compact placement, capacity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.catalog import GPU_POOL_LABELS, GPU_TAINT_KEY
from infra.components.cluster import CLOUD_PLATFORM_SCOPE
from infra.components.network import GpuNetwork
from infra.config.settings import GpuPoolConfig

RESERVATION_NAME_KEY = "compute.googleapis.com/reservation-name"


@dataclass(frozen=True)
class GpuPoolArgs:
    settings: GpuPoolConfig
    region: str
    cluster_id: pulumi.Input[str]
    cluster_location: str
    node_service_account: pulumi.Input[str]
    gpu_networks: Sequence[GpuNetwork]
    secure_boot: bool = True  # llmserve:gpuSecureBoot
    host_maintenance_interval: str | None = None  # llmserve:gpuHostMaintenanceInterval; None leaves it to GKE


class GpuNodePool(pulumi.ComponentResource):
    """An H100 (or L4) node pool sized and placed for multi-node model replicas.

    Upgrades use surge 0 / unavailable 1: there is never a spare 8-GPU machine to surge onto, and a surge
    request would sit in a stockout. Compact placement is a named COLLOCATED resource policy, not GKE's
    implicit one, so that it can be inspected and reused; it sets no `vm_count`, which would force every VM
    to be created at once and break autoscaling.
    """

    node_pool: gcp.container.NodePool
    placement_policy: gcp.compute.ResourcePolicy | None

    def __init__(self, name: str, args: GpuPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:gke:GpuNodePool", name, None, opts)
        settings = args.settings
        self.placement_policy = self._placement_policy(name, args.region) if settings.compact_placement else None
        self.node_pool = gcp.container.NodePool(
            name,
            cluster=args.cluster_id,
            location=args.cluster_location,
            node_locations=list(settings.zones),
            node_count=None if settings.autoscaling else settings.node_count,
            initial_node_count=settings.min_nodes if settings.autoscaling else None,
            autoscaling=_autoscaling(settings),
            management=gcp.container.NodePoolManagementArgs(
                auto_repair=not settings.flex_start,  # flex-start VMs cannot be repaired, only released
                auto_upgrade=True,
            ),
            upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(
                strategy="SURGE", max_surge=0, max_unavailable=1
            ),
            placement_policy=_compact_placement(self.placement_policy),
            network_config=_gpu_nic_networks(args.gpu_networks),
            node_config=_node_config(args),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"node_pool": self.node_pool.name})

    def _placement_policy(self, name: str, region: str) -> gcp.compute.ResourcePolicy:
        return gcp.compute.ResourcePolicy(
            f"{name}-placement",
            region=region,
            group_placement_policy=gcp.compute.ResourcePolicyGroupPlacementPolicyArgs(collocation="COLLOCATED"),
            opts=pulumi.ResourceOptions(parent=self),
        )


# --- provisioning: how many nodes, and from which capacity ---------------------------------------------------


def _autoscaling(settings: GpuPoolConfig) -> gcp.container.NodePoolAutoscalingArgs | None:
    if not settings.autoscaling:
        return None
    return gcp.container.NodePoolAutoscalingArgs(
        total_min_node_count=settings.min_nodes,
        total_max_node_count=settings.max_nodes,
        location_policy="ANY",  # take capacity wherever the pool's zones have it
    )


def _reservation_affinity(settings: GpuPoolConfig) -> gcp.container.NodePoolNodeConfigReservationAffinityArgs:
    if settings.reservation:
        return gcp.container.NodePoolNodeConfigReservationAffinityArgs(
            consume_reservation_type="SPECIFIC_RESERVATION", key=RESERVATION_NAME_KEY, values=[settings.reservation]
        )
    if settings.spot or settings.flex_start:
        # These modes refuse to run with any reservation affinity other than none.
        return gcp.container.NodePoolNodeConfigReservationAffinityArgs(consume_reservation_type="NO_RESERVATION")
    return gcp.container.NodePoolNodeConfigReservationAffinityArgs(consume_reservation_type="ANY_RESERVATION")


# --- placement and the GPU NICs ------------------------------------------------------------------------------


def _compact_placement(policy: gcp.compute.ResourcePolicy | None) -> gcp.container.NodePoolPlacementPolicyArgs | None:
    if policy is None:
        return None
    return gcp.container.NodePoolPlacementPolicyArgs(type="COMPACT", policy_name=policy.name)


def _gpu_nic_networks(gpu_networks: Sequence[GpuNetwork]) -> gcp.container.NodePoolNetworkConfigArgs | None:
    """One additional node network per GPU NIC (GPUDirect); none on machines without GPU NICs."""
    if not gpu_networks:
        return None
    return gcp.container.NodePoolNetworkConfigArgs(
        additional_node_network_configs=[
            gcp.container.NodePoolNetworkConfigAdditionalNodeNetworkConfigArgs(
                network=network.vpc_name, subnetwork=network.subnet_name
            )
            for network in gpu_networks
        ]
    )


# --- the nodes themselves ------------------------------------------------------------------------------------


def _node_config(args: GpuPoolArgs) -> gcp.container.NodePoolNodeConfigArgs:
    settings = args.settings
    machine = settings.machine
    return gcp.container.NodePoolNodeConfigArgs(
        machine_type=machine.machine_type,
        image_type="COS_CONTAINERD",
        guest_accelerators=[
            gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                type=machine.gke_accelerator,
                count=machine.gpu_count,
                gpu_driver_installation_config=(
                    gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                        gpu_driver_version=settings.driver_version
                    )
                ),
            )
        ],
        gvnic=gcp.container.NodePoolNodeConfigGvnicArgs(enabled=True),
        # Container images and the model weight cache live on local NVMe, not the boot disk.
        ephemeral_storage_local_ssd_config=(
            gcp.container.NodePoolNodeConfigEphemeralStorageLocalSsdConfigArgs(local_ssd_count=machine.local_ssd_count)
        ),
        reservation_affinity=_reservation_affinity(settings),
        # Unset unless asked for: Google's A3 blueprints leave it empty, and a pool that asks for PERIODIC
        # may not match a reservation created without it (cluster-toolkit PR #2420).
        host_maintenance_policy=gcp.container.NodePoolNodeConfigHostMaintenancePolicyArgs(
            maintenance_interval=args.host_maintenance_interval
        )
        if args.host_maintenance_interval
        else None,
        spot=settings.spot or None,
        flex_start=settings.flex_start or None,
        # GKE adds this taint to GPU pools anyway; declaring it keeps Pulumi's view equal to GKE's.
        taints=[gcp.container.NodePoolNodeConfigTaintArgs(key=GPU_TAINT_KEY, value="present", effect="NO_SCHEDULE")],
        workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
        # Secure boot on by default (llmserve:gpuSecureBoot): cluster-toolkit's gke-node-pool keeps it on
        # ("unless custom kernel modules need to be loaded") and its gke-a3-megagpu example runs the same
        # TCPXO installer, whose `modprobe import-helper` was the reason it used to be off, with it on.
        shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
            enable_secure_boot=args.secure_boot, enable_integrity_monitoring=True
        ),
        service_account=args.node_service_account,
        oauth_scopes=[CLOUD_PLATFORM_SCOPE],
        labels=dict(GPU_POOL_LABELS),
    )
