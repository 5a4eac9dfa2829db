"""GPUDirect-TCPX (A3 High) and GPUDirect-TCPXO (A3 Mega) as plain Kubernetes objects.

Pure renderers: every function returns new dicts (or a `PodPatch`) and creates no resource, so the
component that owns the Kubernetes provider decides what becomes a resource and the tests need no engine.
Images, accelerator names and NIC/GPU counts come from `infra.catalog`; this module only knows how the
pieces fit together.

Four things make GPUDirect work on a node, and this module renders each of them:

1. one `GKENetworkParamSet` + `Network` pair per GPU NIC, so pods can ask for eth1..ethN
   (`gpu_network_objects`);
2. the NRI device injector, which hands /dev/nvidia* to the receive-datapath daemon without making it
   privileged (`nri_device_injector_daemonset`);
3. the NCCL plugin installer, which puts the plugin and its NCCL core in the host's
   /home/kubernetes/bin/nvidia/lib64 (`nccl_installer_daemonset`);
4. per workload pod: the daemon sidecar, the interface and device annotations, the volumes and the NCCL
   environment (`workload_pod_patch`, `nccl_env`).

Sources: GoogleCloudPlatform/container-engine-accelerators (gpudirect-tcpx/, gpudirect-tcpxo/,
nri_device_injector/) and GoogleCloudPlatform/cluster-toolkit (gke-node-pool/gpu-direct-workload). The
facts are theirs; the shapes here are this project's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from infra.catalog import (
    ACCELERATOR_NODE_LABEL,
    GPUDIRECT_RELEASES,
    HOST_SETUP_IMAGE,
    MACHINE_PROFILES,
    NRI_DEVICE_INJECTOR_IMAGE,
    PAUSE_IMAGE,
    GpuDirect,
)

# --------------------------------------------------------------------------------------------------------
# Names and paths shared by several objects
# --------------------------------------------------------------------------------------------------------

GKE_NETWORKING_GROUP = "networking.gke.io"
GKE_NETWORKING_API_VERSION = f"{GKE_NETWORKING_GROUP}/v1"
SYSTEM_NAMESPACE = "kube-system"

# The pod's eth0 always stays on the cluster's own network; GPU NICs follow as eth1..ethN.
PRIMARY_INTERFACE = "eth0"
DEFAULT_POD_NETWORK = "default"

# Where GKE keeps node-local binaries. The GPU driver installer already uses <bin>/nvidia/lib64 and GKE
# mounts <bin>/nvidia into every GPU container, so the NCCL plugin installer drops its files there too.
_HOST_KUBERNETES_BIN = "/home/kubernetes/bin"
HOST_NCCL_LIB_DIR = f"{_HOST_KUBERNETES_BIN}/nvidia/lib64"
# Where workload containers and the daemons see HOST_NCCL_LIB_DIR. The TCPXO tuner and guest-config files
# are looked up relative to it, so NCCL_LIB_DIR (env) and this mount must agree.
NCCL_LIB_DIR = "/usr/local/nvidia/lib64"

# TCPX: RxDM serves UNIX sockets in --uds_path; the NCCL plugin connects from
# NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX. One pod-scoped volume joins the two.
_TCPX_DAEMON_SOCKET_DIR = "/run/tcpx"
# /tmp is the plugin's built-in default prefix and the layout that CEA and the cluster toolkit qualified.
# It is safe here because the volume is a pod-scoped emptyDir (not the hostPath of CEA's test, which would
# share one /tmp between every pod on the node): the main container's /tmp then simply lives in that
# emptyDir. Ray's /tmp/ray session directory ends up beside RxDM's sockets, whose names do not collide with
# it, and /dev/shm is untouched. Setting the prefix env explicitly keeps the mount and the plugin in step.
_TCPX_WORKLOAD_SOCKET_DIR = "/tmp"

# TCPXO: the installer bind-mounts each NIC "aperture" (PCI BAR) here so that an unprivileged container can
# mmap them for the low-latency control path (LLCM).
_APERTURE_DEVICES_DIR = "/dev/aperture_devices"

# The TCPXO daemon writes this file once its buffer manager is initialised (~30 s), which is what the
# startup probe waits for. The name must not contain "_" (CEA best-practice.md).
_TCPXO_HEALTH_CHECK_FILE = "/run/health-check"

# TCPX on a3-highgpu-8g: per-NIC CPU cores for the plugin's TX and RX threads, NUMA-local to each NIC
# (eth1/eth2 on socket 0, eth3/eth4 on socket 1). These are machine topology facts for A3 High, which is
# why they are keyed by NIC number rather than derived.
_TCPX_CPU_BINDINGS: dict[int, tuple[str, str]] = {
    1: ("8-21,112-125", "22-35,126-139"),
    2: ("8-21,112-125", "22-35,126-139"),
    3: ("60-73,164-177", "74-87,178-191"),
    4: ("60-73,164-177", "74-87,178-191"),
}


@dataclass(frozen=True)
class _Flavour:
    """What differs between TCPX and TCPXO apart from the container specs themselves."""

    daemon_name: str  # the sidecar's container name, which the NRI device annotation must match
    installer_name: str
    # Where `container_entry.sh install` leaves the plugin inside the installer's (host) /var/lib.
    installer_staging_dir: str
    # Devices the daemon needs besides the GPUs: TCPXO imports dma-bufs through the import-helper module.
    extra_daemon_devices: tuple[str, ...]


_FLAVOURS: dict[GpuDirect, _Flavour] = {
    GpuDirect.TCPX: _Flavour(
        daemon_name="tcpx-daemon",
        installer_name="nccl-tcpx-installer",
        installer_staging_dir="/var/lib/tcpx/lib64",
        extra_daemon_devices=(),
    ),
    GpuDirect.TCPXO: _Flavour(
        daemon_name="tcpxo-daemon",
        installer_name="nccl-tcpxo-installer",
        installer_staging_dir="/var/lib/tcpxo/lib64",
        extra_daemon_devices=("/dev/dmabuf_import_helper",),
    ),
}

# Volume names in workload pods are prefixed so they cannot clash with the serving pod's own volumes.
_VOL_NCCL_LIB = "gpudirect-nccl-lib"
_VOL_SYS = "gpudirect-host-sys"
_VOL_PROC_SYS = "gpudirect-host-proc-sys"
_VOL_TCPX_SOCKET = "gpudirect-tcpx-socket"
_VOL_APERTURE = "gpudirect-aperture-devices"


# --------------------------------------------------------------------------------------------------------
# Small builders
# --------------------------------------------------------------------------------------------------------


def _env(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def _mount(name: str, path: str) -> dict[str, str]:
    return {"name": name, "mountPath": path}


def _host_path_volume(name: str, path: str, path_type: str | None = None) -> dict[str, Any]:
    host_path: dict[str, str] = {"path": path}
    if path_type is not None:
        host_path["type"] = path_type
    return {"name": name, "hostPath": host_path}


def _supported(flavour: GpuDirect, what: str) -> _Flavour:
    """The flavour's facts, or a ValueError that names the flavour and the ones that would work."""
    if flavour not in _FLAVOURS:
        allowed = ", ".join(f.value for f in _FLAVOURS)
        raise ValueError(f"{what} needs a GPUDirect flavour, got GpuDirect.{flavour.name} ('{flavour.value}'); "
                         f"use one of: {allowed}")
    return _FLAVOURS[flavour]


def _accelerators(flavours: Iterable[GpuDirect]) -> list[str]:
    """GKE accelerator names of every catalog machine using one of `flavours`, sorted and unique."""
    wanted = set(flavours)
    return sorted({p.gke_accelerator for p in MACHINE_PROFILES.values() if p.gpudirect in wanted})


def _catalog_max(flavour: GpuDirect, attribute: str) -> int:
    return max(getattr(p, attribute) for p in MACHINE_PROFILES.values() if p.gpudirect == flavour)


def _check_count(name: str, value: int, flavour: GpuDirect, catalog_attribute: str) -> None:
    maximum = _catalog_max(flavour, catalog_attribute)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(f"{name} for GpuDirect.{flavour.name} must be an integer in 1..{maximum} "
                         f"(catalog `{catalog_attribute}`), got {value!r}")


# --------------------------------------------------------------------------------------------------------
# 1. GPU networks
# --------------------------------------------------------------------------------------------------------


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


def gpu_network_objects(index: int, vpc_name: Any, subnet_name: Any) -> list[dict[str, Any]]:
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


# --------------------------------------------------------------------------------------------------------
# 2 and 3. Node DaemonSets (NRI device injector, NCCL plugin installer)
# --------------------------------------------------------------------------------------------------------


def _node_daemonset(
    name: str,
    *,
    accelerators: list[str],
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    init_containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A kube-system DaemonSet that prepares GPU nodes: shared shape of the injector and the installers."""
    labels = {"k8s-app": name}
    pod_spec: dict[str, Any] = {
        # Node plumbing that workloads cannot run without: keep it ahead of anything preemptible.
        "priorityClassName": "system-node-critical",
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [
                            {"key": ACCELERATOR_NODE_LABEL, "operator": "In", "values": accelerators},
                        ]},
                    ],
                },
            },
        },
        # Tolerate every taint, not only the GPU one: these must run on every node a GPUDirect workload can
        # land on, including nodes with extra taints such as flex-start/queued provisioning's
        # `cloud.google.com/gke-queued`. Node affinity above already limits where they go.
        "tolerations": [{"operator": "Exists"}],
        # Both upstream manifests run in the host's network and PID namespaces (the TCPXO host setup
        # nsenters PID 1); kept for every node DaemonSet so that the qualified behaviour is unchanged.
        "hostNetwork": True,
        "hostPID": True,
        "containers": containers,
        "volumes": volumes,
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def nri_device_injector_daemonset() -> dict[str, Any]:
    """The NRI device injector DaemonSet (kube-system), for every GPUDirect machine in the catalog.

    It injects the devices listed in a pod's `devices.gke.io/container.<name>` annotation into that
    container, which is how the unprivileged tcpx(o)-daemon sidecar gets /dev/nvidia*. Scheduled on nodes
    whose accelerator label is one of the catalog's GPUDirect accelerators; one DaemonSet serves both
    flavours.
    """
    injector = {
        "name": "device-injector",
        "image": NRI_DEVICE_INJECTOR_IMAGE,
        "resources": {"requests": {"cpu": "150m"}},
        # Creates device nodes in other containers through containerd's NRI socket.
        "securityContext": {"privileged": True},
        "volumeMounts": [_mount("dev", "/dev"), _mount("nri", "/var/run/nri")],
    }
    # Upstream also declares a hostPath volume for "/" that nothing mounts; it is left out on purpose.
    volumes = [_host_path_volume("dev", "/dev"), _host_path_volume("nri", "/var/run/nri")]
    gpudirect_flavours = [f for f in GpuDirect if f is not GpuDirect.NONE]
    return _node_daemonset(
        "device-injector",
        accelerators=_accelerators(gpudirect_flavours),
        containers=[injector],
        volumes=volumes,
    )


# The installer container sees the host's /home/kubernetes/bin at /usr/local, so its
# /usr/local/nvidia/lib64 *is* HOST_NCCL_LIB_DIR.
_INSTALLER_BIN_MOUNT = "/usr/local"
_INSTALLER_DESTINATION = f"{_INSTALLER_BIN_MOUNT}/nvidia/lib64"


def _plugin_install_container(flavour: GpuDirect) -> dict[str, Any]:
    spec = _FLAVOURS[flavour]
    script = "\n".join([
        "set -ex",
        "chmod 755 /scripts/container_entry.sh",
        # Installs the NCCL net plugin *and* the NCCL core it was qualified with into the staging dir.
        "/scripts/container_entry.sh install --install-nccl",
        f"mkdir -p {_INSTALLER_DESTINATION}",
        f"cp -r {spec.installer_staging_dir}/. {_INSTALLER_DESTINATION}",
        'echo "installation finishes"',
    ])
    return {
        "name": spec.installer_name,
        "image": GPUDIRECT_RELEASES[flavour].installer_image,
        "resources": {"requests": {"cpu": "150m"}},
        "securityContext": {"privileged": True},
        "volumeMounts": [_mount("var-lib", "/var/lib"), _mount("kubernetes-bin", _INSTALLER_BIN_MOUNT)],
        "command": ["/bin/sh", "-c"],
        "args": [script],
    }


def _tcpxo_host_setup_container() -> dict[str, Any]:
    """Prepares an A3 Mega host for TCPXO; runs in the host's namespaces via nsenter on PID 1."""
    script = "\n".join([
        # COS's host firewall drops inbound TCP by default and the qualified TCPXO setup opens it. `-C`
        # first keeps the rule single when the DaemonSet pod restarts.
        "{ /sbin/iptables -C INPUT -p tcp -m tcp -j ACCEPT || /sbin/iptables -I INPUT -p tcp -m tcp -j ACCEPT; }"
        " && modprobe import-helper",  # provides /dev/dmabuf_import_helper for the tcpxo-daemon
        f"sudo mkdir -p {_APERTURE_DEVICES_DIR}",
        # One bind mount per NIC aperture (PCI id 1ae0:0084), named by its PCI address.
        "while IFS= read -r line; do",
        "  BDF=$(echo \"$line\" | awk '{print $1}')",
        f"  target=\"{_APERTURE_DEVICES_DIR}/$BDF\"",
        "  device=$(readlink -f \"/sys/bus/pci/devices/$BDF\")",
        "  sudo mkdir -p \"$target\"",
        "  sudo umount -R \"$target\"",  # fails harmlessly on first boot; makes a restart idempotent
        "  sudo mount --bind \"$device\" \"$target\"",
        "done < <(lspci -nn -D | grep '1ae0:0084')",
        # The workload is unprivileged and must mmap the apertures' resource files.
        f"if [ -d {_APERTURE_DEVICES_DIR} ]; then",
        f"  chmod -R a+r {_APERTURE_DEVICES_DIR}/",
        f"  chmod a+rw {_APERTURE_DEVICES_DIR}/*/resource*",
        "fi",
    ])
    return {
        "name": "pre-installation",
        "image": HOST_SETUP_IMAGE,
        "securityContext": {"privileged": True},
        "command": ["nsenter", "-at", "1", "--", "sh", "-c", script],
    }


def nccl_installer_daemonset(flavour: GpuDirect) -> dict[str, Any]:
    """The NCCL plugin installer DaemonSet (kube-system) for `flavour`.

    Init containers install the GPUDirect NCCL plugin and its NCCL core into the host's
    HOST_NCCL_LIB_DIR (TCPXO first prepares the host: firewall, import-helper module, NIC apertures); a
    pause container then keeps the pod, so the install reruns only when the pod is recreated. Runs on the
    nodes whose accelerator label belongs to a catalog machine of this flavour. The installer image must
    match the daemon image of the same `GpuDirectRelease` used in `workload_pod_patch`.

    Raises ValueError for GpuDirect.NONE.
    """
    spec = _supported(flavour, "nccl_installer_daemonset")
    init_containers = [_plugin_install_container(flavour)]
    if flavour is GpuDirect.TCPXO:
        init_containers.insert(0, _tcpxo_host_setup_container())
    volumes = [
        _host_path_volume("var-lib", "/var/lib"),
        _host_path_volume("kubernetes-bin", _HOST_KUBERNETES_BIN),
    ]
    return _node_daemonset(
        spec.installer_name,
        accelerators=_accelerators([flavour]),
        init_containers=init_containers,
        containers=[{"name": "pause", "image": PAUSE_IMAGE}],
        volumes=volumes,
    )


# --------------------------------------------------------------------------------------------------------
# 4. NCCL environment
# --------------------------------------------------------------------------------------------------------


def _tcpxo_env(nic_count: int) -> list[dict[str, str]]:
    # The Jan 9, 2026 release's `nccl-env-profile.sh` values (installer v1.0.15 / RxDM v1.0.21), set as env
    # so that the serving command needs no `source`. Differences from the profile, on purpose:
    # - no NCCL_ALGO: the tuner plugin picks the algorithm (the guest-config checker flags it);
    # - no CUDA_VISIBLE_DEVICES: Ray sets it per worker process, so a pod-level value never reaches NCCL
    #   and could only mislead Ray's GPU detection.
    return [
        _env("NCCL_LIB_DIR", NCCL_LIB_DIR),
        _env("NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY", _APERTURE_DEVICES_DIR),
        _env("NCCL_FASTRAK_CTRL_DEV", PRIMARY_INTERFACE),
        _env("NCCL_FASTRAK_IFNAME", ",".join(gpu_interface_names(nic_count))),
        _env("NCCL_SOCKET_IFNAME", PRIMARY_INTERFACE),
        _env("NCCL_CROSS_NIC", "0"),
        _env("NCCL_PROTO", "Simple,LL128"),
        _env("NCCL_MIN_NCHANNELS", "4"),
        _env("NCCL_TUNER_PLUGIN", "libnccl-tuner.so"),
        _env("NCCL_TUNER_CONFIG_PATH", f"{NCCL_LIB_DIR}/a3plus_tuner_config.textproto"),
        _env("NCCL_SHIMNET_GUEST_CONFIG_CHECKER_CONFIG_FILE", f"{NCCL_LIB_DIR}/a3plus_guest_config.textproto"),
        # Enforced by the guest-config checker since Aug 2025: NCCL aborts at init without it.
        _env("NCCL_NVLSTREE_MAX_CHUNKSIZE", "131072"),
        _env("NCCL_P2P_NET_CHUNKSIZE", "524288"),
        _env("NCCL_P2P_PCI_CHUNKSIZE", "524288"),
        _env("NCCL_P2P_NVL_CHUNKSIZE", "1048576"),
        _env("NCCL_FASTRAK_NUM_FLOWS", "2"),
        _env("NCCL_FASTRAK_USE_SNAP", "1"),
        _env("NCCL_FASTRAK_PLUGIN_ACCEPT_TIMEOUT_MS", "600000"),
        _env("NCCL_FASTRAK_ENABLE_CONTROL_CHANNEL", "0"),
        _env("NCCL_BUFFSIZE", "8388608"),
        _env("NCCL_NET_GDR_LEVEL", "PIX"),
        _env("NCCL_FASTRAK_ENABLE_HOTPATH_LOGGING", "0"),
        _env("NCCL_FASTRAK_USE_LLCM", "1"),
        _env("NCCL_NVLS_ENABLE", "1"),
        _env("NCCL_DEBUG", "WARN"),
        _env("NCCL_DEBUG_SUBSYS", "INIT,NET,ENV,COLL,GRAPH"),
    ]


def _tcpx_env(nic_count: int) -> list[dict[str, str]]:
    # CEA gpudirect-tcpx/nccl-config.yaml (`run-nccl.sh`), plugin v3.1.9.
    nics = range(1, nic_count + 1)
    tx = ";".join(f"{interface_name(i)}:{_TCPX_CPU_BINDINGS[i][0]}" for i in nics)
    rx = ";".join(f"{interface_name(i)}:{_TCPX_CPU_BINDINGS[i][1]}" for i in nics)
    return [
        _env("NCCL_SOCKET_IFNAME", PRIMARY_INTERFACE),
        # The TCPX plugin supports only Ring with the Simple protocol, and PXN must stay off.
        _env("NCCL_ALGO", "Ring"),
        _env("NCCL_PROTO", "Simple"),
        _env("NCCL_CROSS_NIC", "0"),
        _env("NCCL_NET_GDR_LEVEL", "PIX"),
        _env("NCCL_P2P_PXN_LEVEL", "0"),
        _env("NCCL_GPUDIRECTTCPX_SOCKET_IFNAME", ",".join(gpu_interface_names(nic_count))),
        _env("NCCL_GPUDIRECTTCPX_CTRL_DEV", PRIMARY_INTERFACE),
        _env("NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX", _TCPX_WORKLOAD_SOCKET_DIR),
        _env("NCCL_DYNAMIC_CHUNK_SIZE", "524288"),
        _env("NCCL_P2P_NET_CHUNKSIZE", "524288"),
        _env("NCCL_P2P_PCI_CHUNKSIZE", "524288"),
        _env("NCCL_P2P_NVL_CHUNKSIZE", "1048576"),
        _env("NCCL_BUFFSIZE", "4194304"),
        _env("NCCL_NSOCKS_PERTHREAD", "4"),
        _env("NCCL_SOCKET_NTHREADS", "1"),
        _env("NCCL_GPUDIRECTTCPX_TX_BINDINGS", tx),
        _env("NCCL_GPUDIRECTTCPX_RX_BINDINGS", rx),
        _env("NCCL_GPUDIRECTTCPX_PROGRAM_FLOW_STEERING_WAIT_MICROS", "500000"),
    ]


def nccl_env(flavour: GpuDirect, nic_count: int) -> list[dict[str, str]]:
    """NCCL settings (Kubernetes EnvVar dicts) for a workload container using `flavour` over `nic_count`
    GPU NICs (eth1..eth{nic_count}).

    Every value is a string. The list has no duplicate names and does not include LD_LIBRARY_PATH (see
    `PodPatch.container_env`). GpuDirect.NONE returns `[]` whatever `nic_count` is, so callers need no
    branch. Raises ValueError if `nic_count` is outside 1..the catalog's NIC count for the flavour.
    """
    if flavour is GpuDirect.NONE:
        return []
    _supported(flavour, "nccl_env")
    _check_count("nic_count", nic_count, flavour, "gpu_nic_count")
    return _tcpxo_env(nic_count) if flavour is GpuDirect.TCPXO else _tcpx_env(nic_count)


# --------------------------------------------------------------------------------------------------------
# 5. Workload pod patch
# --------------------------------------------------------------------------------------------------------


def _names(items: Iterable[dict[str, Any]], key: str = "name") -> list[str]:
    return [item[key] for item in items if key in item]


def _raise_on_overlap(what: str, existing: Iterable[str], added: Iterable[str], where: str) -> None:
    clash = sorted(set(existing) & set(added))
    if clash:
        raise ValueError(f"GPUDirect patch would duplicate {what} {', '.join(clash)} in {where}; "
                         f"rename or remove them from the pod spec")


@dataclass(frozen=True)
class PodPatch:
    """What a GPUDirect workload pod needs on top of its own spec.

    `annotations` go on the pod's metadata; `init_containers` (the receive-datapath daemon as a native
    sidecar), `volumes`, and the main container's `container_volume_mounts` and `container_env` go in the
    pod spec. Default-constructed (GpuDirect.NONE) it is empty, and applying it only copies the spec.
    The patch never adds /dev/shm: KubeRay already mounts one into Ray pods.
    """

    annotations: dict[str, str] = field(default_factory=dict)
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    container_volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    container_env: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.annotations or self.init_containers or self.volumes
                    or self.container_volume_mounts or self.container_env)

    def apply_to_pod_spec(self, pod_spec: dict[str, Any], container_name: str) -> dict[str, Any]:
        """A new pod spec with this patch merged into the container named `container_name`.

        The patch's init containers go *first* (so the daemon is up before any other init container or the
        main container starts), volumes are appended to the pod, and mounts and env are appended to the
        container. Neither `pod_spec` nor this patch is modified, and the result shares no objects with them.

        Raises ValueError if `container_name` is not among `pod_spec["containers"]`, or if the patch would
        duplicate a container name, a volume name, a mount name or mount path, or an env var name.
        """
        spec = copy.deepcopy(pod_spec)
        containers = spec.get("containers") or []
        target = next((c for c in containers if c.get("name") == container_name), None)
        if target is None:
            raise ValueError(f"container {container_name!r} not found in pod spec; containers are: "
                             f"{', '.join(_names(containers)) or '(none)'}")

        init_containers = spec.get("initContainers") or []
        _raise_on_overlap("container name(s)", _names(containers) + _names(init_containers),
                          _names(self.init_containers), "the pod")
        volumes = spec.get("volumes") or []
        _raise_on_overlap("volume name(s)", _names(volumes), _names(self.volumes), "spec.volumes")
        where = f"container {container_name!r}"
        mounts = target.get("volumeMounts") or []
        _raise_on_overlap("volume mount name(s)", _names(mounts), _names(self.container_volume_mounts), where)
        _raise_on_overlap("mount path(s)", _names(mounts, "mountPath"),
                          _names(self.container_volume_mounts, "mountPath"), where)
        env = target.get("env") or []
        _raise_on_overlap("env var(s)", _names(env), _names(self.container_env), where)

        if self.init_containers:
            spec["initContainers"] = copy.deepcopy(self.init_containers) + init_containers
        if self.volumes:
            spec["volumes"] = volumes + copy.deepcopy(self.volumes)
        if self.container_volume_mounts:
            target["volumeMounts"] = mounts + copy.deepcopy(self.container_volume_mounts)
        if self.container_env:
            target["env"] = env + copy.deepcopy(self.container_env)
        return spec

    def apply_to_pod_template(self, template: dict[str, Any], container_name: str) -> dict[str, Any]:
        """A new PodTemplateSpec (`{"metadata": ..., "spec": ...}`) with the annotations merged into
        `metadata.annotations` and `apply_to_pod_spec` applied to `spec`.

        Raises ValueError on anything `apply_to_pod_spec` rejects, or if the template already carries one of
        the patch's annotation keys with a different value.
        """
        result = copy.deepcopy(template)
        metadata = result.setdefault("metadata", {})
        annotations = dict(metadata.get("annotations") or {})
        conflicting = sorted(k for k, v in self.annotations.items() if k in annotations and annotations[k] != v)
        if conflicting:
            raise ValueError(f"GPUDirect patch would overwrite annotation(s) {', '.join(conflicting)}; "
                             f"remove them from the pod template")
        annotations.update(self.annotations)
        if annotations:
            metadata["annotations"] = annotations
        result["spec"] = self.apply_to_pod_spec(result.get("spec") or {}, container_name)
        return result


def _interfaces_annotation(nic_count: int) -> str:
    interfaces = [{"interfaceName": PRIMARY_INTERFACE, "network": DEFAULT_POD_NETWORK}]
    interfaces += [{"interfaceName": interface_name(i), "network": network_name(i)}
                   for i in range(1, nic_count + 1)]
    return json.dumps(interfaces, separators=(",", ":"))


def _daemon_devices_annotation(flavour: GpuDirect, gpu_count: int) -> str:
    # A YAML list, as the NRI device injector parses it; the daemon needs every GPU of the node plus the
    # driver's control and UVM devices, without requesting nvidia.com/gpu itself.
    paths = [f"/dev/nvidia{i}" for i in range(gpu_count)]
    paths += ["/dev/nvidiactl", "/dev/nvidia-uvm", *_FLAVOURS[flavour].extra_daemon_devices]
    return "".join(f"- path: {path}\n" for path in paths)


def _tcpx_daemon() -> dict[str, Any]:
    return {
        "name": _FLAVOURS[GpuDirect.TCPX].daemon_name,
        "image": GPUDIRECT_RELEASES[GpuDirect.TCPX].rxdm_image,
        "imagePullPolicy": "IfNotPresent",  # pinned tag: no registry round-trip on every pod start
        # Native sidecar: starts before the main container and stops with it, so the pod can complete.
        "restartPolicy": "Always",
        "command": [
            "/tcpgpudmarxd/build/app/tcpgpudmarxd",
            "--gpu_nic_preset", "a3vm",
            "--gpu_shmem_type", "fd",
            "--uds_path", _TCPX_DAEMON_SOCKET_DIR,
            # Byte for byte as in CEA's qualified manifest (escaped quotes included): RxDM forwards it.
            "--setup_param", '\\"--verbose 128 2 0 \\"',
        ],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
        "env": [_env("LD_LIBRARY_PATH", NCCL_LIB_DIR)],
        "volumeMounts": [
            _mount(_VOL_NCCL_LIB, NCCL_LIB_DIR),
            _mount(_VOL_TCPX_SOCKET, _TCPX_DAEMON_SOCKET_DIR),
            _mount(_VOL_SYS, "/hostsysfs"),
            _mount(_VOL_PROC_SYS, "/hostprocsysfs"),
        ],
    }


def _tcpxo_daemon() -> dict[str, Any]:
    # `--num_nics` is gone: it has been ignored since the Nov 2025 release.
    script = "\n".join([
        "set -ex",
        "chmod 755 /fts/entrypoint_rxdm_container.sh",
        "/fts/entrypoint_rxdm_container.sh --num_hops=2",
    ])
    return {
        "name": _FLAVOURS[GpuDirect.TCPXO].daemon_name,
        "image": GPUDIRECT_RELEASES[GpuDirect.TCPXO].rxdm_image,
        "imagePullPolicy": "IfNotPresent",  # pinned tag: no registry round-trip on every pod start
        # Native sidecar: starts before the main container and stops with it, so the pod can complete.
        "restartPolicy": "Always",
        "command": ["/bin/sh", "-c"],
        "args": [script],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_BIND_SERVICE"]}},
        "env": [
            _env("LD_LIBRARY_PATH", NCCL_LIB_DIR),
            _env("HEALTH_CHECK_LOG_FILE", _TCPXO_HEALTH_CHECK_FILE),
        ],
        # A node with broken host components never writes the file; fail there within ~30 s instead of
        # letting NCCL hang later. Until it succeeds, the main container does not start.
        "startupProbe": {
            "exec": {"command": ["cat", _TCPXO_HEALTH_CHECK_FILE]},
            "initialDelaySeconds": 1,
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 6,
        },
        "volumeMounts": [
            _mount(_VOL_NCCL_LIB, NCCL_LIB_DIR),
            _mount(_VOL_SYS, "/hostsysfs"),
            _mount(_VOL_PROC_SYS, "/hostprocsysfs"),
        ],
    }


def workload_pod_patch(flavour: GpuDirect, nic_count: int, gpu_count: int) -> PodPatch:
    """Everything a serving pod needs to use GPUDirect `flavour` over `nic_count` GPU NICs on a node with
    `gpu_count` GPUs. Apply it with `PodPatch.apply_to_pod_spec` / `apply_to_pod_template`.

    - annotations: the daemon's device list (`devices.gke.io/container.<daemon>`), eth0 as default
      interface, and `networking.gke.io/interfaces` (compact JSON: eth0 -> default, ethI -> vpcI);
    - init_containers: the tcpx-daemon / tcpxo-daemon (RxDM) as a native sidecar, image from the same
      `GpuDirectRelease` as the installer;
    - volumes / container_volume_mounts: the host NCCL lib dir at NCCL_LIB_DIR, plus the TCPX socket
      directory (pod-scoped emptyDir, at /tmp in the main container) or the TCPXO NIC apertures;
    - container_env: `nccl_env(flavour, nic_count)` plus LD_LIBRARY_PATH=NCCL_LIB_DIR, so the installer's
      NCCL core and plugin are the ones loaded.

    GpuDirect.NONE returns an empty `PodPatch()` (counts are not checked), so callers can apply the patch
    unconditionally. Raises ValueError if `nic_count` or `gpu_count` is outside 1..the catalog's value for
    the flavour.
    """
    if flavour is GpuDirect.NONE:
        return PodPatch()
    spec = _supported(flavour, "workload_pod_patch")
    _check_count("nic_count", nic_count, flavour, "gpu_nic_count")
    _check_count("gpu_count", gpu_count, flavour, "gpu_count")

    annotations = {
        f"devices.gke.io/container.{spec.daemon_name}": _daemon_devices_annotation(flavour, gpu_count),
        "networking.gke.io/default-interface": PRIMARY_INTERFACE,
        "networking.gke.io/interfaces": _interfaces_annotation(nic_count),
    }
    volumes = [
        _host_path_volume(_VOL_NCCL_LIB, HOST_NCCL_LIB_DIR),
        _host_path_volume(_VOL_SYS, "/sys"),
        _host_path_volume(_VOL_PROC_SYS, "/proc/sys"),
    ]
    mounts = [_mount(_VOL_NCCL_LIB, NCCL_LIB_DIR)]
    if flavour is GpuDirect.TCPX:
        daemon = _tcpx_daemon()
        volumes.append({"name": _VOL_TCPX_SOCKET, "emptyDir": {}})
        mounts.append(_mount(_VOL_TCPX_SOCKET, _TCPX_WORKLOAD_SOCKET_DIR))
    else:
        daemon = _tcpxo_daemon()
        # `Directory`, not the default: until the installer has created it, the pod waits at volume setup
        # instead of starting with an empty directory that the later bind mounts never reach.
        volumes.append(_host_path_volume(_VOL_APERTURE, _APERTURE_DEVICES_DIR, "Directory"))
        mounts.append(_mount(_VOL_APERTURE, _APERTURE_DEVICES_DIR))

    return PodPatch(
        annotations=annotations,
        init_containers=[daemon],
        volumes=volumes,
        container_volume_mounts=mounts,
        container_env=[*nccl_env(flavour, nic_count), _env("LD_LIBRARY_PATH", NCCL_LIB_DIR)],
    )
