"""GPUDirect on the Kubernetes side: the GPU NIC network objects and the node DaemonSets, as resources.

What the objects contain is decided by the pure renderers in infra/render/gpudirect/; this component only
turns them into Pulumi resources on the cluster's provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra.catalog import GpuDirect
from infra.components.network import GpuNetwork
from infra.components.resources import KubernetesObject
from infra.render.gpudirect.daemonsets import nccl_installer_daemonset, nri_device_injector_daemonset
from infra.render.gpudirect.networks import gpu_network_objects


@dataclass(frozen=True)
class GpuDirectArgs:
    flavour: GpuDirect
    gpu_networks: Sequence[GpuNetwork]


class GpuDirectObjects(pulumi.ComponentResource):
    """One GKENetworkParamSet + Network per GPU NIC, the NRI device injector and the flavour's NCCL installer.

    Pass the cluster's Kubernetes provider in `opts`; children inherit it. Without the network objects pods
    get no eth1..ethN and NCCL silently falls back to eth0, so they are created with the cluster, not later.
    """

    def __init__(self, name: str, args: GpuDirectArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:k8s:GpuDirect", name, None, opts)
        if args.flavour is GpuDirect.NONE:
            raise ValueError("GpuDirectObjects needs a GPUDirect flavour; got none")
        child = pulumi.ResourceOptions(parent=self)

        for index, network in enumerate(args.gpu_networks, start=1):
            for obj in gpu_network_objects(index, network.vpc_name, network.subnet_name):
                KubernetesObject(f"{name}-{obj['kind'].lower()}-{obj['metadata']['name']}", obj, child)
        for suffix, daemonset in (
            ("nri-device-injector", nri_device_injector_daemonset()),
            (f"nccl-{args.flavour.value}-installer", nccl_installer_daemonset(args.flavour)),
        ):
            KubernetesObject(f"{name}-{suffix}", daemonset, child)
        self.register_outputs({})
