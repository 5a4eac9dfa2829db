"""The platform each stack creates, checked under Pulumi mocks (preview=False, so no check is silently skipped).

Each stack's real program runs once per session (the `planned` fixture, conftest.py); every test states one
invariant and names the resource that breaks it.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from infra.catalog import MACHINE_PROFILES
from infra.render.rayservice import application_status_path
from serve_app.builder import model_llm_configs

EXPECTED_GPU_NICS = {"dev": 0, "staging": 4, "prod": 8}


def test_every_resource_but_the_top_components_has_a_parent(stack, planned):
    orphans = [
        f"{r.type} {r.name}"
        for r in planned(stack).resources
        if r.parent is None and not r.type.startswith("llmserve:")
    ]
    assert not orphans, f"{stack}: resources outside any component: {orphans}"


def test_cluster_has_multi_networking_and_dataplane_v2_from_creation(stack, planned):
    inputs = planned(stack).cluster()
    assert inputs["enableMultiNetworking"] is True, f"{stack}: llm-gke without multi-networking"
    assert inputs["datapathProvider"] == "ADVANCED_DATAPATH", f"{stack}: llm-gke without Dataplane V2"
    assert inputs["networkingMode"] == "VPC_NATIVE", f"{stack}: llm-gke is not VPC-native"


def test_cluster_has_private_nodes_and_a_fenced_public_endpoint(stack, planned):
    inputs = planned(stack).cluster()
    private = inputs["privateClusterConfig"]
    assert private["enablePrivateNodes"] is True, f"{stack}: llm-gke nodes are public"
    networks = inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]
    assert networks and all(block["cidrBlock"] != "0.0.0.0/0" for block in networks), (
        f"{stack}: llm-gke control plane authorized networks {networks}"
    )


def test_cluster_has_workload_identity_gcsfuse_and_managed_prometheus_with_dcgm(stack, planned):
    inputs = planned(stack).cluster()
    assert inputs["workloadIdentityConfig"]["workloadPool"] == "my-gcp-project.svc.id.goog", stack
    assert inputs["addonsConfig"]["gcsFuseCsiDriverConfig"]["enabled"] is True, stack
    monitoring = inputs["monitoringConfig"]
    assert monitoring["managedPrometheus"]["enabled"] is True, stack
    assert "DCGM" in monitoring["enableComponents"], f"{stack}: llm-gke does not export DCGM GPU metrics"


def test_cluster_removes_the_default_pool_and_shields_nodes(stack, planned):
    inputs = planned(stack).cluster()
    assert inputs["removeDefaultNodePool"] is True, stack
    assert inputs["enableShieldedNodes"] is True, stack


def test_cluster_freezes_minor_and_node_upgrades_until_end_of_support(stack, planned):
    policy = planned(stack).cluster()["maintenancePolicy"]
    assert policy["dailyMaintenanceWindow"]["startTime"] == "03:00", stack
    (exclusion,) = policy["maintenanceExclusions"]
    assert exclusion["exclusionOptions"] == {
        "scope": "NO_MINOR_OR_NODE_UPGRADES",
        "endTimeBehavior": "UNTIL_END_OF_SUPPORT",
    }, stack
    assert planned(stack).cluster()["releaseChannel"]["channel"] == "REGULAR", stack


@pytest.mark.parametrize("stack, protected", [("dev", False), ("staging", False), ("prod", True)])
def test_deletion_protection_is_on_for_prod_only(stack, protected, planned):
    assert planned(stack).cluster()["deletionProtection"] is protected, f"{stack}: llm-gke deletionProtection"


def test_system_pool_is_untainted_cpu_with_workload_identity(stack, planned):
    node_config = planned(stack).system_pool()["nodeConfig"]
    assert "guestAccelerators" not in node_config and "taints" not in node_config, (
        f"{stack}: llm-gke-system must take the Ray head, which tolerates no GPU taint"
    )
    assert node_config["workloadMetadataConfig"]["mode"] == "GKE_METADATA", stack


def test_nodes_use_the_dedicated_service_account_not_the_compute_default(stack, planned):
    account = planned(stack).only("gcp:serviceaccount/account:Account", "llm-gke-nodes").inputs["accountId"]
    email = f"{account}@my-gcp-project.iam.gserviceaccount.com"
    for pool in (planned(stack).system_pool(), planned(stack).gpu_pool()):
        assert pool["nodeConfig"]["serviceAccount"] == email, f"{stack}: node pool runs as {pool['nodeConfig']}"
    grants = {r.name: r.inputs for r in planned(stack).of_type("gcp:projects/iAMMember:IAMMember")}
    roles = sorted(inputs["role"] for inputs in grants.values())
    assert roles == ["roles/artifactregistry.reader", "roles/container.defaultNodeServiceAccount"], roles
    # The logical names are state: renaming one would make Pulumi delete and recreate the grant.
    assert sorted(grants) == [
        "llm-gke-nodes-artifactregistry-reader",
        "llm-gke-nodes-container-defaultNodeServiceAccount",
    ]
    assert {inputs["member"] for inputs in grants.values()} == {f"serviceAccount:{email}"}


def test_gpu_pool_machine_and_accelerators_come_from_the_profile(stack, planned):
    config = planned(stack).config
    profile = MACHINE_PROFILES[config.gpu_pool.machine.machine_type]
    node_config = planned(stack).gpu_pool()["nodeConfig"]
    assert node_config["machineType"] == profile.machine_type, stack
    (accelerator,) = node_config["guestAccelerators"]
    assert (accelerator["type"], accelerator["count"]) == (profile.gke_accelerator, profile.gpu_count), stack
    assert accelerator["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "LATEST", stack
    assert node_config["ephemeralStorageLocalSsdConfig"]["localSsdCount"] == profile.local_ssd_count, stack
    assert node_config["gvnic"]["enabled"] is True, stack


def test_gpu_pool_carries_the_gpu_taint_and_gke_metadata(stack, planned):
    node_config = planned(stack).gpu_pool()["nodeConfig"]
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in node_config["taints"], stack
    assert node_config["workloadMetadataConfig"]["mode"] == "GKE_METADATA", stack


def test_gpu_pool_upgrades_without_surge(stack, planned):
    settings = planned(stack).gpu_pool()["upgradeSettings"]
    assert (settings["maxSurge"], settings["maxUnavailable"]) == (0, 1), f"{stack}: llm-gpu upgrade {settings}"


def test_gpu_pool_attaches_one_network_per_gpu_nic_by_name(stack, planned):
    gpu_vpcs = [
        r.name for r in planned(stack).of_type("gcp:compute/network:Network") if r.name.startswith("llm-net-gpu")
    ]
    assert len(gpu_vpcs) == EXPECTED_GPU_NICS[stack], f"{stack}: GPU VPCs {gpu_vpcs}"
    attached = planned(stack).gpu_pool().get("networkConfig", {}).get("additionalNodeNetworkConfigs", [])
    assert [config["network"] for config in attached] == gpu_vpcs, f"{stack}: llm-gpu attaches {attached}"
    assert all(not config["subnetwork"].startswith("projects/") for config in attached), (
        f"{stack}: additional node networks must be referenced by short name: {attached}"
    )


@pytest.mark.parametrize("stack", ("staging", "prod"))
def test_gpu_vpcs_use_jumbo_frames_and_allow_internal_traffic(stack, planned):
    for vpc in planned(stack).of_type("gcp:compute/network:Network"):
        # GKE's documented MTU for the GPU VPCs (cluster-toolkit multivpc; see tests/render/golden/gpudirect-*.yaml).
        assert vpc.inputs["mtu"] == 8244, f"{stack}: {vpc.name} mtu {vpc.inputs['mtu']}"
    subnets = {r.name: r.inputs["ipCidrRange"] for r in planned(stack).of_type("gcp:compute/subnetwork:Subnetwork")}
    rules = planned(stack).of_type("gcp:compute/firewall:Firewall")
    assert len(rules) == EXPECTED_GPU_NICS[stack], stack
    for rule in rules:
        subnet = subnets[rule.name.replace("-internal", "-subnet")]
        assert rule.inputs["sourceRanges"] == [subnet], f"{stack}: {rule.name} sources {rule.inputs['sourceRanges']}"
        assert {allow["protocol"] for allow in rule.inputs["allows"]} == {"tcp", "udp", "icmp"}, rule.name
    gpu_ranges = [ipaddress.ip_network(cidr) for name, cidr in subnets.items() if name.startswith("llm-net-gpu")]
    assert all(a == b or not a.overlaps(b) for a in gpu_ranges for b in gpu_ranges), gpu_ranges


def test_private_nodes_get_cloud_nat(stack, planned):
    nat = planned(stack).only("gcp:compute/routerNat:RouterNat", "llm-net-nat").inputs
    assert nat["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES", stack


@pytest.mark.parametrize("stack", ("prod",))  # staging runs on flex-start, which GKE never places compactly on A3
def test_a3_pools_use_a_named_collocated_placement_policy_in_one_zone(stack, planned):
    policy = planned(stack).only("gcp:compute/resourcePolicy:ResourcePolicy", "llm-gpu-placement").inputs
    assert policy["groupPlacementPolicy"] == {"collocation": "COLLOCATED"}, (
        f"{stack}: llm-gpu-placement {policy['groupPlacementPolicy']} (no vmCount: it breaks autoscaling)"
    )
    pool = planned(stack).gpu_pool()
    assert pool["placementPolicy"] == {"type": "COMPACT", "policyName": "llm-gpu-placement"}, stack
    assert len(pool["nodeLocations"]) == 1, stack


def test_prod_consumes_its_specific_reservation(planned):
    affinity = planned("prod").gpu_pool()["nodeConfig"]["reservationAffinity"]
    assert affinity == {
        "consumeReservationType": "SPECIFIC_RESERVATION",
        "key": "compute.googleapis.com/reservation-name",
        "values": ["llmserve-a3mega-prod"],
    }, affinity


def test_dev_pool_scales_to_zero_without_placement_policy(planned):
    pool = planned("dev").gpu_pool()
    assert pool["autoscaling"]["totalMinNodeCount"] == 0, pool["autoscaling"]
    assert "nodeCount" not in pool, "dev: llm-gpu sets a static nodeCount next to autoscaling"
    assert "placementPolicy" not in pool and not planned("dev").of_type("gcp:compute/resourcePolicy:ResourcePolicy")


@pytest.mark.parametrize(
    "stack, kinds",
    [
        ("dev", {}),
        ("staging", {"GKENetworkParamSet": 4, "Network": 4, "DaemonSet": 2}),
        ("prod", {"GKENetworkParamSet": 8, "Network": 8, "DaemonSet": 2}),
    ],
)
def test_gpudirect_objects_exist_exactly_on_a3_stacks(stack, kinds, planned):
    found: dict = {}
    for manifest in planned(stack).manifests():
        if manifest["kind"] in ("GKENetworkParamSet", "Network", "DaemonSet"):
            found[manifest["kind"]] = found.get(manifest["kind"], 0) + 1
    assert found == kinds, f"{stack}: GPUDirect objects {found}"


@pytest.mark.parametrize("stack", ("staging", "prod"))
def test_gke_network_param_sets_point_at_the_gpu_vpcs_and_subnets(stack, planned):
    vpcs = [r.name for r in planned(stack).of_type("gcp:compute/network:Network") if r.name.startswith("llm-net-gpu")]
    param_sets = {
        m["metadata"]["name"]: m["spec"] for m in planned(stack).manifests() if m["kind"] == "GKENetworkParamSet"
    }
    expected = {
        f"vpc{index}": {"vpc": vpc, "vpcSubnet": f"{vpc}-subnet", "deviceMode": "NetDevice"}
        for index, vpc in enumerate(vpcs, start=1)
    }
    assert param_sets == expected, stack


def test_every_kubernetes_object_goes_through_the_clusters_provider(stack, planned):
    strays = [
        r.name for r in planned(stack).resources if r.type.startswith("kubernetes:") and r.provider != "llm-gke-k8s"
    ]
    assert not strays, f"{stack}: Kubernetes objects on the ambient provider (would hit ~/.kube/config): {strays}"


def test_kubernetes_provider_kubeconfig_uses_the_gke_auth_plugin(stack, planned):
    import json

    provider = planned(stack).only("pulumi:providers:kubernetes", "llm-gke-k8s").inputs
    kubeconfig = json.loads(provider["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://192.0.2.10", stack
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin", stack


BUILT_IN_GROUPS = ("v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "policy/v1")


def test_built_in_kubernetes_objects_validate_against_the_openapi_schema(
    stack, planned, assert_valid_kubernetes_object
):
    for manifest in planned(stack).manifests():
        if manifest["apiVersion"] in BUILT_IN_GROUPS:
            assert_valid_kubernetes_object(manifest, stack)


# --- serving ---------------------------------------------------------------------------------------------------


def test_kuberay_operator_is_a_pinned_helm_release_on_the_system_pool(stack, planned):
    release = planned(stack).only("kubernetes:helm.sh/v3:Release", "llm-kuberay").inputs
    assert (release["chart"], release["version"]) == ("kuberay-operator", "1.7.0"), stack
    assert release["repositoryOpts"]["repo"] == "https://ray-project.github.io/kuberay-helm/", stack
    assert release["namespace"] == "kuberay-system" and release["createNamespace"] is True, stack
    assert release["values"]["image"] == {"repository": "quay.io/kuberay/operator", "tag": "v1.7.0"}, stack
    assert release["values"]["nodeSelector"] == {"llmserve.dev/pool": "system"}, stack
    assert "skipCrds" not in release or release["skipCrds"] is False, f"{stack}: the chart must install its CRDs"


def rayservice(plan):
    return plan.only("kubernetes:ray.io/v1:RayService", "llm-serve-rayservice")


def test_rayservice_waits_for_the_operator_the_gpu_pool_and_the_gpu_networks(stack, planned):
    dependencies = set(rayservice(planned(stack)).options["dependencies"])
    assert {"llm-kuberay", "llm-gpu", "llm-serve-api-key", "llm-serve-serve-app"} <= dependencies, (
        f"{stack}: llm-serve-rayservice depends on {sorted(dependencies)}"
    )
    if EXPECTED_GPU_NICS[stack]:
        assert f"llm-gpudirect-network-vpc{EXPECTED_GPU_NICS[stack]}" in dependencies, stack


STACK_MODELS = {
    "dev": ["deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b"],
    "staging": ["deepseek-r1"],
    "prod": ["deepseek-r1"],
}


def test_pulumi_up_waits_a_cold_start_for_the_rayservice(stack, planned):
    resource = rayservice(planned(stack))
    annotations = resource.inputs["metadata"]["annotations"]
    conditions = json.loads(annotations["pulumi.com/waitFor"])
    applications = [f"config-{annotations['llmserve.dev/serve-config-hash']}", "llm"]
    applications += [f"model-{model_id}" for model_id in STACK_MODELS[stack]]
    assert conditions == [
        "jsonpath={$[?@.observedGeneration == $.metadata.generation]}",
        "condition=Ready",
        "condition=UpgradeInProgress=False",
    ] + [f"jsonpath={application_status_path(name)}=RUNNING" for name in applications], stack
    assert resource.options["customTimeouts"] == {"create": "150m", "update": "150m"}, stack


@pytest.mark.parametrize("stack, recreate", [("dev", False), ("staging", True), ("prod", True)])
def test_recreate_stacks_replace_the_rayservice_when_the_cluster_spec_changes(stack, recreate, planned):
    resource = rayservice(planned(stack))
    assert resource.inputs["spec"]["upgradeStrategy"]["type"] == ("None" if recreate else "NewCluster"), stack
    assert resource.options["replaceOnChanges"] == (["spec.rayClusterConfig"] if recreate else []), stack
    assert resource.options["deleteBeforeReplace"] is recreate, stack


def test_manifests_carry_the_rayservice_and_the_redacted_api_key_secret(stack, planned):
    manifests = {(m["kind"], m["metadata"]["name"]): m for m in planned(stack).manifests()}
    assert ("RayService", "llm") in manifests, f"{stack}: {sorted(manifests)}"
    secret = manifests[("Secret", "llm-api-key")]
    # dev declares tenants (Pulumi.dev.yaml): their keys are the Secret's second item, redacted too.
    expected = {"keys": "[redacted]", **({"tenant-keys": "[redacted]"} if stack == "dev" else {})}
    assert secret["stringData"] == expected, f"{stack}: {secret['stringData']}"
    assert ("Namespace", "llm") in manifests and ("PodMonitoring", "llm-ray") in manifests, stack


def test_the_api_key_never_appears_in_plain_text(stack, planned):
    import json

    generated = planned(stack).only("random:index/randomPassword:RandomPassword", "llm-serve-api-key")
    assert generated.inputs["length"] >= 32 and generated.inputs["special"] is False, stack
    secret = planned(stack).only("kubernetes:v1:Secret", "llm-serve-api-key").inputs
    expected = {"keys": "[secret]", **({"tenant-keys": "[secret]"} if stack == "dev" else {})}
    assert secret["stringData"] == expected, f"{stack}: a key reached the engine unmarked"
    assert "offline-plan-xxx" not in json.dumps([r.inputs for r in planned(stack).resources]), stack


def test_dev_serves_two_models_that_scale_to_zero(planned):
    spec = rayservice(planned("dev")).inputs["spec"]
    import yaml as _yaml

    serve = _yaml.safe_load(spec["serveConfigV2"])
    configs = model_llm_configs(serve)
    assert sorted(c["model_loading_config"]["model_id"] for c in configs) == [
        "deepseek-r1-distill-qwen-1.5b",
        "deepseek-r1-distill-qwen-7b",
    ]
    assert all(c["deployment_config"]["autoscaling_config"]["min_replicas"] == 0 for c in configs)
    assert spec["rayClusterConfig"]["enableInTreeAutoscaling"] is True
