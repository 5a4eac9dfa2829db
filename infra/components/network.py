"""The VPCs: a primary network for nodes, pods and services, and one network per GPU NIC for GPUDirect."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.catalog import GPU_NETWORK_MTU
from infra.config.settings import NetworkConfig

PODS_RANGE_NAME = "pods"
SERVICES_RANGE_NAME = "services"


@dataclass(frozen=True)
class NetworkArgs:
    settings: NetworkConfig


@dataclass(frozen=True)
class GpuNetwork:
    """One GPU NIC's VPC and subnet, by the short names that node pools and GKENetworkParamSets expect."""

    vpc_name: pulumi.Output[str]
    subnet_name: pulumi.Output[str]


class Network(pulumi.ComponentResource):
    """Primary VPC + subnet (with pod and service ranges), Cloud NAT for private nodes, and the GPU NIC VPCs.

    The GPU VPCs are separate from the primary VPC and from each other because GKE rejects a Device-mode
    network that shares a VPC or subnet with another, and each gets an internal allow-all firewall rule:
    NCCL opens arbitrary TCP ports between the GPU NICs of different nodes.
    """

    vpc: gcp.compute.Network
    subnet: gcp.compute.Subnetwork
    gpu_networks: list[GpuNetwork]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:gcp:Network", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)

        self.vpc = gcp.compute.Network(
            f"{name}-vpc",
            auto_create_subnetworks=False,
            mtu=GPU_NETWORK_MTU,  # pipeline-parallel activations cross eth0; jumbo frames halve the packet rate
            opts=child,
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            network=self.vpc.id,
            region=settings.region,
            ip_cidr_range=settings.primary_subnet_cidr,
            private_ip_google_access=True,  # private nodes still reach GCS, Artifact Registry and the GKE APIs
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=PODS_RANGE_NAME, ip_cidr_range=settings.pods_cidr
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=SERVICES_RANGE_NAME, ip_cidr_range=settings.services_cidr
                ),
            ],
            opts=child,
        )
        router = gcp.compute.Router(f"{name}-router", network=self.vpc.id, region=settings.region, opts=child)
        # Private nodes have no external address; images from Docker Hub and Hugging Face downloads need NAT.
        gcp.compute.RouterNat(
            f"{name}-nat",
            router=router.name,
            region=settings.region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )

        self.gpu_networks = [
            self._gpu_network(f"{name}-gpu{index}", settings.region, cidr, child)
            for index, cidr in enumerate(settings.gpu_subnet_cidrs, start=1)
        ]
        self.register_outputs(
            {
                "vpc": self.vpc.name,
                "subnet": self.subnet.name,
                "gpu_vpcs": [network.vpc_name for network in self.gpu_networks],
            }
        )

    @staticmethod
    def _gpu_network(name: str, region: str, cidr: str, child: pulumi.ResourceOptions) -> GpuNetwork:
        vpc = gcp.compute.Network(name, auto_create_subnetworks=False, mtu=GPU_NETWORK_MTU, opts=child)
        subnet = gcp.compute.Subnetwork(f"{name}-subnet", network=vpc.id, region=region, ip_cidr_range=cidr, opts=child)
        gcp.compute.Firewall(
            f"{name}-internal",
            network=vpc.name,
            direction="INGRESS",
            source_ranges=[cidr],
            allows=[
                gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["0-65535"]),
                gcp.compute.FirewallAllowArgs(protocol="udp", ports=["0-65535"]),
                gcp.compute.FirewallAllowArgs(protocol="icmp"),
            ],
            opts=child,
        )
        return GpuNetwork(vpc_name=vpc.name, subnet_name=subnet.name)
