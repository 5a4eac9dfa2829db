"""The GPU node pool: its zones, its machine, and the pool itself with its placement, provisioning and GPUDirect rules.

The zones and the machine are read on their own, before the pool, because other sections need only them: the
cluster lives in the zones, the models' rules need only the machine and are checked even when the pool's size is bad.
"""

from __future__ import annotations

from dataclasses import dataclass

from configkit import shown
from infra.catalog import (
    LOCATIONS_SOURCE,
    MACHINE_PROFILES,
    MACHINE_ZONES,
    REGION_ZONES,
    GpuDirect,
    MachineProfile,
    zones_offering,
)
from infra.config import gcp_rules
from infra.config.settings import GpuPoolConfig
from infra.config.stackfiles import PROJECT
from infra.config.values import ValueReader, clean

QUEUED_PROVISIONING_REFUSAL = (
    "a queued-provisioning pool gets nodes only through a ProvisioningRequest (autoscaling.x-k8s.io), which "
    "asks for a fixed number of nodes at once, keeps them for at most 7 days and needs every pod to carry its "
    "consume-provisioning-request annotation and the cloud.google.com/gke-queued toleration; KubeRay creates "
    "the Ray worker pods itself and the Ray autoscaler adds and removes them one by one, so nothing would ever "
    "fill the pool and the workers would stay Pending. Use gpuFlexStart=true (Dynamic Workload Scheduler "
    "without queueing), gpuSpot=true or a gpuReservation instead"
)


def read_zones(read: ValueReader, region: str | None) -> tuple[str, ...] | None:
    """gpuZones: at least one, each a zone of gcp:region that exists (REGION_ZONES), none twice."""
    zones = read.get("gpuZones")
    if zones is None:
        return None
    start = len(read.problems)
    if not zones:
        read.problem(f"{PROJECT}:gpuZones: needs at least one zone{f' in {region}' if region else ''}; found []")
    for index, zone in enumerate(zones):
        if gcp_rules.zone_problem(zone):
            read.problem(
                f"{PROJECT}:gpuZones[{index}]: not a zone name; found {shown(zone)}; allowed: {gcp_rules.ZONE_RULE}"
            )
        elif region is not None and zone.rsplit("-", 1)[0] != region:
            read.problem(
                f"{PROJECT}:gpuZones[{index}]: zone {zone!r} is not in gcp:region {region!r}; "
                f"allowed: zones named {region}-<letter>"
            )
        elif region in REGION_ZONES and zone not in (known := _zones_of(region)):
            read.problem(
                f"{PROJECT}:gpuZones[{index}]: {region} has no zone {zone!r}; allowed: {', '.join(known)} "
                f"(REGION_ZONES in infra/catalog.py, {LOCATIONS_SOURCE})"
            )
    if len(set(zones)) != len(zones):
        read.problem(f"{PROJECT}:gpuZones: lists a zone twice; found {shown(zones)}; allowed: each zone once")
    return tuple(zones) if len(read.problems) == start else None


def _zones_of(region: str) -> tuple[str, ...]:
    return tuple(f"{region}-{letter}" for letter in REGION_ZONES[region])


def check_machine_zones(read: ValueReader, machine: MachineProfile, zones: tuple[str, ...]) -> None:
    """Against the zone table: a GPU machine in a region that has it in no zone is refused (GKE would refuse the
    pool half-way through `pulumi up`); a zone of a region that has it elsewhere is a warning, since Google adds
    zones to a region more often than the table is renewed."""
    if machine.machine_type not in MACHINE_ZONES:
        return
    table = f"the zone table (MACHINE_ZONES in infra/catalog.py, {LOCATIONS_SOURCE})"
    for index, zone in enumerate(zones):
        region = zone.rsplit("-", 1)[0]
        offering = zones_offering(machine.machine_type, region)
        if zone in offering:
            continue
        if not offering:
            read.problem(
                f"{PROJECT}:gpuZones[{index}]: {table} lists {machine.machine_type} in no zone of {region}, so GKE "
                f"would refuse the GPU pool half-way through `pulumi up`; found {shown(zone)}; allowed: a zone of "
                f"a region that has it ({', '.join(sorted(MACHINE_ZONES[machine.machine_type]))}), or another "
                f"gpuMachineType. If Google offers it there since ("
                f'`gcloud compute machine-types list --filter="name={machine.machine_type}" --zones={zone}`), '
                f"add the zone to MACHINE_ZONES"
            )
            continue
        read.warnings.append(
            f"{PROJECT}:gpuZones[{index}]: {table} lists {machine.machine_type} in {', '.join(offering)} only, "
            f"so GKE would refuse the GPU pool in {zone} half-way through `pulumi up`; act before `pulumi up`: "
            f"pick a listed zone, or check that Google offers it there now (the table may be out of date): "
            f'`gcloud compute machine-types list --filter="name={machine.machine_type}" --zones={zone}`'
        )


def read_machine(read: ValueReader) -> MachineProfile | None:
    """gpuMachineType: a profile of infra/catalog.py."""
    machine_type = read.get("gpuMachineType")
    machine = MACHINE_PROFILES.get(machine_type) if machine_type is not None else None
    if machine_type is not None and machine is None:
        read.problem(
            f"{PROJECT}:gpuMachineType: unknown machine type {shown(machine_type)}; allowed: "
            f"{', '.join(sorted(MACHINE_PROFILES))}"
        )
    return machine


@dataclass(frozen=True)
class _PoolKeys:
    """The pool's keys as read, each None when missing or bad."""

    node_count: int | None
    autoscaling: bool | None
    min_nodes: int | None
    max_nodes: int | None
    compact_placement: bool | None
    gpudirect: bool | None
    network_count: int | None
    spot: bool | None
    flex_start: bool | None
    queued: bool | None
    reservation: str | None  # "" for none
    driver_version: str | None


def read_gpu_pool(
    read: ValueReader, machine: MachineProfile | None, zones: tuple[str, ...] | None
) -> GpuPoolConfig | None:
    """The pool's settings, or None when any of its keys, its machine or its zones is bad."""
    start = len(read.problems)
    keys = _read_pool_keys(read)
    _check_placement_and_size(read, keys, zones)
    _check_provisioning(read, keys, machine)
    gpudirect = _gpudirect_in_effect(read, keys, machine)
    if len(read.problems) > start or machine is None or zones is None or gpudirect is None:
        return None

    pool = GpuPoolConfig(
        machine=machine,
        zones=zones,
        node_count=clean(keys.node_count),
        autoscaling=clean(keys.autoscaling),
        min_nodes=clean(keys.min_nodes),
        max_nodes=clean(keys.max_nodes),
        compact_placement=clean(keys.compact_placement),
        gpudirect=gpudirect,
        spot=clean(keys.spot),
        flex_start=clean(keys.flex_start),
        reservation=keys.reservation or None,
        driver_version=clean(keys.driver_version),
    )
    check_machine_zones(read, machine, zones)
    if pool.spot and (pool.node_count > 1 or (pool.autoscaling and pool.max_nodes > 1)):
        read.warnings.append(f"{PROJECT}:gpuSpot: a preempted Spot node takes down every model replica that spans it")
    if pool.reservation and pool.compact_placement and gpudirect is GpuDirect.TCPXO:
        read.warnings.append(
            f"{PROJECT}:gpuCompactPlacement: nothing to do before `pulumi up`; if GKE refuses to create the GPU "
            f"pool, set it to false: A3 Mega pool creation has been reported to fail when a placement policy is "
            f"added on top of a specific reservation (AI-Hypercomputer/xpk PR #1130 stopped combining the two), "
            f"and the a3-pool-compact-gvnic-gpu-networks policy then needs to be made advisory (docs/security.md)"
        )
    return pool


def _read_pool_keys(read: ValueReader) -> _PoolKeys:
    return _PoolKeys(
        node_count=read.get("gpuNodeCount"),
        autoscaling=read.get("gpuAutoscaling"),
        min_nodes=read.get("gpuMinNodes"),
        max_nodes=read.get("gpuMaxNodes"),
        compact_placement=read.get("gpuCompactPlacement"),
        gpudirect=read.get("gpuDirect"),
        network_count=read.get("gpuNetworkCount"),
        spot=read.get("gpuSpot"),
        flex_start=read.get("gpuFlexStart"),
        queued=read.get("gpuQueuedProvisioning"),
        reservation=read.matching(
            "gpuReservation",
            _is_reservation,
            f"a reservation name, optionally NAME/reservationBlocks/BLOCK, each {gcp_rules.RFC1035_RULE}",
        ),
        driver_version=read.get("gpuDriverVersion"),
    )


def _check_placement_and_size(read: ValueReader, keys: _PoolKeys, zones: tuple[str, ...] | None) -> None:
    """Compact placement keeps the pool in one zone; an autoscaling pool needs 0 <= min <= max, max >= 1."""
    if keys.compact_placement and zones is not None and len(zones) > 1:
        read.problem(
            f"{PROJECT}:gpuZones: compact placement keeps the pool in one zone; found {len(zones)} "
            f"zones {list(zones)}; allowed: exactly one zone, or set {PROJECT}:gpuCompactPlacement to "
            f"false"
        )
    min_nodes, max_nodes = keys.min_nodes, keys.max_nodes
    if (
        keys.autoscaling
        and min_nodes is not None
        and max_nodes is not None
        and (max_nodes < 1 or min_nodes > max_nodes)
    ):
        read.problem(
            f"{PROJECT}:gpuMinNodes/{PROJECT}:gpuMaxNodes: need 0 <= min <= max and max >= 1; "
            f"found min={min_nodes}, max={max_nodes}"
        )


def _check_provisioning(read: ValueReader, keys: _PoolKeys, machine: MachineProfile | None) -> None:
    """How the pool gets its VMs: queued provisioning is refused; Spot, flex-start and a reservation exclude each
    other; flex-start needs autoscaling, and on some machines no compact placement."""
    if keys.queued:
        # Refused on its own (QUEUED_PROVISIONING_REFUSAL says why), so no other rule talks about a queued pool.
        read.problem(f"{PROJECT}:gpuQueuedProvisioning: true is refused: {QUEUED_PROVISIONING_REFUSAL}")
    capacity = {"gpuSpot": keys.spot, "gpuFlexStart": keys.flex_start}
    chosen = [name for name, on in capacity.items() if on]
    if len(chosen) > 1:
        read.problem(
            f"{' and '.join(f'{PROJECT}:{name}' for name in chosen)}: these provisioning modes exclude "
            f"each other; allowed: at most one of {', '.join(f'{PROJECT}:{name}' for name in capacity)}"
        )
    if keys.reservation:
        for name in chosen:
            read.problem(
                f"{PROJECT}:{name}: cannot be combined with {PROJECT}:gpuReservation={keys.reservation!r}; "
                f"a reservation is consumed by on-demand VMs only; allowed: {PROJECT}:{name}=false or an "
                f"empty {PROJECT}:gpuReservation"
            )
    if keys.flex_start and keys.autoscaling is False:
        read.problem(
            f"{PROJECT}:gpuFlexStart: needs {PROJECT}:gpuAutoscaling=true (the pool scales up from zero "
            f"when capacity is granted); found {PROJECT}:gpuAutoscaling=false"
        )
    if keys.flex_start and keys.compact_placement and machine is not None and not machine.compact_placement_with_dws:
        read.problem(
            f"{PROJECT}:gpuFlexStart: GKE does not support compact placement with flex-start on "
            f"{machine.machine_type}; found {PROJECT}:gpuCompactPlacement=true; allowed: turn one of them "
            f"off"
        )


def _gpudirect_in_effect(read: ValueReader, keys: _PoolKeys, machine: MachineProfile | None) -> GpuDirect | None:
    """The GPUDirect flavour the pool gets (NONE when the machine lacks it or it is switched off); a GPU network
    count set by hand must match it."""
    if machine is None or keys.gpudirect is None:
        return None
    gpudirect = machine.gpudirect if keys.gpudirect else GpuDirect.NONE
    needed_nics = machine.gpu_nic_count if gpudirect is not GpuDirect.NONE else 0
    if keys.network_count and keys.network_count != needed_nics:
        why = (
            f"{machine.machine_type} with GPUDirect-{gpudirect.value.upper()} uses {needed_nics} GPU NICs"
            if needed_nics
            else f"{machine.machine_type} uses no GPU NIC networks here (gpuDirect off or unsupported)"
        )
        read.problem(
            f"{PROJECT}:gpuNetworkCount: {why}; found {keys.network_count}; allowed: {needed_nics}, "
            f"or 0 to derive it from the machine"
        )
    if machine.gpudirect is not GpuDirect.NONE and not keys.gpudirect:
        read.warnings.append(
            f"{PROJECT}:gpuDirect: off on {machine.machine_type}; cross-node NCCL traffic uses eth0 only"
        )
    return gpudirect


def _is_reservation(value: str) -> bool:
    """NAME or NAME/reservationBlocks/BLOCK, each an RFC 1035 name (a name holds no '/', so the split is exact)."""
    parts = value.split("/reservationBlocks/")
    return len(parts) <= 2 and not any(gcp_rules.rfc1035_problem(part) for part in parts)
