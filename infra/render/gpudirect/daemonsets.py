"""The node DaemonSets of GPUDirect (kube-system): the NRI device injector and the flavour's NCCL plugin
installer."""

from __future__ import annotations

from typing import Any

from infra.catalog import (
    ACCELERATOR_NODE_LABEL,
    GPUDIRECT_RELEASES,
    HOST_SETUP_IMAGE,
    NRI_DEVICE_INJECTOR_IMAGE,
    PAUSE_IMAGE,
    GpuDirect,
)
from infra.render.gpudirect.facts import (
    APERTURE_DEVICES_DIR,
    FLAVOURS,
    HOST_KUBERNETES_BIN,
    gpudirect_accelerators,
    host_path_volume,
    supported,
    volume_mount,
)

SYSTEM_NAMESPACE = "kube-system"


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
                        {
                            "matchExpressions": [
                                {"key": ACCELERATOR_NODE_LABEL, "operator": "In", "values": accelerators}
                            ]
                        }
                    ]
                }
            }
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
        "volumeMounts": [volume_mount("dev", "/dev"), volume_mount("nri", "/var/run/nri")],
    }
    # Upstream also declares a hostPath volume for "/" that nothing mounts; it is left out on purpose.
    volumes = [host_path_volume("dev", "/dev"), host_path_volume("nri", "/var/run/nri")]
    gpudirect_flavours = [f for f in GpuDirect if f is not GpuDirect.NONE]
    return _node_daemonset(
        "device-injector",
        accelerators=gpudirect_accelerators(gpudirect_flavours),
        containers=[injector],
        volumes=volumes,
    )


# The installer container sees the host's /home/kubernetes/bin at /usr/local, so its
# /usr/local/nvidia/lib64 *is* HOST_NCCL_LIB_DIR.
_INSTALLER_BIN_MOUNT = "/usr/local"
_INSTALLER_DESTINATION = f"{_INSTALLER_BIN_MOUNT}/nvidia/lib64"


def _plugin_install_container(flavour: GpuDirect) -> dict[str, Any]:
    spec = FLAVOURS[flavour]
    script = "\n".join(
        [
            "set -ex",
            "chmod 755 /scripts/container_entry.sh",
            # Installs the NCCL net plugin *and* the NCCL core it was qualified with into the staging dir.
            "/scripts/container_entry.sh install --install-nccl",
            f"mkdir -p {_INSTALLER_DESTINATION}",
            f"cp -r {spec.installer_staging_dir}/. {_INSTALLER_DESTINATION}",
            'echo "installation finishes"',
        ]
    )
    return {
        "name": spec.installer_name,
        "image": GPUDIRECT_RELEASES[flavour].installer_image,
        "resources": {"requests": {"cpu": "150m"}},
        "securityContext": {"privileged": True},
        "volumeMounts": [volume_mount("var-lib", "/var/lib"), volume_mount("kubernetes-bin", _INSTALLER_BIN_MOUNT)],
        "command": ["/bin/sh", "-c"],
        "args": [script],
    }


def _tcpxo_host_setup_container() -> dict[str, Any]:
    """Prepares an A3 Mega host for TCPXO; runs in the host's namespaces via nsenter on PID 1."""
    script = "\n".join(
        [
            # COS's host firewall drops inbound TCP by default and the qualified TCPXO setup opens it. `-C`
            # first keeps the rule single when the DaemonSet pod restarts.
            "{ /sbin/iptables -C INPUT -p tcp -m tcp -j ACCEPT || /sbin/iptables -I INPUT -p tcp -m tcp -j ACCEPT; }"
            " && modprobe import-helper",  # provides /dev/dmabuf_import_helper for the tcpxo-daemon
            f"sudo mkdir -p {APERTURE_DEVICES_DIR}",
            # One bind mount per NIC aperture (PCI id 1ae0:0084), named by its PCI address.
            "while IFS= read -r line; do",
            "  BDF=$(echo \"$line\" | awk '{print $1}')",
            f'  target="{APERTURE_DEVICES_DIR}/$BDF"',
            '  device=$(readlink -f "/sys/bus/pci/devices/$BDF")',
            '  sudo mkdir -p "$target"',
            '  sudo umount -R "$target"',  # fails harmlessly on first boot; makes a restart idempotent
            '  sudo mount --bind "$device" "$target"',
            "done < <(lspci -nn -D | grep '1ae0:0084')",
            # The workload is unprivileged and must mmap the apertures' resource files.
            f"if [ -d {APERTURE_DEVICES_DIR} ]; then",
            f"  chmod -R a+r {APERTURE_DEVICES_DIR}/",
            f"  chmod a+rw {APERTURE_DEVICES_DIR}/*/resource*",
            "fi",
        ]
    )
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
    match the daemon image of the same `GpuDirectRelease` used in `pod_patch.workload_pod_patch`.

    Raises ValueError for GpuDirect.NONE.
    """
    spec = supported(flavour, "nccl_installer_daemonset")
    init_containers = [_plugin_install_container(flavour)]
    if flavour is GpuDirect.TCPXO:
        init_containers.insert(0, _tcpxo_host_setup_container())
    volumes = [host_path_volume("var-lib", "/var/lib"), host_path_volume("kubernetes-bin", HOST_KUBERNETES_BIN)]
    return _node_daemonset(
        spec.installer_name,
        accelerators=gpudirect_accelerators([flavour]),
        init_containers=init_containers,
        containers=[{"name": "pause", "image": PAUSE_IMAGE}],
        volumes=volumes,
    )
