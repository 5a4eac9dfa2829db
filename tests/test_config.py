"""Stack config: the typed result of good input, and one test per bad-input rule, checked by its message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from infra.catalog import GpuDirect
from infra.config import CONFIG_KEYS, ConfigError, parse_stack_config

ROOT = Path(__file__).resolve().parent.parent
GCP = {"project": "p", "region": "us-east4"}
BASE = {
    "gpuMachineType": "a3-megagpu-8g",
    "gpuZones": '["us-east4-b"]',
    "masterAuthorizedNetworks": '["198.18.0.0/24"]',
}


def parse(gcp=GCP, **overrides):
    values = {**BASE, **{key: value if isinstance(value, str) else json.dumps(value)
                         for key, value in overrides.items()}}
    values = {key: value for key, value in values.items() if value != "null"}
    return parse_stack_config("test", values, gcp)


def problems_of(**overrides) -> str:
    gcp = overrides.pop("gcp", GCP)
    with pytest.raises(ConfigError) as raised:
        parse(gcp=gcp, **overrides)
    return str(raised.value)


def test_defaults_give_a_two_node_a3_mega_pool_with_tcpxo():
    config = parse()
    pool = config.gpu_pool
    assert (pool.node_count, pool.autoscaling, pool.compact_placement) == (2, False, True)
    assert pool.gpudirect is GpuDirect.TCPXO
    assert pool.gpu_network_count == 8
    assert len(config.network.gpu_subnet_cidrs) == 8
    assert config.network.gpu_subnet_cidrs[:2] == ("192.168.0.0/19", "192.168.32.0/19")
    assert config.cluster.location == "us-east4"
    assert config.cluster.deletion_protection is True
    assert config.cluster.node_upgrade_freeze_start == "2026-11-01T00:00:00Z"
    assert config.warnings == ()


def test_a3_high_uses_the_first_four_gpu_subnets_so_a_move_to_mega_keeps_them():
    config = parse(gpuMachineType="a3-highgpu-8g")
    assert config.gpu_pool.gpudirect is GpuDirect.TCPX
    assert config.network.gpu_subnet_cidrs == ("192.168.0.0/19", "192.168.32.0/19", "192.168.64.0/19",
                                               "192.168.96.0/19")


def test_gpudirect_can_be_switched_off_and_then_no_gpu_networks_exist():
    config = parse(gpuDirect=False)
    assert config.gpu_pool.gpudirect is GpuDirect.NONE
    assert config.network.gpu_subnet_cidrs == ()
    assert any("gpuDirect" in warning for warning in config.warnings)


def test_zonal_cluster_lives_in_the_first_gpu_zone():
    assert parse(regionalCluster=False).cluster.location == "us-east4-b"


def test_documentation_range_in_authorized_networks_is_a_warning_not_an_error():
    config = parse(masterAuthorizedNetworks=["203.0.113.0/24"])
    assert any("documentation range" in warning for warning in config.warnings)


def test_open_control_plane_is_allowed_only_with_the_explicit_opt_out():
    config = parse(masterAuthorizedNetworks=["0.0.0.0/0"], allowOpenControlPlane=True)
    assert config.cluster.master_authorized_networks == ("0.0.0.0/0",)


BAD_INPUT = [
    ("unknown machine type",
     dict(gpuMachineType="a3-ultragpu-9g"),
     r"llmserve:gpuMachineType: unknown machine type 'a3-ultragpu-9g'; allowed: a3-highgpu-8g, a3-megagpu-8g, "
     r"g2-standard-24"),
    ("zone not in region",
     dict(gpuZones=["us-central1-a"]),
     r"llmserve:gpuZones\[0\]: zone 'us-central1-a' is not in gcp:region 'us-east4'"),
    ("compact placement across zones",
     dict(gpuZones=["us-east4-a", "us-east4-b"]),
     r"llmserve:gpuZones: compact placement keeps the pool in one zone; found 2 zones"),
    ("spot with a reservation",
     dict(gpuSpot=True, gpuReservation="res-1"),
     r"llmserve:gpuSpot: cannot be combined with llmserve:gpuReservation='res-1'"),
    ("flex-start with a reservation",
     dict(gpuFlexStart=True, gpuAutoscaling=True, gpuCompactPlacement=False, gpuReservation="res-1"),
     r"llmserve:gpuFlexStart: cannot be combined with llmserve:gpuReservation='res-1'"),
    ("flex-start with compact placement on A3",
     dict(gpuFlexStart=True, gpuAutoscaling=True),
     r"llmserve:gpuFlexStart: GKE does not support compact placement with flex-start or queued provisioning "
     r"on a3-megagpu-8g"),
    ("queued provisioning with compact placement on A3",
     dict(gpuQueuedProvisioning=True, gpuAutoscaling=True),
     r"llmserve:gpuQueuedProvisioning: GKE does not support compact placement"),
    ("spot and flex-start together",
     dict(gpuSpot=True, gpuFlexStart=True, gpuAutoscaling=True, gpuCompactPlacement=False),
     r"llmserve:gpuSpot and llmserve:gpuFlexStart: these provisioning modes exclude each other"),
    ("flex-start without autoscaling",
     dict(gpuFlexStart=True, gpuCompactPlacement=False),
     r"llmserve:gpuFlexStart: needs llmserve:gpuAutoscaling=true"),
    ("queued provisioning not from zero",
     dict(gpuQueuedProvisioning=True, gpuAutoscaling=True, gpuMinNodes=1, gpuCompactPlacement=False),
     r"llmserve:gpuQueuedProvisioning: needs llmserve:gpuMinNodes=0; found 1"),
    ("pods overlap the primary subnet",
     dict(podsCidr="10.0.0.0/14"),
     r"llmserve:primarySubnetCidr and llmserve:podsCidr: ranges overlap; found 10.0.0.0/20 and 10.0.0.0/14"),
    ("gpu range overlaps services",
     dict(gpuNetworksCidr="10.0.0.0/16"),
     r"llmserve:primarySubnetCidr and llmserve:gpuNetworksCidr: ranges overlap"),
    ("master range not a /28",
     dict(masterCidr="172.16.0.0/24"),
     r"llmserve:masterCidr: GKE needs a /28 for the control plane; found 172.16.0.0/24"),
    ("host bits in a cidr",
     dict(podsCidr="10.4.0.1/14"),
     r"llmserve:podsCidr: expected an IPv4 CIDR with no host bits set, like 10.0.0.0/20; found '10.4.0.1/14'"),
    ("gpu network count not matching the machine",
     dict(gpuNetworkCount=4),
     r"llmserve:gpuNetworkCount: a3-megagpu-8g with GPUDirect-TCPXO uses 8 GPU NICs; found 4; allowed: 8"),
    ("gpu network count on a machine without gpudirect",
     dict(gpuMachineType="g2-standard-24", gpuZones=["us-east4-a"], gpuNetworkCount=4),
     r"llmserve:gpuNetworkCount: g2-standard-24 uses no GPU NIC networks here .*; found 4; allowed: 0"),
    ("missing project",
     dict(gcp={"region": "us-east4"}),
     r"gcp:project: required but not set; run `pulumi config set gcp:project <project-id>`"),
    ("missing region",
     dict(gcp={"project": "p"}),
     r"gcp:region: required but not set"),
    ("control plane open to the internet",
     dict(masterAuthorizedNetworks=["0.0.0.0/0"]),
     r"llmserve:masterAuthorizedNetworks: 0.0.0.0/0 opens the control plane to the whole internet; .*"
     r"set llmserve:allowOpenControlPlane=true to accept the risk"),
    ("no authorized network",
     dict(masterAuthorizedNetworks=[]),
     r"llmserve:masterAuthorizedNetworks: needs at least one CIDR"),
    ("required key missing",
     dict(gpuMachineType="null"),
     r"llmserve:gpuMachineType: required but not set"),
    ("wrong type",
     dict(gpuNodeCount="two"),
     r"llmserve:gpuNodeCount: expected a whole number; found 'two'"),
    ("bad enum",
     dict(releaseChannel="NIGHTLY"),
     r"llmserve:releaseChannel: unknown value 'NIGHTLY'; allowed: RAPID, REGULAR, STABLE, EXTENDED"),
    ("misspelt key",
     dict(gpuMachinetype="a3-highgpu-8g"),
     r"llmserve:gpuMachinetype: unknown config key"),
    ("min above max",
     dict(gpuAutoscaling=True, gpuMinNodes=3, gpuMaxNodes=2),
     r"llmserve:gpuMinNodes/llmserve:gpuMaxNodes: need 0 <= min <= max and max >= 1; found min=3, max=2"),
    ("bad reservation name",
     dict(gpuReservation="My Reservation"),
     r"llmserve:gpuReservation: expected a reservation name"),
    ("bad maintenance window",
     dict(maintenanceWindowStart="3am"),
     r"llmserve:maintenanceWindowStart: expected HH:MM \(UTC\); found '3am'"),
]


@pytest.mark.parametrize("case, overrides, message", BAD_INPUT, ids=[case for case, _, _ in BAD_INPUT])
def test_bad_input_is_rejected_with_a_message_naming_key_value_and_what_is_allowed(case, overrides, message):
    problems = problems_of(**overrides)
    assert re.search(message, problems), f"{case}: expected /{message}/ in:\n{problems}"


def test_every_problem_is_reported_at_once():
    problems = problems_of(gpuNodeCount="two", releaseChannel="NIGHTLY", gpuMachineType="x")
    assert problems.count("\n  - ") == 3, problems


def test_pulumi_yaml_declares_exactly_the_keys_infra_config_reads_with_the_same_defaults():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert list(declared) == [key.name for key in CONFIG_KEYS]
    for key in CONFIG_KEYS:
        declaration = declared[key.name]
        assert declaration["type"] == key.type, key.name
        assert declaration["description"] == key.description, key.name
        assert declaration.get("default") == key.default, key.name
        assert ("default" in declaration) == (key.default is not None), key.name


def test_readme_documents_every_config_key():
    readme = (ROOT / "README.md").read_text()
    missing = [key.name for key in CONFIG_KEYS if f"`{key.name}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"
