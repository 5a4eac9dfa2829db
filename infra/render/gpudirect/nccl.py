"""The NCCL environment of a GPUDirect workload container, per flavour."""

from __future__ import annotations

from infra.catalog import GpuDirect
from infra.render.gpudirect.facts import (
    APERTURE_DEVICES_DIR,
    NCCL_LIB_DIR,
    PRIMARY_INTERFACE,
    TCPX_WORKLOAD_SOCKET_DIR,
    check_count,
    env_var,
    supported,
)
from infra.render.gpudirect.networks import gpu_interface_names, interface_name

# TCPX on a3-highgpu-8g: per-NIC CPU cores for the plugin's TX and RX threads, NUMA-local to each NIC
# (eth1/eth2 on socket 0, eth3/eth4 on socket 1). These are machine topology facts for A3 High, which is
# why they are keyed by NIC number rather than derived.
_TCPX_CPU_BINDINGS: dict[int, tuple[str, str]] = {
    1: ("8-21,112-125", "22-35,126-139"),
    2: ("8-21,112-125", "22-35,126-139"),
    3: ("60-73,164-177", "74-87,178-191"),
    4: ("60-73,164-177", "74-87,178-191"),
}


def _tcpxo_env(nic_count: int) -> list[dict[str, str]]:
    # The Jan 9, 2026 release's `nccl-env-profile.sh` values (installer v1.0.15 / RxDM v1.0.21), set as env
    # so that the serving command needs no `source`. Differences from the profile, on purpose:
    # - no NCCL_ALGO: the tuner plugin picks the algorithm (the guest-config checker flags it);
    # - no CUDA_VISIBLE_DEVICES: Ray sets it per worker process, so a pod-level value never reaches NCCL
    #   and could only mislead Ray's GPU detection.
    return [
        env_var("NCCL_LIB_DIR", NCCL_LIB_DIR),
        env_var("NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY", APERTURE_DEVICES_DIR),
        env_var("NCCL_FASTRAK_CTRL_DEV", PRIMARY_INTERFACE),
        env_var("NCCL_FASTRAK_IFNAME", ",".join(gpu_interface_names(nic_count))),
        env_var("NCCL_SOCKET_IFNAME", PRIMARY_INTERFACE),
        env_var("NCCL_CROSS_NIC", "0"),
        env_var("NCCL_PROTO", "Simple,LL128"),
        env_var("NCCL_MIN_NCHANNELS", "4"),
        env_var("NCCL_TUNER_PLUGIN", "libnccl-tuner.so"),
        env_var("NCCL_TUNER_CONFIG_PATH", f"{NCCL_LIB_DIR}/a3plus_tuner_config.textproto"),
        env_var("NCCL_SHIMNET_GUEST_CONFIG_CHECKER_CONFIG_FILE", f"{NCCL_LIB_DIR}/a3plus_guest_config.textproto"),
        # Enforced by the guest-config checker since Aug 2025: NCCL aborts at init without it.
        env_var("NCCL_NVLSTREE_MAX_CHUNKSIZE", "131072"),
        env_var("NCCL_P2P_NET_CHUNKSIZE", "524288"),
        env_var("NCCL_P2P_PCI_CHUNKSIZE", "524288"),
        env_var("NCCL_P2P_NVL_CHUNKSIZE", "1048576"),
        env_var("NCCL_FASTRAK_NUM_FLOWS", "2"),
        env_var("NCCL_FASTRAK_USE_SNAP", "1"),
        env_var("NCCL_FASTRAK_PLUGIN_ACCEPT_TIMEOUT_MS", "600000"),
        env_var("NCCL_FASTRAK_ENABLE_CONTROL_CHANNEL", "0"),
        env_var("NCCL_BUFFSIZE", "8388608"),
        env_var("NCCL_NET_GDR_LEVEL", "PIX"),
        env_var("NCCL_FASTRAK_ENABLE_HOTPATH_LOGGING", "0"),
        env_var("NCCL_FASTRAK_USE_LLCM", "1"),
        env_var("NCCL_NVLS_ENABLE", "1"),
        env_var("NCCL_DEBUG", "WARN"),
        env_var("NCCL_DEBUG_SUBSYS", "INIT,NET,ENV,COLL,GRAPH"),
    ]


def _tcpx_env(nic_count: int) -> list[dict[str, str]]:
    # CEA gpudirect-tcpx/nccl-config.yaml (`run-nccl.sh`), plugin v3.1.9.
    nics = range(1, nic_count + 1)
    tx = ";".join(f"{interface_name(i)}:{_TCPX_CPU_BINDINGS[i][0]}" for i in nics)
    rx = ";".join(f"{interface_name(i)}:{_TCPX_CPU_BINDINGS[i][1]}" for i in nics)
    return [
        env_var("NCCL_SOCKET_IFNAME", PRIMARY_INTERFACE),
        # The TCPX plugin supports only Ring with the Simple protocol, and PXN must stay off.
        env_var("NCCL_ALGO", "Ring"),
        env_var("NCCL_PROTO", "Simple"),
        env_var("NCCL_CROSS_NIC", "0"),
        env_var("NCCL_NET_GDR_LEVEL", "PIX"),
        env_var("NCCL_P2P_PXN_LEVEL", "0"),
        env_var("NCCL_GPUDIRECTTCPX_SOCKET_IFNAME", ",".join(gpu_interface_names(nic_count))),
        env_var("NCCL_GPUDIRECTTCPX_CTRL_DEV", PRIMARY_INTERFACE),
        env_var("NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX", TCPX_WORKLOAD_SOCKET_DIR),
        env_var("NCCL_DYNAMIC_CHUNK_SIZE", "524288"),
        env_var("NCCL_P2P_NET_CHUNKSIZE", "524288"),
        env_var("NCCL_P2P_PCI_CHUNKSIZE", "524288"),
        env_var("NCCL_P2P_NVL_CHUNKSIZE", "1048576"),
        env_var("NCCL_BUFFSIZE", "4194304"),
        env_var("NCCL_NSOCKS_PERTHREAD", "4"),
        env_var("NCCL_SOCKET_NTHREADS", "1"),
        env_var("NCCL_GPUDIRECTTCPX_TX_BINDINGS", tx),
        env_var("NCCL_GPUDIRECTTCPX_RX_BINDINGS", rx),
        env_var("NCCL_GPUDIRECTTCPX_PROGRAM_FLOW_STEERING_WAIT_MICROS", "500000"),
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
    supported(flavour, "nccl_env")
    check_count("nic_count", nic_count, flavour, "gpu_nic_count")
    return _tcpxo_env(nic_count) if flavour is GpuDirect.TCPXO else _tcpx_env(nic_count)
