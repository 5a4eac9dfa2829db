"""The GPU NICs as Kubernetes sees them: one cluster-scoped `GKENetworkParamSet` + `Network` per NIC, and
the names pods use for them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names' type only: rendering runs without Pulumi
    import pulumi

GKE_NETWORKING_GROUP = "networking.gke.io"
GKE_NETWORKING_API_VERSION = f"{GKE_NETWORKING_GROUP}/v1"


def network_name(index: int) -> str:
    """Kubernetes `Network` (and `GKENetworkParamSet`) name for GPU NIC number `index`, 1-based: "vpc1"."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 1:
        raise ValueError(f"GPU NIC index must be an integer >= 1 (eth0 is the primary network), got {index!r}")
    return f"vpc{index}"


def interface_name(index: int) -> str:
    """In-pod interface name for GPU NIC number `index`, 1-based: "eth1"."""
    network_name(index)  # same validation
    return f"eth{index}"


def gpu_interface_names(nic_count: int) -> list[str]:
    """eth1..eth{nic_count}: the GPU NICs as the pod sees them, in NIC order."""
    return [interface_name(i) for i in range(1, nic_count + 1)]


def gpu_network_objects(
    index: int, vpc_name: pulumi.Input[str], subnet_name: pulumi.Input[str]
) -> list[dict[str, Any]]:
    """The cluster-scoped `GKENetworkParamSet` and `Network` for GPU NIC number `index` (1-based).

    `vpc_name` and `subnet_name` are the *names* (not self-links) of that NIC's VPC and subnet; they are
    placed into `spec` untouched, so Pulumi Outputs work. GKE rejects a VPC or subnet used by two
    Device-mode networks, and the cluster's own VPC, so each index needs its own pair.

    Returns `[param_set, network]`, both named `network_name(index)`; the Network must be created after the
    param set it references, and both only once the cluster has multi-networking enabled.
    """
    name = network_name(index)
    param_set = {
        "apiVersion": GKE_NETWORKING_API_VERSION,
        "kind": "GKENetworkParamSet",
        "metadata": {"name": name},
        # NetDevice moves the whole gVNIC into the pod's network namespace, which is what TCPX(O) needs.
        "spec": {"vpc": vpc_name, "vpcSubnet": subnet_name, "deviceMode": "NetDevice"},
    }
    network = {
        "apiVersion": GKE_NETWORKING_API_VERSION,
        "kind": "Network",
        "metadata": {"name": name},
        "spec": {
            "type": "Device",
            "parametersRef": {"group": GKE_NETWORKING_GROUP, "kind": "GKENetworkParamSet", "name": name},
        },
    }
    return [param_set, network]
