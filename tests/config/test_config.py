"""Stack config: the typed result of good input, and one test per bad-input rule, checked by its message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from infra.catalog import GpuDirect
from infra.config.errors import ConfigError
from infra.config.keys import CONFIG_KEYS, declared_in_pulumi_yaml
from infra.config.stack import parse_stack_config

ROOT = Path(__file__).resolve().parents[2]
# The model of the stack `parse_config` starts from (tests/support/inputs.py), for the cases that change it.
R1_REVISION = "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad"  # the Hub commit the stacks stage
R1 = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "revision": R1_REVISION,
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}


def test_defaults_give_a_two_node_a3_mega_pool_with_tcpxo(parse_config):
    config = parse_config()
    pool = config.gpu_pool
    assert (pool.node_count, pool.autoscaling, pool.compact_placement) == (2, False, True)
    assert pool.gpudirect is GpuDirect.TCPXO
    assert pool.gpu_network_count == 8
    assert len(config.network.gpu_subnet_cidrs) == 8
    assert config.network.gpu_subnet_cidrs[:2] == ("192.168.0.0/19", "192.168.32.0/19")
    assert config.cluster.location == "us-east4"
    assert config.cluster.deletion_protection is True
    assert config.cluster.node_upgrade_freeze_start == "2026-11-01T00:00:00Z"
    # The R1 preset batches 64 sequences, of which only about 26 fit at the full 32k context: a note in the plan's
    # capacity lines (infra/cli/capacity.py), not a warning against the project's own preset.
    assert config.warnings == ()


def test_a3_high_uses_the_first_four_gpu_subnets_so_a_move_to_mega_keeps_them(parse_config):
    config = parse_config(gpuMachineType="a3-highgpu-8g")
    assert config.gpu_pool.gpudirect is GpuDirect.TCPX
    assert config.network.gpu_subnet_cidrs == (
        "192.168.0.0/19",
        "192.168.32.0/19",
        "192.168.64.0/19",
        "192.168.96.0/19",
    )


def test_gpudirect_can_be_switched_off_and_then_no_gpu_networks_exist(parse_config):
    config = parse_config(gpuDirect=False)
    assert config.gpu_pool.gpudirect is GpuDirect.NONE
    assert config.network.gpu_subnet_cidrs == ()
    assert any("gpuDirect" in warning for warning in config.warnings)


def test_zonal_cluster_lives_in_the_first_gpu_zone(parse_config):
    assert parse_config(regionalCluster=False).cluster.location == "us-east4-b"


def test_documentation_range_in_authorized_networks_is_a_warning_not_an_error(parse_config):
    config = parse_config(masterAuthorizedNetworks=["203.0.113.0/24"])
    assert any("documentation range" in warning for warning in config.warnings)


def test_open_control_plane_is_allowed_only_with_the_explicit_opt_out(parse_config):
    config = parse_config(masterAuthorizedNetworks=["0.0.0.0/0"], allowOpenControlPlane=True)
    assert config.cluster.master_authorized_networks == ("0.0.0.0/0",)


BAD_INPUT = [
    (
        "unknown machine type",
        dict(gpuMachineType="a3-ultragpu-9g"),
        r"llmserve:gpuMachineType: unknown machine type 'a3-ultragpu-9g'; allowed: a3-highgpu-8g, a3-megagpu-8g, "
        r"g2-standard-24",
    ),
    (
        "zone not in region",
        dict(gpuZones=["us-central1-a"]),
        r"llmserve:gpuZones\[0\]: zone 'us-central1-a' is not in gcp:region 'us-east4'",
    ),
    (
        "compact placement across zones",
        dict(gpuZones=["us-east4-a", "us-east4-b"]),
        r"llmserve:gpuZones: compact placement keeps the pool in one zone; found 2 zones",
    ),
    (
        "spot with a reservation",
        dict(gpuSpot=True, gpuReservation="res-1"),
        r"llmserve:gpuSpot: cannot be combined with llmserve:gpuReservation='res-1'",
    ),
    (
        "flex-start with a reservation",
        dict(gpuFlexStart=True, gpuAutoscaling=True, gpuCompactPlacement=False, gpuReservation="res-1"),
        r"llmserve:gpuFlexStart: cannot be combined with llmserve:gpuReservation='res-1'",
    ),
    (
        "flex-start with compact placement on A3",
        dict(gpuFlexStart=True, gpuAutoscaling=True),
        r"llmserve:gpuFlexStart: GKE does not support compact placement with flex-start on a3-megagpu-8g",
    ),
    (
        "queued provisioning is refused with the reason",
        dict(gpuQueuedProvisioning=True, gpuAutoscaling=True, gpuCompactPlacement=False),
        r"llmserve:gpuQueuedProvisioning: true is refused: a queued-provisioning pool gets nodes only through a "
        r"ProvisioningRequest",
    ),
    (
        "spot and flex-start together",
        dict(gpuSpot=True, gpuFlexStart=True, gpuAutoscaling=True, gpuCompactPlacement=False),
        r"llmserve:gpuSpot and llmserve:gpuFlexStart: these provisioning modes exclude each other",
    ),
    (
        "flex-start without autoscaling",
        dict(gpuFlexStart=True, gpuCompactPlacement=False),
        r"llmserve:gpuFlexStart: needs llmserve:gpuAutoscaling=true",
    ),
    (
        "pods overlap the primary subnet",
        dict(podsCidr="10.0.0.0/14"),
        r"llmserve:primarySubnetCidr and llmserve:podsCidr: ranges overlap; found 10.0.0.0/20 and 10.0.0.0/14",
    ),
    (
        "gpu range overlaps services",
        dict(gpuNetworksCidr="10.0.0.0/16"),
        r"llmserve:primarySubnetCidr and llmserve:gpuNetworksCidr: ranges overlap",
    ),
    (
        "master range not a /28",
        dict(masterCidr="172.16.0.0/24"),
        r"llmserve:masterCidr: GKE needs a /28 for the control plane; found 172.16.0.0/24",
    ),
    (
        "host bits in a cidr",
        dict(podsCidr="10.4.0.1/14"),
        r"llmserve:podsCidr: expected an IPv4 CIDR with no host bits set, like 10.0.0.0/20; found '10.4.0.1/14'",
    ),
    (
        "gpu network count not matching the machine",
        dict(gpuNetworkCount=4),
        r"llmserve:gpuNetworkCount: a3-megagpu-8g with GPUDirect-TCPXO uses 8 GPU NICs; found 4; allowed: 8",
    ),
    (
        "gpu network count on a machine without gpudirect",
        dict(gpuMachineType="g2-standard-24", gpuZones=["us-east4-a"], gpuNetworkCount=4),
        r"llmserve:gpuNetworkCount: g2-standard-24 uses no GPU NIC networks here .*; found 4; allowed: 0",
    ),
    (
        "missing project",
        dict(gcp={"region": "us-east4"}),
        r"gcp:project: required but not set; run `pulumi config set gcp:project <project-id>`",
    ),
    ("missing region", dict(gcp={"project": "my-project"}), r"gcp:region: required but not set"),
    (
        "control plane open to the internet",
        dict(masterAuthorizedNetworks=["0.0.0.0/0"]),
        r"llmserve:masterAuthorizedNetworks: 0.0.0.0/0 opens the control plane to the whole internet; .*"
        r"set llmserve:allowOpenControlPlane=true to accept the risk",
    ),
    (
        "no authorized network",
        dict(masterAuthorizedNetworks=[]),
        r"llmserve:masterAuthorizedNetworks: needs at least one CIDR",
    ),
    ("required key missing", dict(gpuMachineType="null"), r"llmserve:gpuMachineType: required but not set"),
    ("wrong type", dict(gpuNodeCount="two"), r"llmserve:gpuNodeCount: expected a whole number; found 'two'"),
    (
        "bad enum",
        dict(releaseChannel="NIGHTLY"),
        r"llmserve:releaseChannel: unknown value 'NIGHTLY'; allowed: RAPID, REGULAR, STABLE, EXTENDED",
    ),
    ("misspelt key", dict(gpuMachinetype="a3-highgpu-8g"), r"llmserve:gpuMachinetype: unknown config key"),
    (
        "min above max",
        dict(gpuAutoscaling=True, gpuMinNodes=3, gpuMaxNodes=2),
        r"llmserve:gpuMinNodes/llmserve:gpuMaxNodes: need 0 <= min <= max and max >= 1; found min=3, max=2",
    ),
    (
        "bad reservation name",
        dict(gpuReservation="My Reservation"),
        r"llmserve:gpuReservation: expected a reservation name",
    ),
    (
        "model accelerator not matching the pool",
        dict(models=[dict(R1, acceleratorType="A100-80G")]),
        r"llmserve:models\[0\].acceleratorType: 'A100-80G' does not match the GPU pool's nvidia-h100-mega-80gb "
        r"\(a3-megagpu-8g\); allowed: 'H100'",
    ),
    (
        "tp x pp not filling whole nodes",
        dict(models=[dict(R1, tensorParallelSize=4, pipelineParallelSize=3)]),
        r"llmserve:models\[0\]: tensorParallelSize x pipelineParallelSize = 12 GPUs does not fill whole "
        r"a3-megagpu-8g nodes \(8 GPUs each\); allowed: a multiple of 8, or a divisor of it",
    ),
    (
        "model larger than the pool can ever be",
        dict(gpuNodeCount=1),
        r"llmserve:models\[0\]: needs 16 GPUs \(1 x 16\) but the GPU pool can never have more than 8 "
        r"\(1 x 8\)",
    ),
    (
        "minimum replicas of all models exceed the pool",
        dict(models=[dict(R1, id="a"), dict(R1, id="b")]),
        r"llmserve:models: the minimum replicas need 32 GPUs together but the GPU pool can never have more than 16",
    ),
    ("duplicate model ids", dict(models=[R1, R1]), r"llmserve:models\[1\].id: .*deepseek-r1"),
    (
        "unknown engine option for the pinned vllm",
        dict(models=[dict(R1, engineKwargs={"enable_reasoning": True})]),
        r"llmserve:models\[0\].engineKwargs.enable_reasoning",
    ),
    (
        "model min replicas above max",
        dict(models=[dict(R1, minReplicas=2, maxReplicas=1)]),
        r"llmserve:models\[0\].*minReplicas",
    ),
    (
        "prefix routing with max replicas 1",
        dict(models=[dict(R1, prefixCacheRouting=True)]),
        r"llmserve:models\[0\].prefixCacheRouting",
    ),
    ("no models", dict(models="null"), r"llmserve:models: required but not set"),
    (
        "open api on a load balancer",
        dict(apiAuth=False, serveExposure="external"),
        r"llmserve:apiAuth: false with llmserve:serveExposure='external' would put an open model endpoint on a "
        r"load balancer",
    ),
    (
        "unknown exposure",
        dict(serveExposure="public"),
        r"llmserve:serveExposure: unknown value 'public'; allowed: cluster, internal, external",
    ),
    (
        "unknown upgrade strategy",
        dict(rayClusterUpgrade="Rolling"),
        r"llmserve:rayClusterUpgrade: unknown value 'Rolling'; allowed: NewCluster, Recreate",
    ),
    (
        "scale to zero without a cpu worker",
        dict(cpuWorkers=0, models=[dict(R1, minReplicas=0, maxReplicas=1)]),
        r"llmserve:cpuWorkers: a model that scales to zero needs a CPU worker",
    ),
    (
        "api key in plain text",
        dict(apiKey="sk-123"),
        r"llmserve:apiKey: must be stored encrypted; found a plain value; set it with "
        r"`pulumi config set --secret llmserve:apiKey <value>`",
    ),
    (
        "a YAML 1.1 boolean, which the Pulumi CLI passes as the string 'yes'",
        dict(gpuAutoscaling="yes"),
        r"llmserve:gpuAutoscaling: expected true or false; found 'yes'",
    ),
    (
        "negative node count",
        dict(gpuNodeCount=-1),
        r"llmserve:gpuNodeCount: out of range; found -1; allowed: 0 to 1000 \(GKE allows at most 1000 nodes",
    ),
    (
        "huge node count",
        dict(gpuNodeCount="9" * 25),
        r"llmserve:gpuNodeCount: out of range; found 9{25}; allowed: 0 to 1000",
    ),
    (
        "absurdly long number",
        dict(gpuNodeCount="9" * 5000),
        r"llmserve:gpuNodeCount: expected a whole number; found '9{60,}\.\.\.; allowed: 0 to 1000$",
    ),
    (
        "ready timeout of zero",
        dict(serveReadyTimeoutMinutes=0),
        r"llmserve:serveReadyTimeoutMinutes: out of range; found 0; allowed: 1 to 10080",
    ),
    (
        "no system node",
        dict(systemNodeCount=0),
        r"llmserve:systemNodeCount: out of range; found 0; allowed: 1 to 1000 \(the Ray head",
    ),
    (
        "tensor parallelism across nodes",
        dict(models=[dict(R1, tensorParallelSize=16, pipelineParallelSize=1)]),
        r"llmserve:models\[0\].tensorParallelSize: a tensor-parallel group stays within one node .* found 16 on "
        r"a3-megagpu-8g nodes with 8 GPUs; allowed: a divisor of 8 \(1, 2, 4, 8\)",
    ),
    (
        "project id Google refuses",
        dict(gcp={"project": "My_Project", "region": "us-east4"}),
        r"gcp:project: not a valid project id; found 'My_Project'; allowed: a Google Cloud project id: 6 to 30 "
        r"characters",
    ),
    (
        "project id too short",
        dict(gcp={"project": "abc", "region": "us-east4"}),
        r"gcp:project: not a valid project id; found 'abc'",
    ),
    (
        "region name Google refuses",
        dict(gcp={"project": "my-project", "region": "US East"}),
        r"gcp:region: not a region name; found 'US East'; allowed: a Compute Engine region name",
    ),
    (
        "zone name Google refuses",
        dict(gpuZones=["us-east4"]),
        r"llmserve:gpuZones\[0\]: not a zone name; found 'us-east4'",
    ),
    (
        "system machine type Google refuses",
        dict(systemMachineType="E2 Standard"),
        r"llmserve:systemMachineType: expected a Compute Engine machine type name",
    ),
    (
        "authorized network listed twice",
        dict(masterAuthorizedNetworks=["198.18.0.0/24", "198.18.0.0/24"]),
        r"llmserve:masterAuthorizedNetworks\[1\]: 198.18.0.0/24 is listed twice \(also at \[0\]\)",
    ),
    (
        "gpu range too small for eight /29 subnets",
        dict(gpuNetworksCidr="192.168.0.0/27"),
        r"llmserve:gpuNetworksCidr: too small to split into 8 GPU subnets of at least /29",
    ),
    (
        "subnet smaller than Google allows",
        dict(primarySubnetCidr="10.0.0.0/30"),
        r"llmserve:primarySubnetCidr: Google's smallest subnet range is a /29; found 10.0.0.0/30",
    ),
    ("ipv6 cidr", dict(podsCidr="fd00::/64"), r"llmserve:podsCidr: expected an IPv4 CIDR; found 'fd00::/64'"),
    (
        "image reference with spaces",
        dict(rayImage="my image"),
        r"llmserve:rayImage: expected a container image reference",
    ),
    ("empty namespace", dict(servingNamespace=""), r"llmserve:servingNamespace: must not be empty"),
    (
        "freeze without a start",
        dict(nodeUpgradeFreezeStart=""),
        r"llmserve:nodeUpgradeFreezeStart: must be set while llmserve:nodeUpgradeFreeze is true",
    ),
    ("empty model list", dict(models=[]), r"llmserve:models: must list at least one model"),
    ("models not a list", dict(models={"id": "x"}), r"llmserve:models: must be a list of model objects"),
    ("models not json", dict(models="[{"), r"llmserve:models: expected a YAML/JSON list of objects"),
    (
        "hf token in plain text",
        dict(hfToken="hf_abc"),
        r"llmserve:hfToken: must be stored encrypted; found a plain value; set it with "
        r"`pulumi config set --secret llmserve:hfToken <value>`",
    ),
    (
        "bad maintenance window",
        dict(maintenanceWindowStart="3am"),
        r"llmserve:maintenanceWindowStart: expected HH:MM \(UTC\); found '3am'",
    ),
]


@pytest.mark.parametrize("case, overrides, message", BAD_INPUT, ids=[case for case, _, _ in BAD_INPUT])
def test_bad_input_is_rejected_with_a_message_naming_key_value_and_what_is_allowed(
    case, overrides, message, config_problems
):
    problems = config_problems(**overrides)
    assert re.search(message, problems), f"{case}: expected /{message}/ in:\n{problems}"


def test_serving_defaults_are_safe(parse_config):
    serving = parse_config().serving
    assert (serving.api_auth, serving.exposure, serving.ray_cluster_upgrade) == (True, "cluster", "NewCluster")
    assert serving.ray_image == "rayproject/ray-llm:2.60.0-py312-cu130"
    assert serving.api_key is None and serving.hf_token is None
    assert [model.model_id for model in serving.models] == ["deepseek-r1"]


def test_secrets_pass_through_unread(stack_values, gcp_values):
    token = object()
    config = parse_stack_config("test", stack_values, gcp_values, secrets={"hfToken": token})
    assert config.serving.hf_token is token


@pytest.mark.parametrize(
    "api_key, ok",
    [
        ("k" * 16, True),
        ("k" * 40 + ",old-key-" + "x" * 8, True),
        ("abc-secret-1", False),
        ("k" * 20 + ",tiny-secret", False),
        (" , ", False),
    ],
)
def test_a_configured_api_key_must_be_long_enough_for_the_ingress(api_key, ok, stack_values, gcp_values):
    def run():
        return parse_stack_config(
            "test", stack_values, gcp_values, secrets={"apiKey": object()}, plain_secrets={"apiKey": api_key}
        )

    if ok:
        run()
    else:
        with pytest.raises(ConfigError, match=r"llmserve:apiKey: every key .* needs at least 16 characters"):
            run()
        with pytest.raises(ConfigError) as raised:
            run()
        assert api_key.strip(" ,") == "" or api_key.split(",")[-1] not in str(raised.value), "leaked the key"


def test_every_problem_is_reported_at_once(config_problems):
    problems = config_problems(gpuNodeCount="two", releaseChannel="NIGHTLY", gpuMachineType="x")
    assert problems.count("\n  - ") == 3, problems


def test_pulumi_yaml_declares_exactly_the_keys_infra_config_reads_with_the_same_defaults():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    typed_keys = [key for key in CONFIG_KEYS if declared_in_pulumi_yaml(key)]
    assert list(declared) == [key.name for key in typed_keys]
    for key in typed_keys:
        declaration = declared[key.name]
        assert declaration["type"] == key.type, key.name
        assert declaration["description"] == key.description, key.name
        assert declaration.get("default") == key.default, key.name
        assert ("default" in declaration) == (key.default is not None), key.name


def test_pulumi_yaml_comments_document_the_keys_it_cannot_type():
    text = (ROOT / "Pulumi.yaml").read_text()
    for key in CONFIG_KEYS:
        if not declared_in_pulumi_yaml(key):
            assert f"#   {key.name} " in text, f"Pulumi.yaml does not document {key.name} in its comments"


def test_the_reference_documents_every_config_key():
    reference = (ROOT / "docs" / "configuration.md").read_text()
    missing = [key.name for key in CONFIG_KEYS if f"`{key.name}`" not in reference]
    assert not missing, f"docs/configuration.md does not document: {missing}"


def test_a_bad_value_is_reported_once_without_follow_on_rules(config_problems):
    problems = config_problems(gpuNodeCount=-1)
    assert problems.count("\n  - ") == 1, problems
    assert "never have more than" not in problems, problems


def test_a_bad_machine_type_skips_the_rules_that_need_the_machine_but_not_the_others(config_problems):
    problems = config_problems(
        gpuMachineType="x",
        models=[dict(R1, acceleratorType="A100-80G", minReplicas=2, maxReplicas=1)],
        releaseChannel="NIGHTLY",
    )
    assert "gpuMachineType: unknown machine type 'x'" in problems
    assert "minReplicas" in problems and "releaseChannel" in problems
    assert "acceleratorType" not in problems and "GPU pool" not in problems, problems


@pytest.fixture
def with_other_keys(stack_values, gcp_values):
    """`with_other_keys(other_keys)`: the base stack parsed with `other_keys` (key -> stored encrypted) beside it."""
    return lambda other_keys: parse_stack_config("test", stack_values, gcp_values, other_keys=other_keys)


@pytest.mark.parametrize(
    "key, message",
    [
        (
            "llmserv:gpuNodeCount",
            r"llmserv:gpuNodeCount: namespace 'llmserv' is read by neither this project nor its providers, "
            r"so `pulumi up` would ignore the key \(did you mean 'llmserve:gpuNodeCount'\?\); "
            r"allowed namespaces: llmserve:, gcp:, "
            r"kubernetes:, random:, pulumi:",
        ),
        ("gpuNodeCount", r"gpuNodeCount: config key without a namespace; allowed: llmserve:gpuNodeCount"),
        ("aws:region", r"aws:region: namespace 'aws' is read by neither"),
    ],
)
def test_keys_nobody_reads_are_refused_with_the_allowed_namespaces(key, message, with_other_keys):
    with pytest.raises(ConfigError, match=message):
        with_other_keys({key: False})


def test_provider_keys_are_accepted(with_other_keys):
    config = with_other_keys(
        {
            "gcp:project": False,
            "gcp:zone": False,
            "kubernetes:context": False,
            "pulumi:tags": False,
            "gcp:credentials": True,
        }
    )
    assert config.gcp_project == "my-project"


def test_provider_credentials_in_plain_text_are_refused_with_the_fix(with_other_keys):
    with pytest.raises(
        ConfigError,
        match=r"gcp:credentials: must be stored encrypted; found a plain value; set it "
        r"with `pulumi config set --secret gcp:credentials <value>`",
    ):
        with_other_keys({"gcp:credentials": False})


def test_an_encrypted_part_of_the_models_is_refused(stack_values, gcp_values):
    with pytest.raises(ConfigError, match=r"llmserve:models: holds an encrypted value"):
        parse_stack_config("test", stack_values, gcp_values, encrypted={"models"})


def test_an_encrypted_ordinary_key_cannot_be_planned_offline(stack_values, gcp_values):
    with pytest.raises(
        ConfigError,
        match=r"llmserve:gpuNodeCount: stored encrypted, which the offline plan cannot "
        r"read",
    ):
        parse_stack_config("test", {**stack_values, "gpuNodeCount": "[secret]"}, gcp_values)


def test_yaml_1_2_booleans_in_any_of_their_spellings_are_read(parse_config):
    for spelling in ("true", "True", "TRUE"):
        assert (
            parse_config(
                gpuDirect=spelling.replace("true", "false").replace("True", "False").replace("TRUE", "FALSE")
            ).gpu_pool.gpu_network_count
            == 0
        )


def test_the_default_driver_with_a_cuda_13_image_is_a_warning(parse_config):
    config = parse_config(gpuDriverVersion="DEFAULT")
    assert any("gpuDriverVersion: DEFAULT with a CUDA 13 image" in warning for warning in config.warnings)
    assert not any("gpuDriverVersion" in warning for warning in parse_config().warnings)


def test_model_integers_beyond_what_pulumi_carries_exactly_are_refused(config_problems):
    problems = config_problems(models=[dict(R1, maxModelLen=2**60)])
    assert "llmserve:models[0].maxModelLen: too large to pass through Pulumi exactly" in problems, problems


@pytest.mark.parametrize(
    "key, value",
    [
        ("maintenanceWindowStart", "０３:00"),
        ("kubernetesVersion", "1.３３"),
        ("nodeUpgradeFreezeStart", "２026-11-01T00:00:00Z"),
        ("servingNamespace", "llm-ü"),
        ("gpuZones", ["us-east4-ä"]),
    ],
)
def test_non_ascii_look_alikes_are_refused(key, value, config_problems):
    assert f"llmserve:{key}" in config_problems(**{key: value})


def test_rules_that_need_only_the_machine_still_run_when_the_pool_size_is_bad(config_problems):
    problems = config_problems(gpuNodeCount=-1, models=[dict(R1, tensorParallelSize=16, pipelineParallelSize=1)])
    assert "llmserve:models[0].tensorParallelSize: a tensor-parallel group stays within one node" in problems
    assert problems.count("\n  - ") == 2 and "never have more than" not in problems, problems


def test_every_integer_key_has_a_range():
    assert sorted(key.name for key in CONFIG_KEYS if key.range is not None) == sorted(
        key.name for key in CONFIG_KEYS if key.type == "integer"
    )
    for key in CONFIG_KEYS:
        if key.type == "integer" and key.default is not None:
            assert key.range.minimum <= key.default <= key.range.maximum, key.name


def test_clean_passes_every_read_value_even_a_falsy_one_and_refuses_none():
    """`clean` hands a section's values to its settings: 0, False and "" are values (a pool of 0 nodes, a switch
    turned off, an unset reservation), only None means a reader broke its rule."""
    from infra.config.values import clean

    assert [clean(0), clean(False), clean(""), clean([])] == [0, False, "", []]
    with pytest.raises(AssertionError, match="read as None, yet no problem was recorded"):
        clean(None)


def test_an_absurdly_deep_pipeline_is_a_config_error_not_a_hang(config_problems):
    """Found by the property tests: pipelineParallelSize 5665691496 made the capacity planner size billions of
    pipeline stages (a MemoryError after minutes). The key's range stops it before any rule depends on it."""
    problems = config_problems(models=[dict(R1, pipelineParallelSize=5665691496)])
    assert "llmserve:models[0].pipelineParallelSize" in problems
    assert "5665691496" in problems and "1 to 256" in problems, problems
