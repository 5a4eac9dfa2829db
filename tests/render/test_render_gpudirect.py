"""Offline tests for the infra.render.gpudirect renderers: schema validity and the GPUDirect invariants, no cluster."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from infra import catalog
from infra.catalog import GpuDirect
from infra.render.gpudirect.daemonsets import nccl_installer_daemonset, nri_device_injector_daemonset
from infra.render.gpudirect.nccl import nccl_env
from infra.render.gpudirect.networks import gpu_network_objects, network_name
from infra.render.gpudirect.pod_patch import PodPatch, workload_pod_patch

GPUDIRECT_FLAVOURS = [GpuDirect.TCPX, GpuDirect.TCPXO]
SERVING_CONTAINER = "ray-worker"


def _profile(flavour: GpuDirect) -> catalog.MachineProfile:
    (profile,) = [p for p in catalog.MACHINE_PROFILES.values() if p.gpudirect == flavour]
    return profile


def _full_patch(flavour: GpuDirect) -> PodPatch:
    profile = _profile(flavour)
    return workload_pod_patch(flavour, profile.gpu_nic_count, profile.gpu_count)


def _minimal_pod_spec(gpu_count: int = 8) -> dict:
    """Roughly what KubeRay renders for a GPU worker: one container, its own env, mounts and /dev/shm."""
    return {
        "containers": [
            {
                "name": SERVING_CONTAINER,
                "image": "registry.example/serving:test",
                "env": [{"name": "RAY_LOG_TO_STDERR", "value": "1"}],
                "volumeMounts": [{"name": "shared-mem", "mountPath": "/dev/shm"}],
                "resources": {"limits": {catalog.GPU_RESOURCE: gpu_count}},
            }
        ],
        "volumes": [{"name": "shared-mem", "emptyDir": {"medium": "Memory"}}],
        "tolerations": [{"key": catalog.GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
    }


def _sample_pod(flavour: GpuDirect) -> dict:
    patch = _full_patch(flavour) if flavour is not GpuDirect.NONE else PodPatch()
    template = patch.apply_to_pod_template({"spec": _minimal_pod_spec()}, SERVING_CONTAINER)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"sample-{flavour.value}", **template["metadata"]},
        "spec": template["spec"],
    }


def _env_map(env: list[dict]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in env}


def _pod_spec_of(daemonset: dict) -> dict:
    return daemonset["spec"]["template"]["spec"]


def _affinity_values(daemonset: dict) -> list[str]:
    terms = _pod_spec_of(daemonset)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    (term,) = terms
    (expression,) = term["matchExpressions"]
    assert expression["key"] == "cloud.google.com/gke-accelerator", f"affinity keys on {expression['key']}"
    assert expression["operator"] == "In", f"affinity operator is {expression['operator']}"
    return expression["values"]


def _tolerates(tolerations: list[dict], key: str, effect: str) -> bool:
    """Kubernetes' matching rule for a taint with a value (key/effect empty means any)."""
    for t in tolerations:
        if t.get("key", "") not in ("", key) or t.get("effect", "") not in ("", effect):
            continue
        if t.get("operator", "Equal") == "Exists" or t.get("value") is not None:
            return True
    return False


def _all_containers(pod_spec: dict) -> list[dict]:
    return list(pod_spec.get("initContainers") or []) + list(pod_spec["containers"])


# --------------------------------------------------------------------------------------------------------
# Schema validity of every built-in object
# --------------------------------------------------------------------------------------------------------

BUILT_IN_OBJECTS = {
    "nri-device-injector": nri_device_injector_daemonset,
    "nccl-tcpx-installer": lambda: nccl_installer_daemonset(GpuDirect.TCPX),
    "nccl-tcpxo-installer": lambda: nccl_installer_daemonset(GpuDirect.TCPXO),
    "pod-tcpx": lambda: _sample_pod(GpuDirect.TCPX),
    "pod-tcpxo": lambda: _sample_pod(GpuDirect.TCPXO),
    "pod-none": lambda: _sample_pod(GpuDirect.NONE),
}


@pytest.mark.parametrize("name", sorted(BUILT_IN_OBJECTS))
def test_built_in_objects_validate_against_kubernetes_schema(name, assert_valid_kubernetes_object):
    assert_valid_kubernetes_object(BUILT_IN_OBJECTS[name](), name)


# --------------------------------------------------------------------------------------------------------
# GPU networks
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [1, 4, 8])
def test_gpu_network_objects_are_a_param_set_and_its_network(index):
    vpc, subnet = object(), object()  # stand-ins for Pulumi Outputs: must be placed, never inspected
    param_set, network = gpu_network_objects(index, vpc, subnet)
    name = f"vpc{index}"

    assert (param_set["apiVersion"], param_set["kind"]) == ("networking.gke.io/v1", "GKENetworkParamSet"), (
        f"first object for NIC {index} is {param_set['apiVersion']} {param_set['kind']}"
    )
    assert param_set["metadata"] == {"name": name}, f"param set metadata is {param_set['metadata']}"
    assert param_set["spec"]["vpc"] is vpc, "spec.vpc is not the object passed in"
    assert param_set["spec"]["vpcSubnet"] is subnet, "spec.vpcSubnet is not the object passed in"
    assert param_set["spec"]["deviceMode"] == "NetDevice", f"deviceMode is {param_set['spec']['deviceMode']}"

    assert (network["apiVersion"], network["kind"]) == ("networking.gke.io/v1", "Network"), (
        f"second object for NIC {index} is {network['apiVersion']} {network['kind']}"
    )
    assert network["metadata"] == {"name": name}, f"network metadata is {network['metadata']}"
    assert network["spec"] == {
        "type": "Device",
        "parametersRef": {"group": "networking.gke.io", "kind": "GKENetworkParamSet", "name": name},
    }, f"network spec for NIC {index} is {network['spec']}"


@pytest.mark.parametrize("flavour", GPUDIRECT_FLAVOURS)
def test_network_names_run_vpc1_to_vpcN_for_the_machine(flavour):
    nics = _profile(flavour).gpu_nic_count
    names = [network_name(i) for i in range(1, nics + 1)]
    assert names == [f"vpc{i}" for i in range(1, nics + 1)], f"{flavour.value} network names are {names}"


@pytest.mark.parametrize("index", [0, -1, True, "1"])
def test_network_name_rejects_anything_but_a_positive_index(index):
    with pytest.raises(ValueError, match="GPU NIC index must be an integer >= 1"):
        network_name(index)


# --------------------------------------------------------------------------------------------------------
# Node DaemonSets
# --------------------------------------------------------------------------------------------------------


def test_nri_injector_targets_exactly_the_catalog_gpudirect_accelerators():
    daemonset = nri_device_injector_daemonset()
    expected = sorted(
        {p.gke_accelerator for p in catalog.MACHINE_PROFILES.values() if p.gpudirect is not GpuDirect.NONE}
    )
    assert expected == ["nvidia-h100-80gb", "nvidia-h100-mega-80gb"], f"catalog changed: {expected}"
    assert _affinity_values(daemonset) == expected, f"injector affinity is {_affinity_values(daemonset)}"
    assert daemonset["metadata"]["namespace"] == "kube-system", "injector is not in kube-system"
    (container,) = _pod_spec_of(daemonset)["containers"]
    assert container["image"] == (
        "gcr.io/gke-release/nri-device-injector@sha256:6e79483d52abdc28454bf186320b10a56b0f117a10e8d65d5c74dbb821a76970"
    ), f"injector image is {container['image']}"
    assert _tolerates(_pod_spec_of(daemonset)["tolerations"], catalog.GPU_TAINT_KEY, "NoSchedule"), (
        "injector does not tolerate the GPU taint"
    )


INSTALLER_CASES = [
    # flavour, accelerator it must target, init container images in order
    (GpuDirect.TCPX, "nvidia-h100-80gb", [catalog.GPUDIRECT_RELEASES[GpuDirect.TCPX].installer_image]),
    (
        GpuDirect.TCPXO,
        "nvidia-h100-mega-80gb",
        [catalog.HOST_SETUP_IMAGE, catalog.GPUDIRECT_RELEASES[GpuDirect.TCPXO].installer_image],
    ),
]


@pytest.mark.parametrize("flavour,accelerator,init_images", INSTALLER_CASES)
def test_installer_runs_on_its_flavours_nodes_with_catalog_images(flavour, accelerator, init_images):
    daemonset = nccl_installer_daemonset(flavour)
    spec = _pod_spec_of(daemonset)
    targets = _affinity_values(daemonset)
    assert targets == [accelerator], f"{flavour.value} installer targets {targets}"
    assert [c["image"] for c in spec["initContainers"]] == init_images, (
        f"{flavour.value} installer init images are {[c['image'] for c in spec['initContainers']]}"
    )
    assert [c["image"] for c in spec["containers"]] == [
        "gke.gcr.io/pause:3.8@sha256:880e63f94b145e46f1b1082bb71b85e21f16b99b180b9996407d61240ceb9830"
    ], f"{flavour.value} installer main containers are {spec['containers']}"
    assert daemonset["metadata"]["namespace"] == "kube-system", f"{flavour.value} installer not in kube-system"
    assert spec["priorityClassName"] == "system-node-critical", (
        f"{flavour.value} installer priority is {spec['priorityClassName']}"
    )
    assert spec["hostPID"] is True, f"{flavour.value} installer has no hostPID"
    assert _tolerates(spec["tolerations"], catalog.GPU_TAINT_KEY, "NoSchedule"), (
        f"{flavour.value} installer does not tolerate the GPU taint"
    )


@pytest.mark.parametrize("flavour", GPUDIRECT_FLAVOURS)
def test_installer_copies_the_plugin_into_the_hosts_nvidia_lib64(flavour):
    spec = _pod_spec_of(nccl_installer_daemonset(flavour))
    installer = spec["initContainers"][-1]
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    # Resolve the in-container destination of the final `cp` back to a host path through the mounts.
    script = installer["args"][0]
    copy_line = next(line for line in script.splitlines() if line.startswith("cp -r "))
    destination = copy_line.split()[-1]
    mount = next(m for m in installer["volumeMounts"] if destination.startswith(m["mountPath"] + "/"))
    host_destination = host_paths[mount["name"]] + destination[len(mount["mountPath"]) :]
    assert host_destination == "/home/kubernetes/bin/nvidia/lib64", (
        f"{flavour.value} installer copies to host {host_destination}"
    )
    assert installer["securityContext"] == {"privileged": True}, f"{flavour.value} installer is not privileged"
    assert "/scripts/container_entry.sh install --install-nccl" in script, (
        f"{flavour.value} installer does not install NCCL core: {script}"
    )


def test_tcpxo_host_setup_enters_the_host_and_prepares_apertures():
    setup = _pod_spec_of(nccl_installer_daemonset(GpuDirect.TCPXO))["initContainers"][0]
    assert setup["command"][:5] == ["nsenter", "-at", "1", "--", "sh"], f"host setup command is {setup['command'][:5]}"
    assert setup["securityContext"] == {"privileged": True}, "host setup is not privileged"
    script = setup["command"][-1]
    for needle in ("modprobe import-helper", "1ae0:0084", "/dev/aperture_devices"):
        assert needle in script, f"host setup script lacks {needle!r}"


@pytest.mark.parametrize("flavour", [GpuDirect.NONE])
def test_installer_for_a_non_gpudirect_flavour_is_refused_by_name(flavour):
    with pytest.raises(ValueError, match=r"GpuDirect\.NONE \('none'\).*tcpx, tcpxo"):
        nccl_installer_daemonset(flavour)


# --------------------------------------------------------------------------------------------------------
# NCCL environment
# --------------------------------------------------------------------------------------------------------

NCCL_ENV_EXPECTATIONS = [
    # flavour, nic_count, values that must be present exactly, names that must be absent
    (
        GpuDirect.TCPXO,
        8,
        {
            "NCCL_FASTRAK_IFNAME": "eth1,eth2,eth3,eth4,eth5,eth6,eth7,eth8",
            "NCCL_FASTRAK_CTRL_DEV": "eth0",
            "NCCL_SOCKET_IFNAME": "eth0",
            "NCCL_NVLSTREE_MAX_CHUNKSIZE": "131072",
            "NCCL_LIB_DIR": "/usr/local/nvidia/lib64",
            "NCCL_TUNER_CONFIG_PATH": "/usr/local/nvidia/lib64/a3plus_tuner_config.textproto",
            "NCCL_SHIMNET_GUEST_CONFIG_CHECKER_CONFIG_FILE": "/usr/local/nvidia/lib64/a3plus_guest_config.textproto",
            "NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY": "/dev/aperture_devices",
            "NCCL_PROTO": "Simple,LL128",
            "NCCL_NVLS_ENABLE": "1",
            "NCCL_BUFFSIZE": "8388608",
        },
        {"NCCL_ALGO", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"},
    ),
    (
        GpuDirect.TCPX,
        4,
        {
            "NCCL_GPUDIRECTTCPX_SOCKET_IFNAME": "eth1,eth2,eth3,eth4",
            "NCCL_GPUDIRECTTCPX_CTRL_DEV": "eth0",
            "NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX": "/tmp",
            "NCCL_GPUDIRECTTCPX_TX_BINDINGS": (
                "eth1:8-21,112-125;eth2:8-21,112-125;eth3:60-73,164-177;eth4:60-73,164-177"
            ),
            "NCCL_GPUDIRECTTCPX_RX_BINDINGS": (
                "eth1:22-35,126-139;eth2:22-35,126-139;eth3:74-87,178-191;eth4:74-87,178-191"
            ),
            "NCCL_ALGO": "Ring",
            "NCCL_PROTO": "Simple",
            "NCCL_P2P_PXN_LEVEL": "0",
        },
        {"NCCL_FASTRAK_IFNAME", "NCCL_NVLSTREE_MAX_CHUNKSIZE", "LD_LIBRARY_PATH"},
    ),
    (GpuDirect.TCPXO, 2, {"NCCL_FASTRAK_IFNAME": "eth1,eth2"}, set()),
    (
        GpuDirect.TCPX,
        2,
        {
            "NCCL_GPUDIRECTTCPX_SOCKET_IFNAME": "eth1,eth2",
            "NCCL_GPUDIRECTTCPX_TX_BINDINGS": "eth1:8-21,112-125;eth2:8-21,112-125",
        },
        set(),
    ),
]


@pytest.mark.parametrize("flavour,nic_count,present,absent", NCCL_ENV_EXPECTATIONS)
def test_nccl_env_values(flavour, nic_count, present, absent):
    env = nccl_env(flavour, nic_count)
    names = [item["name"] for item in env]
    assert len(names) == len(set(names)), f"{flavour.value} env repeats names: {sorted(names)}"
    assert all(isinstance(item["value"], str) for item in env), f"{flavour.value} env has non-string values"
    values = _env_map(env)
    for name, value in present.items():
        assert values.get(name) == value, (
            f"{flavour.value}/{nic_count} NICs: {name}={values.get(name)!r}, want {value!r}"
        )
    for name in absent:
        assert name not in values, f"{flavour.value} env must not set {name}"


@pytest.mark.parametrize(
    "flavour,nic_count",
    [(GpuDirect.TCPXO, 0), (GpuDirect.TCPXO, 9), (GpuDirect.TCPX, 5), (GpuDirect.TCPX, -1), (GpuDirect.TCPX, 2.0)],
)
def test_nccl_env_rejects_nic_counts_the_machine_does_not_have(flavour, nic_count):
    with pytest.raises(ValueError, match=rf"nic_count for GpuDirect\.{flavour.name} must be an integer in 1\.\."):
        nccl_env(flavour, nic_count)


def test_nccl_env_is_empty_without_gpudirect():
    assert nccl_env(GpuDirect.NONE, 0) == [], "NONE should need no NCCL settings"


# --------------------------------------------------------------------------------------------------------
# Workload pod patch
# --------------------------------------------------------------------------------------------------------

ANNOTATION_CASES = [
    # flavour, nic_count, gpu_count, daemon container, extra device
    (GpuDirect.TCPXO, 8, 8, "tcpxo-daemon", ["/dev/dmabuf_import_helper"]),
    (GpuDirect.TCPX, 4, 8, "tcpx-daemon", []),
    (GpuDirect.TCPX, 2, 4, "tcpx-daemon", []),
]


@pytest.mark.parametrize("flavour,nic_count,gpu_count,daemon,extra_devices", ANNOTATION_CASES)
def test_annotations_request_the_nics_and_the_daemons_devices(flavour, nic_count, gpu_count, daemon, extra_devices):
    annotations = workload_pod_patch(flavour, nic_count, gpu_count).annotations

    raw_interfaces = annotations["networking.gke.io/interfaces"]
    assert " " not in raw_interfaces and "\n" not in raw_interfaces, f"interfaces JSON is not compact: {raw_interfaces}"
    expected_interfaces = [{"interfaceName": "eth0", "network": "default"}] + [
        {"interfaceName": f"eth{i}", "network": f"vpc{i}"} for i in range(1, nic_count + 1)
    ]
    assert json.loads(raw_interfaces) == expected_interfaces, f"{flavour.value} interfaces are {raw_interfaces}"
    assert annotations["networking.gke.io/default-interface"] == "eth0", "default interface is not eth0"

    devices = yaml.safe_load(annotations[f"devices.gke.io/container.{daemon}"])
    expected_devices = [f"/dev/nvidia{i}" for i in range(gpu_count)] + [
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        *extra_devices,
    ]
    assert devices == [{"path": p} for p in expected_devices], f"{daemon} devices are {devices}"
    assert set(annotations) == {
        "networking.gke.io/interfaces",
        "networking.gke.io/default-interface",
        f"devices.gke.io/container.{daemon}",
    }, f"unexpected annotations {sorted(annotations)}"


@pytest.mark.parametrize("flavour", GPUDIRECT_FLAVOURS)
def test_daemon_is_a_native_sidecar_from_the_installers_release(flavour):
    patch = _full_patch(flavour)
    (daemon,) = patch.init_containers
    release = catalog.GPUDIRECT_RELEASES[flavour]
    installer_images = [c["image"] for c in _pod_spec_of(nccl_installer_daemonset(flavour))["initContainers"]]
    assert daemon["image"] == release.rxdm_image, f"{flavour.value} daemon image is {daemon['image']}"
    assert release.installer_image in installer_images, (
        f"{flavour.value} installer {installer_images} is not from the daemon's release {release}"
    )
    assert daemon["restartPolicy"] == "Always", f"{flavour.value} daemon is not a native sidecar"
    assert "privileged" not in daemon.get("securityContext", {}), f"{flavour.value} daemon should not be privileged"
    assert f"devices.gke.io/container.{daemon['name']}" in patch.annotations, (
        f"no NRI device annotation names {daemon['name']}"
    )


def test_tcpxo_daemon_fails_fast_through_its_health_check_file():
    (daemon,) = _full_patch(GpuDirect.TCPXO).init_containers
    health_file = _env_map(daemon["env"]).get("HEALTH_CHECK_LOG_FILE")
    assert health_file == "/run/health-check", f"HEALTH_CHECK_LOG_FILE is {health_file!r}"
    probe = daemon.get("startupProbe")
    assert probe is not None, "tcpxo-daemon has no startupProbe"
    assert probe["exec"]["command"] == ["cat", health_file], f"startupProbe runs {probe['exec']['command']}"
    assert "--num_nics" not in daemon["args"][0], "obsolete --num_nics flag still passed"


def test_tcpx_daemon_shares_its_socket_directory_with_the_main_container_at_tmp():
    patch = _full_patch(GpuDirect.TCPX)
    (daemon,) = patch.init_containers
    assert "startupProbe" not in daemon, "tcpx-daemon has a startupProbe CEA's qualified manifest does not give"
    daemon_mounts = {m["mountPath"]: m["name"] for m in daemon["volumeMounts"]}
    main_mounts = {m["mountPath"]: m["name"] for m in patch.container_volume_mounts}
    socket_volume = daemon_mounts.get("/run/tcpx")
    assert socket_volume is not None, f"tcpx-daemon mounts {daemon_mounts}"
    assert main_mounts.get("/tmp") == socket_volume, (
        f"main container mounts {main_mounts}, want {socket_volume} at /tmp"
    )
    volume = next(v for v in patch.volumes if v["name"] == socket_volume)
    assert volume.get("emptyDir") == {}, f"socket volume should be a pod-scoped emptyDir, is {volume}"
    command = daemon["command"]
    assert "--uds_path" in command and command[command.index("--uds_path") + 1] == "/run/tcpx", (
        f"tcpx-daemon serves its sockets elsewhere: {command}"
    )


@pytest.mark.parametrize("flavour", GPUDIRECT_FLAVOURS)
def test_patch_leaves_dev_shm_to_kuberay(flavour):
    patch = _full_patch(flavour)
    mounts = patch.container_volume_mounts + [m for c in patch.init_containers for m in c.get("volumeMounts", [])]
    assert not [m for m in mounts if m["mountPath"] == "/dev/shm"], f"{flavour.value} patch mounts /dev/shm"
    assert not [v for v in patch.volumes if v.get("emptyDir", {}).get("medium") == "Memory"], (
        f"{flavour.value} patch adds a memory-backed volume"
    )


@pytest.mark.parametrize("flavour", GPUDIRECT_FLAVOURS)
def test_container_env_is_nccl_env_plus_ld_library_path(flavour):
    profile = _profile(flavour)
    patch = _full_patch(flavour)
    expected = [
        *nccl_env(flavour, profile.gpu_nic_count),
        {"name": "LD_LIBRARY_PATH", "value": "/usr/local/nvidia/lib64"},
    ]
    assert patch.container_env == expected, f"{flavour.value} container env differs from nccl_env + LD_LIBRARY_PATH"
    lib_mount = [m for m in patch.container_volume_mounts if m["mountPath"] == "/usr/local/nvidia/lib64"]
    assert len(lib_mount) == 1, f"{flavour.value} main container mounts {patch.container_volume_mounts}"
    lib_volume = next(v for v in patch.volumes if v["name"] == lib_mount[0]["name"])
    assert lib_volume["hostPath"]["path"] == "/home/kubernetes/bin/nvidia/lib64", (
        f"NCCL lib volume is {lib_volume}, not the installer's destination"
    )


@pytest.mark.parametrize("flavour", [*GPUDIRECT_FLAVOURS, GpuDirect.NONE])
def test_every_image_comes_from_the_catalog(flavour):
    catalog_images = {catalog.NRI_DEVICE_INJECTOR_IMAGE, catalog.PAUSE_IMAGE, catalog.HOST_SETUP_IMAGE}
    catalog_images |= {img for r in catalog.GPUDIRECT_RELEASES.values() for img in (r.installer_image, r.rxdm_image)}
    pods = [nri_device_injector_daemonset()["spec"]["template"]["spec"], _sample_pod(flavour)["spec"]]
    if flavour is not GpuDirect.NONE:
        pods.append(_pod_spec_of(nccl_installer_daemonset(flavour)))
    for spec in pods:
        for container in _all_containers(spec):
            if container["name"] == SERVING_CONTAINER:
                continue
            assert container["image"] in catalog_images, (
                f"{container['name']} uses non-catalog image {container['image']}"
            )


@pytest.mark.parametrize(
    "flavour,nic_count,gpu_count,message",
    [
        (GpuDirect.TCPXO, 8, 9, r"gpu_count for GpuDirect\.TCPXO must be an integer in 1\.\.8"),
        (GpuDirect.TCPXO, 8, 0, r"gpu_count for GpuDirect\.TCPXO"),
        (GpuDirect.TCPX, 8, 8, r"nic_count for GpuDirect\.TCPX must be an integer in 1\.\.4"),
    ],
)
def test_workload_pod_patch_rejects_counts_beyond_the_machine(flavour, nic_count, gpu_count, message):
    with pytest.raises(ValueError, match=message):
        workload_pod_patch(flavour, nic_count, gpu_count)


# --------------------------------------------------------------------------------------------------------
# Applying the patch
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", GPUDIRECT_FLAVOURS)
def test_apply_merges_into_the_named_container_without_mutating_anything(flavour):
    patch = _full_patch(flavour)
    original = _minimal_pod_spec()
    original["initContainers"] = [{"name": "fetch-weights", "image": "registry.example/fetch:test"}]
    original["containers"].append({"name": "log-shipper", "image": "registry.example/logs:test"})
    snapshot_spec, snapshot_patch = copy.deepcopy(original), copy.deepcopy(patch)

    merged = patch.apply_to_pod_spec(original, SERVING_CONTAINER)

    assert original == snapshot_spec, "apply_to_pod_spec mutated its input"
    assert patch == snapshot_patch, "apply_to_pod_spec mutated the patch"
    worker = merged["containers"][0]
    assert worker["env"] == original["containers"][0]["env"] + patch.container_env, "env not appended in order"
    assert worker["volumeMounts"] == original["containers"][0]["volumeMounts"] + patch.container_volume_mounts, (
        "mounts not appended in order"
    )
    assert merged["volumes"] == original["volumes"] + patch.volumes, "volumes not appended in order"
    assert merged["initContainers"] == patch.init_containers + original["initContainers"], (
        "daemon not prepended to the init containers"
    )
    assert merged["containers"][1] == original["containers"][1], "another container was touched"
    merged["initContainers"][0]["env"].append({"name": "X", "value": "1"})
    assert patch == snapshot_patch, "the result shares objects with the patch"


DUPLICATE_CASES = [
    # id, how the pod spec is spoiled, error message fragment
    ("env", lambda spec, patch: spec["containers"][0]["env"].append(dict(patch.container_env[0])), "env var"),
    ("volume", lambda spec, patch: spec["volumes"].append(dict(patch.volumes[0])), "volume name"),
    (
        "mount-name",
        lambda spec, patch: spec["containers"][0]["volumeMounts"].append(
            {"name": patch.container_volume_mounts[0]["name"], "mountPath": "/elsewhere"}
        ),
        "volume mount name",
    ),
    (
        "mount-path",
        lambda spec, patch: spec["containers"][0]["volumeMounts"].append(
            {"name": "mine", "mountPath": patch.container_volume_mounts[-1]["mountPath"]}
        ),
        "mount path",
    ),
    (
        "container",
        lambda spec, patch: spec.setdefault("initContainers", []).append(
            {"name": patch.init_containers[0]["name"], "image": "registry.example/x:test"}
        ),
        "container name",
    ),
]


@pytest.mark.parametrize("flavour", GPUDIRECT_FLAVOURS)
@pytest.mark.parametrize("case,spoil,message", DUPLICATE_CASES, ids=[c[0] for c in DUPLICATE_CASES])
def test_apply_refuses_to_duplicate_names(flavour, case, spoil, message):
    patch = _full_patch(flavour)
    spec = _minimal_pod_spec()
    spoil(spec, patch)
    with pytest.raises(ValueError, match=f"would duplicate {message}"):
        patch.apply_to_pod_spec(spec, SERVING_CONTAINER)


def test_apply_names_the_missing_container():
    with pytest.raises(ValueError, match=r"container 'vllm' not found in pod spec; containers are: ray-worker"):
        _full_patch(GpuDirect.TCPXO).apply_to_pod_spec(_minimal_pod_spec(), "vllm")


def test_apply_to_template_refuses_to_overwrite_an_annotation():
    template = {
        "metadata": {"annotations": {"networking.gke.io/default-interface": "eth1"}},
        "spec": _minimal_pod_spec(),
    }
    with pytest.raises(ValueError, match=r"would overwrite annotation.*default-interface"):
        _full_patch(GpuDirect.TCPX).apply_to_pod_template(template, SERVING_CONTAINER)


def test_none_gives_an_empty_patch_that_applies_as_a_copy():
    patch = workload_pod_patch(GpuDirect.NONE, 0, 2)
    assert patch == PodPatch() and patch.is_empty, f"NONE patch is not empty: {patch}"
    spec = _minimal_pod_spec(gpu_count=2)
    merged = patch.apply_to_pod_spec(spec, SERVING_CONTAINER)
    assert merged == spec and merged is not spec, "empty patch changed the spec or returned the same object"
    template = patch.apply_to_pod_template({"spec": spec}, SERVING_CONTAINER)
    assert "annotations" not in template["metadata"], f"empty patch added annotations {template['metadata']}"
