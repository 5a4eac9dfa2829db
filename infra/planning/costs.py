"""What a stack costs per hour at list price, and how many GPU-hours it burns per hour.

The prices are the one table in infra/planning/prices.py (the SkyPilot catalog's rows, with their source and
date), and infra/planning/memorystore_prices.py for the Memorystore instance behind GCS fault tolerance (billed
around the clock, idle or not, so it is in both the idle and the largest figure); the GKE fee is from
cloud.google.com/kubernetes-engine/pricing. Not included: Cloud NAT and its traffic, boot and bundled local-SSD
disks (≈ $0.66/h per A3 node, unverified rate), GCS storage and egress, committed-use discounts. A reservation
is billed at the on-demand rate whether its VMs run or not, so a pool that consumes one costs its reserved size
around the clock; the table assumes the reservation is exactly the pool's largest size. Flex-start and queued
provisioning are priced at the on-demand list price (their discounts are not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.catalog import MachineProfile
from infra.planning.memorystore_prices import MEMORYSTORE_PRICE_SOURCE, MEMORYSTORE_PRICES_AS_OF, memorystore_hourly_usd
from infra.planning.prices import PRICE_SOURCE, PRICES, PRICES_AS_OF, MachinePrice

GKE_CLUSTER_FEE_PER_HOUR = 0.10  # per cluster, any topology; the free tier's credit is per billing account


def capacity_mode(*, reservation: bool, spot: bool, flex_start: bool) -> str:
    """How the GPU pool gets its VMs: reservation, spot, flex-start or on-demand (queued provisioning is refused
    by config validation)."""
    if reservation:
        return "reservation"
    if spot:
        return "spot"
    if flex_start:
        return "flex-start"
    return "on-demand"


@dataclass(frozen=True)
class StackShape:
    """What a stack's hourly cost depends on: its region, GPU machines and how many run, and its system pool."""

    region: str
    gpu_machine: MachineProfile
    capacity_mode: str  # see `capacity_mode`
    idle_gpu_nodes: int  # the GPU nodes kept when idle (infra/planning/sizing.py `idle_gpu_nodes`)
    max_gpu_nodes: int
    system_machine_type: str
    system_node_count: int
    zonal_cluster: bool
    gcs_redis_tier: str | None = None  # the Memorystore tier behind GCS fault tolerance; None: off
    gcs_redis_size_gb: int = 0


def stack_cost(shape: StackShape) -> dict:
    """GPU-hours per hour and USD per hour of a stack, idle (the GPU nodes it always keeps) and at the pool's
    ceiling, with the table's source and what it leaves out; the `cost` part of capacity.json."""
    machine, region, mode = shape.gpu_machine, shape.region, shape.capacity_mode
    idle_nodes, max_nodes = shape.idle_gpu_nodes, shape.max_gpu_nodes
    gpu_price = PRICES.get((machine.machine_type, region))
    system_price = PRICES.get((shape.system_machine_type, region))
    redis = _gcs_redis_cost(shape)
    hourly_usd = _hourly_usd(shape, gpu_price, system_price, redis["usd_per_hour"] if redis else 0.0)
    notes = _cost_notes(shape, gpu_price, system_price)
    if redis is not None and redis["usd_per_hour"] is None:
        notes.append(
            f"no Memorystore price for {shape.gcs_redis_tier} in {region} in infra/planning/memorystore_prices.py"
        )
    if mode == "reservation":
        reserved = hourly_usd["on_demand"]["max"]  # the largest pool, billed whether the VMs run or not
        hourly_usd["reservation"] = {"idle": reserved, "max": reserved}
    return {
        "currency": "USD",
        "prices": {"source": PRICE_SOURCE, "as_of": PRICES_AS_OF},
        "region": region,
        "capacity_mode": mode,
        "gpu_machine": machine.machine_type,
        "gpus_per_node": machine.gpu_count,
        "gpu_nodes": {"idle": idle_nodes, "max": max_nodes},
        "gpu_hours_per_hour": {"idle": idle_nodes * machine.gpu_count, "max": max_nodes * machine.gpu_count},
        "system_nodes": {"machine": shape.system_machine_type, "count": shape.system_node_count},
        "gke_fee_per_hour": GKE_CLUSTER_FEE_PER_HOUR,
        "hourly_usd": hourly_usd,
        "gcs_fault_tolerance": redis,
        "excludes": "Cloud NAT and traffic, disks and bundled local SSD, GCS, egress, committed-use discounts",
        "notes": notes,
    }


def _gcs_redis_cost(shape: StackShape) -> dict | None:
    """The Memorystore instance behind GCS fault tolerance, priced; None when it is off."""
    if shape.gcs_redis_tier is None:
        return None
    return {
        "service": "Memorystore for Redis",
        "tier": shape.gcs_redis_tier,
        "size_gb": shape.gcs_redis_size_gb,
        "usd_per_hour": memorystore_hourly_usd(shape.gcs_redis_tier, shape.region, shape.gcs_redis_size_gb),
        "prices": {"source": MEMORYSTORE_PRICE_SOURCE, "as_of": MEMORYSTORE_PRICES_AS_OF},
    }


def _hourly_usd(
    shape: StackShape, gpu_price: MachinePrice | None, system_price: MachinePrice | None, redis: float | None
) -> dict[str, dict[str, float | None]]:
    def hourly(gpu_rate: float | None, system_rate: float | None, gpu_nodes: int) -> float | None:
        if gpu_rate is None or system_rate is None or redis is None:
            return None
        fixed = shape.system_node_count * system_rate + GKE_CLUSTER_FEE_PER_HOUR + redis
        return round(gpu_nodes * gpu_rate + fixed, 2)

    on_demand_gpu = gpu_price.on_demand if gpu_price else None
    on_demand_system = system_price.on_demand if system_price else None
    spot_gpu = gpu_price.spot if gpu_price else None
    return {
        "on_demand": {
            "idle": hourly(on_demand_gpu, on_demand_system, shape.idle_gpu_nodes),
            "max": hourly(on_demand_gpu, on_demand_system, shape.max_gpu_nodes),
        },
        "spot": {
            "idle": hourly(spot_gpu, on_demand_system, shape.idle_gpu_nodes),
            "max": hourly(spot_gpu, on_demand_system, shape.max_gpu_nodes),
        },
    }


def _cost_notes(shape: StackShape, gpu_price: MachinePrice | None, system_price: MachinePrice | None) -> list[str]:
    machine_type, region, mode = shape.gpu_machine.machine_type, shape.region, shape.capacity_mode
    notes = []
    if gpu_price is None:
        notes.append(f"no list price for {machine_type} in {region} in infra/planning/prices.py")
    if system_price is None:
        notes.append(f"no list price for {shape.system_machine_type} in {region} in infra/planning/prices.py")
    if gpu_price is not None and gpu_price.withheld:
        notes.append(f"no on-demand price for {machine_type} in {region}: {gpu_price.withheld}")
    if gpu_price is not None and gpu_price.spot is None:
        notes.append(f"no Spot price for {machine_type} in {region} in infra/planning/prices.py")
    if shape.zonal_cluster:
        notes.append(
            "a zonal cluster: the GKE free tier ($74.40 a month per billing account) covers one zonal cluster's fee"
        )
    if mode == "flex-start":
        notes.append(
            f"{mode} VMs are billed at Dynamic Workload Scheduler prices (GKE's flex-start page: discounts "
            f"up to 53% on vCPUs and GPUs); shown at the on-demand list price, an upper bound"
        )
    return notes
