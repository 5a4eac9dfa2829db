"""What a GPUDirect workload pod needs on top of its own spec: the receive-datapath daemon as a native
sidecar, the interface and device annotations, the host NCCL libraries and the NCCL environment."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from infra.catalog import GPUDIRECT_RELEASES, GpuDirect
from infra.render.gpudirect.facts import (
    APERTURE_DEVICES_DIR,
    DEFAULT_POD_NETWORK,
    FLAVOURS,
    HOST_NCCL_LIB_DIR,
    NCCL_LIB_DIR,
    PRIMARY_INTERFACE,
    TCPX_DAEMON_SOCKET_DIR,
    TCPX_WORKLOAD_SOCKET_DIR,
    check_count,
    env_var,
    host_path_volume,
    supported,
    volume_mount,
)
from infra.render.gpudirect.nccl import nccl_env
from infra.render.gpudirect.networks import interface_name, network_name

# The TCPXO daemon writes this file once its buffer manager is initialised (~30 s), which is what the
# startup probe waits for. The name must not contain "_" (CEA best-practice.md).
_TCPXO_HEALTH_CHECK_FILE = "/run/health-check"

# Volume names in workload pods are prefixed so they cannot clash with the serving pod's own volumes.
_VOL_NCCL_LIB = "gpudirect-nccl-lib"
_VOL_SYS = "gpudirect-host-sys"
_VOL_PROC_SYS = "gpudirect-host-proc-sys"
_VOL_TCPX_SOCKET = "gpudirect-tcpx-socket"
_VOL_APERTURE = "gpudirect-aperture-devices"


def _names(items: Iterable[dict[str, Any]], key: str = "name") -> list[str]:
    return [item[key] for item in items if key in item]


def _raise_on_overlap(what: str, existing: Iterable[str], added: Iterable[str], where: str) -> None:
    clash = sorted(set(existing) & set(added))
    if clash:
        raise ValueError(
            f"GPUDirect patch would duplicate {what} {', '.join(clash)} in {where}; "
            f"rename or remove them from the pod spec"
        )


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
        return not (
            self.annotations
            or self.init_containers
            or self.volumes
            or self.container_volume_mounts
            or self.container_env
        )

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
            raise ValueError(
                f"container {container_name!r} not found in pod spec; containers are: "
                f"{', '.join(_names(containers)) or '(none)'}"
            )

        init_containers = spec.get("initContainers") or []
        _raise_on_overlap(
            "container name(s)", _names(containers) + _names(init_containers), _names(self.init_containers), "the pod"
        )
        volumes = spec.get("volumes") or []
        _raise_on_overlap("volume name(s)", _names(volumes), _names(self.volumes), "spec.volumes")
        where = f"container {container_name!r}"
        mounts = target.get("volumeMounts") or []
        _raise_on_overlap("volume mount name(s)", _names(mounts), _names(self.container_volume_mounts), where)
        _raise_on_overlap(
            "mount path(s)", _names(mounts, "mountPath"), _names(self.container_volume_mounts, "mountPath"), where
        )
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
            raise ValueError(
                f"GPUDirect patch would overwrite annotation(s) {', '.join(conflicting)}; "
                f"remove them from the pod template"
            )
        annotations.update(self.annotations)
        if annotations:
            metadata["annotations"] = annotations
        result["spec"] = self.apply_to_pod_spec(result.get("spec") or {}, container_name)
        return result


def _interfaces_annotation(nic_count: int) -> str:
    interfaces = [{"interfaceName": PRIMARY_INTERFACE, "network": DEFAULT_POD_NETWORK}]
    interfaces += [{"interfaceName": interface_name(i), "network": network_name(i)} for i in range(1, nic_count + 1)]
    return json.dumps(interfaces, separators=(",", ":"))


def _daemon_devices_annotation(flavour: GpuDirect, gpu_count: int) -> str:
    # A YAML list, as the NRI device injector parses it; the daemon needs every GPU of the node plus the
    # driver's control and UVM devices, without requesting nvidia.com/gpu itself.
    paths = [f"/dev/nvidia{i}" for i in range(gpu_count)]
    paths += ["/dev/nvidiactl", "/dev/nvidia-uvm", *FLAVOURS[flavour].extra_daemon_devices]
    return "".join(f"- path: {path}\n" for path in paths)


def _tcpx_daemon() -> dict[str, Any]:
    return {
        "name": FLAVOURS[GpuDirect.TCPX].daemon_name,
        "image": GPUDIRECT_RELEASES[GpuDirect.TCPX].rxdm_image,
        "imagePullPolicy": "IfNotPresent",  # pinned tag: no registry round-trip on every pod start
        # Native sidecar: starts before the main container and stops with it, so the pod can complete.
        "restartPolicy": "Always",
        "command": [
            "/tcpgpudmarxd/build/app/tcpgpudmarxd",
            "--gpu_nic_preset",
            "a3vm",
            "--gpu_shmem_type",
            "fd",
            "--uds_path",
            TCPX_DAEMON_SOCKET_DIR,
            # Byte for byte as in CEA's qualified manifest (escaped quotes included): RxDM forwards it.
            "--setup_param",
            '\\"--verbose 128 2 0 \\"',
        ],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
        "env": [env_var("LD_LIBRARY_PATH", NCCL_LIB_DIR)],
        "volumeMounts": [
            volume_mount(_VOL_NCCL_LIB, NCCL_LIB_DIR),
            volume_mount(_VOL_TCPX_SOCKET, TCPX_DAEMON_SOCKET_DIR),
            volume_mount(_VOL_SYS, "/hostsysfs"),
            volume_mount(_VOL_PROC_SYS, "/hostprocsysfs"),
        ],
    }


def _tcpxo_daemon() -> dict[str, Any]:
    # `--num_nics` is gone: it has been ignored since the Nov 2025 release.
    script = "\n".join(
        ["set -ex", "chmod 755 /fts/entrypoint_rxdm_container.sh", "/fts/entrypoint_rxdm_container.sh --num_hops=2"]
    )
    return {
        "name": FLAVOURS[GpuDirect.TCPXO].daemon_name,
        "image": GPUDIRECT_RELEASES[GpuDirect.TCPXO].rxdm_image,
        "imagePullPolicy": "IfNotPresent",  # pinned tag: no registry round-trip on every pod start
        # Native sidecar: starts before the main container and stops with it, so the pod can complete.
        "restartPolicy": "Always",
        "command": ["/bin/sh", "-c"],
        "args": [script],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_BIND_SERVICE"]}},
        "env": [env_var("LD_LIBRARY_PATH", NCCL_LIB_DIR), env_var("HEALTH_CHECK_LOG_FILE", _TCPXO_HEALTH_CHECK_FILE)],
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
            volume_mount(_VOL_NCCL_LIB, NCCL_LIB_DIR),
            volume_mount(_VOL_SYS, "/hostsysfs"),
            volume_mount(_VOL_PROC_SYS, "/hostprocsysfs"),
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
    spec = supported(flavour, "workload_pod_patch")
    check_count("nic_count", nic_count, flavour, "gpu_nic_count")
    check_count("gpu_count", gpu_count, flavour, "gpu_count")

    annotations = {
        f"devices.gke.io/container.{spec.daemon_name}": _daemon_devices_annotation(flavour, gpu_count),
        "networking.gke.io/default-interface": PRIMARY_INTERFACE,
        "networking.gke.io/interfaces": _interfaces_annotation(nic_count),
    }
    volumes = [
        host_path_volume(_VOL_NCCL_LIB, HOST_NCCL_LIB_DIR),
        host_path_volume(_VOL_SYS, "/sys"),
        host_path_volume(_VOL_PROC_SYS, "/proc/sys"),
    ]
    mounts = [volume_mount(_VOL_NCCL_LIB, NCCL_LIB_DIR)]
    if flavour is GpuDirect.TCPX:
        daemon = _tcpx_daemon()
        volumes.append({"name": _VOL_TCPX_SOCKET, "emptyDir": {}})
        mounts.append(volume_mount(_VOL_TCPX_SOCKET, TCPX_WORKLOAD_SOCKET_DIR))
    else:
        daemon = _tcpxo_daemon()
        # `Directory`, not the default: until the installer has created it, the pod waits at volume setup
        # instead of starting with an empty directory that the later bind mounts never reach.
        volumes.append(host_path_volume(_VOL_APERTURE, APERTURE_DEVICES_DIR, "Directory"))
        mounts.append(volume_mount(_VOL_APERTURE, APERTURE_DEVICES_DIR))

    return PodPatch(
        annotations=annotations,
        init_containers=[daemon],
        volumes=volumes,
        container_volume_mounts=mounts,
        container_env=[*nccl_env(flavour, nic_count), env_var("LD_LIBRARY_PATH", NCCL_LIB_DIR)],
    )
