"""What the GPUDirect renderers share: paths on the host and in the pod, what differs between TCPX and
TCPXO, the counts the catalog allows, and the small Kubernetes dict builders."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from infra.catalog import MACHINE_PROFILES, GpuDirect

# The pod's eth0 always stays on the cluster's own network; GPU NICs follow as eth1..ethN.
PRIMARY_INTERFACE = "eth0"
DEFAULT_POD_NETWORK = "default"

# Where GKE keeps node-local binaries. The GPU driver installer already uses <bin>/nvidia/lib64 and GKE
# mounts <bin>/nvidia into every GPU container, so the NCCL plugin installer drops its files there too.
HOST_KUBERNETES_BIN = "/home/kubernetes/bin"
HOST_NCCL_LIB_DIR = f"{HOST_KUBERNETES_BIN}/nvidia/lib64"
# Where workload containers and the daemons see HOST_NCCL_LIB_DIR. The TCPXO tuner and guest-config files
# are looked up relative to it, so NCCL_LIB_DIR (env) and this mount must agree.
NCCL_LIB_DIR = "/usr/local/nvidia/lib64"

# TCPX: RxDM serves UNIX sockets in --uds_path; the NCCL plugin connects from
# NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX. One pod-scoped volume joins the two.
TCPX_DAEMON_SOCKET_DIR = "/run/tcpx"
# /tmp is the plugin's built-in default prefix and the layout that CEA and the cluster toolkit qualified.
# It is safe here because the volume is a pod-scoped emptyDir (not the hostPath of CEA's test, which would
# share one /tmp between every pod on the node): the main container's /tmp then simply lives in that
# emptyDir. Ray's /tmp/ray session directory ends up beside RxDM's sockets, whose names do not collide with
# it, and /dev/shm is untouched. Setting the prefix env explicitly keeps the mount and the plugin in step.
TCPX_WORKLOAD_SOCKET_DIR = "/tmp"

# TCPXO: the installer bind-mounts each NIC "aperture" (PCI BAR) here so that an unprivileged container can
# mmap them for the low-latency control path (LLCM).
APERTURE_DEVICES_DIR = "/dev/aperture_devices"


@dataclass(frozen=True)
class Flavour:
    """What differs between TCPX and TCPXO apart from the container specs themselves."""

    daemon_name: str  # the sidecar's container name, which the NRI device annotation must match
    installer_name: str
    # Where `container_entry.sh install` leaves the plugin inside the installer's (host) /var/lib.
    installer_staging_dir: str
    # Devices the daemon needs besides the GPUs: TCPXO imports dma-bufs through the import-helper module.
    extra_daemon_devices: tuple[str, ...]


FLAVOURS: dict[GpuDirect, Flavour] = {
    GpuDirect.TCPX: Flavour(
        daemon_name="tcpx-daemon",
        installer_name="nccl-tcpx-installer",
        installer_staging_dir="/var/lib/tcpx/lib64",
        extra_daemon_devices=(),
    ),
    GpuDirect.TCPXO: Flavour(
        daemon_name="tcpxo-daemon",
        installer_name="nccl-tcpxo-installer",
        installer_staging_dir="/var/lib/tcpxo/lib64",
        extra_daemon_devices=("/dev/dmabuf_import_helper",),
    ),
}


def supported(flavour: GpuDirect, what: str) -> Flavour:
    """The flavour's facts, or a ValueError that names the flavour and the ones that would work."""
    if flavour not in FLAVOURS:
        allowed = ", ".join(f.value for f in FLAVOURS)
        raise ValueError(
            f"{what} needs a GPUDirect flavour, got GpuDirect.{flavour.name} ('{flavour.value}'); use one of: {allowed}"
        )
    return FLAVOURS[flavour]


def gpudirect_accelerators(flavours: Iterable[GpuDirect]) -> list[str]:
    """GKE accelerator names of every catalog machine using one of `flavours`, sorted and unique."""
    wanted = set(flavours)
    return sorted({p.gke_accelerator for p in MACHINE_PROFILES.values() if p.gpudirect in wanted})


# The MachineProfile counts a GPUDirect count is checked against.
CountAttribute = Literal["gpu_count", "gpu_nic_count"]


def _catalog_max(flavour: GpuDirect, attribute: CountAttribute) -> int:
    counts: list[int] = [getattr(p, attribute) for p in MACHINE_PROFILES.values() if p.gpudirect == flavour]
    return max(counts)


def check_count(name: str, value: int, flavour: GpuDirect, catalog_attribute: CountAttribute) -> None:
    maximum = _catalog_max(flavour, catalog_attribute)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(
            f"{name} for GpuDirect.{flavour.name} must be an integer in 1..{maximum} "
            f"(catalog `{catalog_attribute}`), got {value!r}"
        )


# --------------------------------------------------------------------------------------------------------
# Kubernetes dict builders
# --------------------------------------------------------------------------------------------------------


def env_var(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def volume_mount(name: str, path: str) -> dict[str, str]:
    return {"name": name, "mountPath": path}


def host_path_volume(name: str, path: str, path_type: str | None = None) -> dict[str, Any]:
    host_path: dict[str, str] = {"path": path}
    if path_type is not None:
        host_path["type"] = path_type
    return {"name": name, "hostPath": host_path}
