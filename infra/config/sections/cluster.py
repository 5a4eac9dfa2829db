"""The GKE cluster: where it lives, its release channel and maintenance, its system pool, and who may reach its
control plane."""

from __future__ import annotations

import datetime
import ipaddress
import re

from infra.config import gcp_rules
from infra.config.settings import ClusterConfig
from infra.config.stackfiles import PROJECT
from infra.config.values import ValueReader, clean

OPEN_TO_THE_INTERNET = ipaddress.IPv4Network("0.0.0.0/0")
# RFC 5737 documentation ranges: fine for an offline plan, useless for reaching a real control plane.
DOCUMENTATION_RANGES = tuple(
    ipaddress.IPv4Network(cidr) for cidr in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)


def read_cluster(
    read: ValueReader, region: str | None, zones: tuple[str, ...] | None, master_cidr: ipaddress.IPv4Network | None
) -> ClusterConfig | None:
    """The cluster's settings; None when any of its keys, the region, the GPU zones or the control plane's range
    is bad."""
    start = len(read.problems)
    regional = read.get("regionalCluster")
    system_machine_type = read.matching(
        "systemMachineType", lambda value: not gcp_rules.machine_type_problem(value), gcp_rules.MACHINE_TYPE_RULE
    )
    if system_machine_type == "":
        read.problem(f"{PROJECT}:systemMachineType: must not be empty; allowed: {gcp_rules.MACHINE_TYPE_RULE}")
    system_node_count = read.get("systemNodeCount")
    release_channel = read.get("releaseChannel")
    kubernetes_version = read.matching(
        "kubernetesVersion", _is_gke_version, "a GKE version like 1.33 or 1.33.5-gke.1080000"
    )
    window_start = read.matching("maintenanceWindowStart", _is_hh_mm, "HH:MM (UTC)")
    if window_start == "":
        read.problem(f"{PROJECT}:maintenanceWindowStart: must not be empty; allowed: HH:MM (UTC)")
    freeze = read.get("nodeUpgradeFreeze")
    freeze_start = read.matching(
        "nodeUpgradeFreezeStart", _is_rfc3339, "an RFC 3339 time with a zone, like 2026-11-01T00:00:00Z"
    )
    if freeze and freeze_start == "":
        read.problem(
            f"{PROJECT}:nodeUpgradeFreezeStart: must be set while {PROJECT}:nodeUpgradeFreeze is true; "
            f"allowed: an RFC 3339 time with a zone, like 2026-11-01T00:00:00Z"
        )
    deletion_protection = read.get("deletionProtection")
    authorized = _read_authorized_networks(read)
    if len(read.problems) > start or region is None or zones is None or regional is None or master_cidr is None:
        return None
    return ClusterConfig(
        location=region if regional else zones[0],
        node_zones=zones,
        release_channel=release_channel,
        kubernetes_version=kubernetes_version or None,
        maintenance_window_start=clean(window_start),
        node_upgrade_freeze_start=freeze_start if freeze else None,
        deletion_protection=deletion_protection,
        master_cidr=str(master_cidr),
        master_authorized_networks=tuple(str(network) for network in clean(authorized)),
        system_machine_type=clean(system_machine_type),
        system_node_count=system_node_count,
    )


def _read_authorized_networks(read: ValueReader) -> list[ipaddress.IPv4Network] | None:
    """masterAuthorizedNetworks: at least one CIDR, and the whole internet only with allowOpenControlPlane."""
    authorized = read.cidr_list("masterAuthorizedNetworks")
    allow_open = read.get("allowOpenControlPlane")
    if authorized is None:
        return None
    if not authorized:
        read.problem(
            f"{PROJECT}:masterAuthorizedNetworks: needs at least one CIDR (the machine that runs "
            f"`pulumi up` must reach the control plane); found []"
        )
    for network in authorized:
        if network == OPEN_TO_THE_INTERNET and allow_open is False:
            read.problem(
                f"{PROJECT}:masterAuthorizedNetworks: {network} opens the control plane to the whole "
                f"internet; allowed: specific CIDRs (the machine running `pulumi up`), or set "
                f"{PROJECT}:allowOpenControlPlane=true to accept the risk"
            )
        if any(network.subnet_of(doc) for doc in DOCUMENTATION_RANGES):
            read.warnings.append(
                f"{PROJECT}:masterAuthorizedNetworks: {network} is a documentation range (RFC 5737), a "
                f"placeholder; act before `pulumi up`: replace it with the CIDR of the machine that runs it "
                f"(`pulumi config set --path '{PROJECT}:masterAuthorizedNetworks[0]' \"$(curl -s "
                f'https://checkip.amazonaws.com)/32"`), or the Kubernetes objects cannot be applied'
            )
    return authorized


def _is_gke_version(value: str) -> bool:
    return re.fullmatch(r"1\.\d+(\.\d+(-gke\.\d+)?)?", value, re.ASCII) is not None


def _is_hh_mm(value: str) -> bool:
    return re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value, re.ASCII) is not None


def _is_rfc3339(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value, re.ASCII):
        return False
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None
