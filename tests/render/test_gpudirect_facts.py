"""The transcribed GPUDirect facts, pinned literally: each rendered value against the value its source documents.

The other GPUDirect tests compare the renderers with the project's own constants, so a wrong constant passes
them. Here the expected values come from tests/render/golden/gpudirect-<flavour>.yaml, typed in by hand from the
sources it lists; a failure names the fact, both values and the source to re-read before changing either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.catalog import GPUDIRECT_RELEASES, MACHINE_PROFILES, GpuDirect
from infra.render.gpudirect.daemonsets import nccl_installer_daemonset
from infra.render.gpudirect.networks import gpu_network_objects
from infra.render.gpudirect.pod_patch import workload_pod_patch

GOLDEN = Path(__file__).parent / "golden"
STACK_OF_FLAVOUR = {"tcpx": "staging", "tcpxo": "prod"}  # the shipped stack that runs each flavour


def golden(flavour: str) -> dict:
    return yaml.safe_load((GOLDEN / f"gpudirect-{flavour}.yaml").read_text())


def facts() -> list:
    """(flavour, section, key, fact) for every documented value, as pytest params with readable ids."""
    params = []
    for flavour in STACK_OF_FLAVOUR:
        document = golden(flavour)
        for section in ("gpu_networks", "nccl_env", "sidecar", "annotations"):
            for key, fact in document[section].items():
                params.append(pytest.param(flavour, section, key, fact, id=f"{flavour}-{section}-{key}"))
        params.append(
            pytest.param(flavour, "installer_image", "", document["installer_image"], id=f"{flavour}-installer_image")
        )
    return params


def _patch(flavour: GpuDirect):
    machine = next(m for m in MACHINE_PROFILES.values() if m.gpudirect is flavour)
    return workload_pod_patch(flavour, machine.gpu_nic_count, machine.gpu_count)


def _gpu_vpcs(plan) -> list:
    return sorted(
        (r for r in plan.resources if r.type == "gcp:compute/network:Network" and r.name.startswith("llm-net-gpu")),
        key=lambda r: r.name,
    )


def _rendered(flavour_name: str, section: str, key: str, planned) -> Any:
    flavour = GpuDirect(flavour_name)
    patch = _patch(flavour)
    if section == "gpu_networks":
        vpcs = _gpu_vpcs(planned(STACK_OF_FLAVOUR[flavour_name]))
        objects = [obj for index in range(1, len(vpcs) + 1) for obj in gpu_network_objects(index, "v", "s")]
        return {
            "count": len(vpcs),
            "mtu": sorted({vpc.inputs.get("mtu") for vpc in vpcs}) if vpcs else None,
            "device_mode": sorted({o["spec"]["deviceMode"] for o in objects if o["kind"] == "GKENetworkParamSet"}),
            "network_type": sorted({o["spec"]["type"] for o in objects if o["kind"] == "Network"}),
            "names": [o["metadata"]["name"] for o in objects if o["kind"] == "Network"],
        }[key]
    if section == "nccl_env":
        env = {item["name"]: item["value"] for item in patch.container_env}
        return env.get(key, "<not set>")
    if section == "annotations":
        value = patch.annotations.get(key)
        if key == "networking.gke.io/interfaces":
            return json.loads(value)
        if key.startswith("devices.gke.io/"):
            return [item["path"] for item in yaml.safe_load(value)]
        return value
    if section == "installer_image":
        return GPUDIRECT_RELEASES[flavour].installer_image
    sidecar = patch.init_containers[0]
    volumes = {volume["name"]: volume for volume in patch.volumes}
    return {
        "name": lambda: sidecar["name"],
        "image": lambda: sidecar["image"],
        "command": lambda: sidecar["command"],
        "script_runs": lambda: sidecar["args"][0].splitlines()[-1],
        "capabilities": lambda: sidecar["securityContext"]["capabilities"]["add"],
        "health_check_file": lambda: {e["name"]: e["value"] for e in sidecar["env"]}["HEALTH_CHECK_LOG_FILE"],
        "mounts": lambda: {
            m["mountPath"]: volumes[m["name"]]["hostPath"]["path"]
            for m in sidecar["volumeMounts"]
            if "hostPath" in volumes[m["name"]]
        },
    }[key]()


def _normalise(section: str, key: str, value: Any) -> Any:
    if section == "gpu_networks" and key in ("mtu", "device_mode", "network_type"):
        return [value]  # one value across every GPU network
    return value


@pytest.mark.parametrize("flavour, section, key, fact", facts())
def test_rendered_value_is_the_documented_one(flavour, section, key, fact, planned):
    sources = golden(flavour)["sources"]
    expected = _normalise(section, key, fact["value"])
    actual = _rendered(flavour, section, key, planned)
    where = f"{section}.{key}" if key else section
    assert actual == expected, (
        f"GPUDirect-{flavour.upper()} {where}: the code renders {actual!r} but the documented value is "
        f"{expected!r} ({fact['source']}: {sources[fact['source']]}). Re-read the source before changing "
        f"tests/render/golden/gpudirect-{flavour}.yaml."
    )


@pytest.mark.parametrize("flavour", list(STACK_OF_FLAVOUR))
def test_no_nccl_variable_is_rendered_without_a_documented_value(flavour):
    documented = set(golden(flavour)["nccl_env"])
    rendered = {item["name"] for item in _patch(GpuDirect(flavour)).container_env}
    assert rendered == documented, (
        f"GPUDirect-{flavour.upper()}: rendered but undocumented {sorted(rendered - documented)}, documented "
        f"but not rendered {sorted(documented - rendered)}; add each with its source to "
        f"tests/render/golden/gpudirect-{flavour}.yaml"
    )


@pytest.mark.parametrize("flavour", list(STACK_OF_FLAVOUR))
def test_every_source_key_is_defined_and_used(flavour):
    document = golden(flavour)
    used = {
        fact["source"]
        for section in ("gpu_networks", "nccl_env", "sidecar", "annotations")
        for fact in document[section].values()
    } | {document["installer_image"]["source"]}
    assert used <= set(document["sources"]), f"undefined source keys {sorted(used - set(document['sources']))}"
    assert set(document["sources"]) <= used, f"unused source keys {sorted(set(document['sources']) - used)}"


@pytest.mark.parametrize("flavour", list(STACK_OF_FLAVOUR))
def test_the_installer_daemonset_uses_the_documented_installer(flavour):
    expected = golden(flavour)["installer_image"]["value"]
    daemonset = nccl_installer_daemonset(GpuDirect(flavour))
    images = [c["image"] for c in daemonset["spec"]["template"]["spec"].get("initContainers", [])]
    assert expected in images, f"{flavour}: installer DaemonSet runs {images}, documented {expected}"
