"""The address ranges: the primary subnet, the pods' and services' secondary ranges, the control plane's /28 and
the range the GPU NIC subnets are cut from."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from infra.catalog import GPU_SUBNET_SLOTS
from infra.config import gcp_rules
from infra.config.settings import GpuPoolConfig, NetworkConfig
from infra.config.stackfiles import PROJECT
from infra.config.values import ValueReader

RANGE_KEYS = ("primarySubnetCidr", "podsCidr", "servicesCidr", "masterCidr", "gpuNetworksCidr")
Ranges = dict[str, ipaddress.IPv4Network | None]


def read_ranges(read: ValueReader) -> Ranges:
    """The address ranges, each None when bad; sizes checked on their own, overlaps between the good ones."""
    ranges = {name: read.cidr(name) for name in RANGE_KEYS}
    master, gpu = ranges["masterCidr"], ranges["gpuNetworksCidr"]
    smallest = gcp_rules.SMALLEST_SUBNET_PREFIX
    if master is not None and master.prefixlen != 28:
        read.problem(f"{PROJECT}:masterCidr: GKE needs a /28 for the control plane; found {master}")
        ranges["masterCidr"] = None
    if gpu is not None and gpu.prefixlen > smallest - 3:
        read.problem(
            f"{PROJECT}:gpuNetworksCidr: too small to split into {GPU_SUBNET_SLOTS} GPU subnets of at "
            f"least /{smallest} (Google's smallest subnet); found {gpu}; allowed: "
            f"/{smallest - 3} or larger (/16 recommended)"
        )
        ranges["gpuNetworksCidr"] = None
    for name in ("primarySubnetCidr", "podsCidr", "servicesCidr"):
        network = ranges[name]
        if network is not None and network.prefixlen > smallest:
            read.problem(
                f"{PROJECT}:{name}: Google's smallest subnet range is a /{smallest}; "
                f"found {network}; allowed: /{smallest} or larger"
            )
            ranges[name] = None
    good = [(name, network) for name in RANGE_KEYS if (network := ranges[name]) is not None]
    for i, (first, first_network) in enumerate(good):
        for second, second_network in good[i + 1 :]:
            if first_network.overlaps(second_network):
                read.problem(
                    f"{PROJECT}:{first} and {PROJECT}:{second}: ranges overlap; found {first_network} and "
                    f"{second_network}; allowed: disjoint ranges"
                )
    return ranges


def read_network(
    region: str | None, ranges: Mapping[str, ipaddress.IPv4Network | None], pool: GpuPoolConfig | None
) -> NetworkConfig | None:
    """The network's settings from the ranges and the GPU pool's NIC count; None when any of them is bad."""
    networks = {name: network for name, network in ranges.items() if network is not None}
    if region is None or pool is None or len(networks) < len(ranges):
        return None
    slots = list(networks["gpuNetworksCidr"].subnets(prefixlen_diff=3))[:GPU_SUBNET_SLOTS]
    return NetworkConfig(
        region=region,
        primary_subnet_cidr=str(networks["primarySubnetCidr"]),
        pods_cidr=str(networks["podsCidr"]),
        services_cidr=str(networks["servicesCidr"]),
        gpu_subnet_cidrs=tuple(str(slot) for slot in slots[: pool.gpu_network_count]),
    )
