"""The RayService renderer: worker sizing, head settings, GPUDirect wiring, auth, exposure, validity.

Pure: no Pulumi engine. The rendered RayService is checked against the project's own model of the KubeRay
v1 CRD (tests/support/kuberay_schema.py), its pod templates against Kubernetes' OpenAPI schema, and its Serve config
against Ray's own `ServeDeploySchema`.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from infra.catalog import MACHINE_PROFILES, GpuDirect
from infra.planning.sizing import gpu_worker_groups, pods_for
from infra.render import rayservice as render
from infra.render.rayservice import render_rayservice, wait_for_conditions
from infra.render.secrets import render_secret
from serve_app.spec import parse_models

A3_MEGA, A3_HIGH, G2 = (MACHINE_PROFILES[name] for name in ("a3-megagpu-8g", "a3-highgpu-8g", "g2-standard-24"))
R1_REVISION = "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad"  # the Hub commit the stacks stage
R1 = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "revision": R1_REVISION,
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}
DISTILLS = [
    {
        "id": "qwen-7b",
        "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "acceleratorType": "L4",
        "tensorParallelSize": 2,
        "minReplicas": 0,
        "maxReplicas": 1,
    },
    {
        "id": "qwen-1.5b",
        "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "acceleratorType": "L4",
        "minReplicas": 0,
        "maxReplicas": 2,
        "targetOngoingRequests": 16,
    },
]


@pytest.fixture
def settings(rayservice_settings):
    """The RayServiceSettings builder of conftest.py, by a short name: R1 on A3 Mega unless told otherwise."""
    return rayservice_settings


def cluster_of(rayservice: dict) -> dict:
    return rayservice["spec"]["rayClusterConfig"]


def group(rayservice: dict, name: str) -> dict:
    groups = {g["groupName"]: g for g in cluster_of(rayservice)["workerGroupSpecs"]}
    assert name in groups, f"no worker group {name}; groups: {sorted(groups)}"
    return groups[name]


def container(template: dict) -> dict:
    return template["spec"]["containers"][0]


def env_of(template: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(template).get("env", [])}


# --- sizing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "replicas, gpus, per_node, pods",
    [
        (1, 16, 8, 2),  # R1 TP8 x PP2 on A3: one replica spans two nodes
        (2, 16, 8, 4),
        (0, 16, 8, 0),  # scaled to zero
        (1, 8, 8, 1),
        (3, 4, 8, 2),  # two TP4 replicas share a node
        (2, 1, 2, 1),  # two TP1 replicas on one 2 x L4 node
        (1, 2, 2, 1),
    ],
)
def test_pods_for_replicas(replicas, gpus, per_node, pods):
    assert pods_for(replicas, gpus, per_node) == pods, f"{replicas} x {gpus} GPUs on {per_node}-GPU nodes"


def test_deepseek_r1_tp8_pp2_gets_one_static_group_of_two_a3_nodes():
    (only,) = gpu_worker_groups(parse_models([R1]), A3_MEGA, max_gpu_nodes=2)
    assert (only.name, only.min_pods, only.max_pods, only.model_ids) == ("h100-x16", 2, 2, ("deepseek-r1",))


def test_two_models_of_different_shapes_get_a_group_each_scaling_from_zero():
    groups = gpu_worker_groups(parse_models(DISTILLS), G2, max_gpu_nodes=2)
    assert [(g.name, g.min_pods, g.max_pods, g.model_ids) for g in groups] == [
        ("l4-x1", 0, 1, ("qwen-1.5b",)),
        ("l4-x2", 0, 1, ("qwen-7b",)),
    ]


def test_group_size_is_capped_at_the_pool_size():
    model = dict(R1, minReplicas=1, maxReplicas=3, targetOngoingRequests=8)
    (only,) = gpu_worker_groups(parse_models([model]), A3_MEGA, max_gpu_nodes=4)
    assert (only.min_pods, only.max_pods) == (2, 4)


# --- head ---------------------------------------------------------------------------------------------------------


def test_head_takes_no_gpus_and_no_serve_replicas_on_the_system_pool(settings):
    head = cluster_of(render_rayservice(settings()))["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0", "num-gpus": "0"}
    spec = head["template"]["spec"]
    assert spec["nodeSelector"] == {"llmserve.dev/pool": "system"}
    assert "tolerations" not in spec, "the head must not tolerate the GPU taint"
    assert "nvidia.com/gpu" not in container(head["template"])["resources"]["limits"]


def test_head_declares_the_metrics_ports_managed_prometheus_scrapes(settings):
    head = cluster_of(render_rayservice(settings()))["headGroupSpec"]
    ports = {p["name"]: p["containerPort"] for p in container(head["template"])["ports"]}
    assert {"metrics": 8080, "as-metrics": 44217, "dash-metrics": 44227, "serve": 8000}.items() <= ports.items()


def scraped_ports(monitorings: list[dict]) -> dict[str, set[str]]:
    return {m["metadata"]["name"]: {e["port"] for e in m["spec"]["endpoints"]} for m in monitorings}


def test_the_autoscaler_port_is_scraped_only_where_kuberay_runs_the_autoscaler(settings):
    """Ray's autoscaler serves its metrics on 44217 (AUTOSCALER_METRIC_PORT, ray/autoscaler/v2/monitor.py); KubeRay
    starts it only with enableInTreeAutoscaling, so a static cluster has nothing there: a target always down."""
    static = settings()
    assert cluster_of(render_rayservice(static))["enableInTreeAutoscaling"] is False
    assert scraped_ports(render.render_pod_monitorings(static)) == {
        "llm-ray": {"metrics"},
        "llm-ray-head": {"dash-metrics"},
    }
    scaling = settings(machine=G2, models=DISTILLS)
    assert cluster_of(render_rayservice(scaling))["enableInTreeAutoscaling"] is True
    assert scraped_ports(render.render_pod_monitorings(scaling)) == {
        "llm-ray": {"metrics"},
        "llm-ray-head": {"as-metrics", "dash-metrics"},
    }


@pytest.mark.parametrize("stack, autoscaler", [("dev", True), ("staging", False), ("prod", False)])
def test_each_stack_scrapes_the_autoscaler_exactly_when_it_runs_one(planned, stack, autoscaler):
    manifests = planned(stack).manifests()
    [service] = [m for m in manifests if m["kind"] == "RayService"]
    assert service["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is autoscaler
    head = next(m for m in manifests if m["kind"] == "PodMonitoring" and m["metadata"]["name"] == "llm-ray-head")
    assert {e["port"] for e in head["spec"]["endpoints"]} == (
        {"as-metrics", "dash-metrics"} if autoscaler else {"dash-metrics"}
    )


def test_ray_token_auth_is_explicitly_on(settings):
    assert cluster_of(render_rayservice(settings()))["authOptions"] == {"mode": "token"}


# --- GPU workers -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("machine", [A3_MEGA, A3_HIGH])
def test_gpu_workers_take_a_whole_node_on_the_gpu_pool(machine, settings):
    worker = group(render_rayservice(settings(machine=machine)), "h100-x16")
    spec = worker["template"]["spec"]
    assert container(worker["template"])["resources"]["limits"]["nvidia.com/gpu"] == str(machine.gpu_count)
    assert spec["nodeSelector"]["cloud.google.com/gke-accelerator"] == machine.gke_accelerator
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert (worker["replicas"], worker["minReplicas"], worker["maxReplicas"]) == (2, 2, 2)


def test_gpu_workers_cache_weights_on_local_ssd(settings):
    worker = group(render_rayservice(settings()), "h100-x16")
    volumes = {v["name"]: v for v in worker["template"]["spec"]["volumes"]}
    assert volumes["weight-cache"]["emptyDir"]["sizeLimit"] == f"{A3_MEGA.local_ssd_gib // 2}Gi"
    assert env_of(worker["template"])["HF_HOME"] == "/mnt/hf-cache"  # local NVMe, as the README says


@pytest.mark.parametrize("machine, daemon, nics", [(A3_MEGA, "tcpxo-daemon", 8), (A3_HIGH, "tcpx-daemon", 4)])
def test_a3_gpu_workers_carry_the_gpudirect_wiring(machine, daemon, nics, settings):
    worker = group(render_rayservice(settings(machine=machine)), "h100-x16")
    annotations = worker["template"]["metadata"]["annotations"]
    assert f'"network":"vpc{nics}"' in annotations["networking.gke.io/interfaces"]
    (sidecar,) = worker["template"]["spec"]["initContainers"]
    assert (sidecar["name"], sidecar["restartPolicy"]) == (daemon, "Always")
    assert container(worker["template"])["name"] == "ray-worker", "KubeRay needs the Ray container first"
    assert env_of(worker["template"])["NCCL_SOCKET_IFNAME"] == "eth0"


def test_gpudirect_wiring_stays_off_the_head_the_cpu_group_and_non_a3_pools(settings):
    rayservice = render_rayservice(settings())
    for template in (cluster_of(rayservice)["headGroupSpec"]["template"], group(rayservice, "cpu")["template"]):
        # The only annotation: the group's bounds (tests/render/test_rayservice_bounds.py), never GPUDirect's.
        annotations = set(template["metadata"].get("annotations", {})) - {render.REPLICA_BOUNDS_ANNOTATION}
        assert "initContainers" not in template["spec"] and not annotations, annotations
    dev = render_rayservice(settings(machine=G2, models=DISTILLS))
    assert all("initContainers" not in g["template"]["spec"] for g in cluster_of(dev)["workerGroupSpecs"])
    off = render_rayservice(settings(gpudirect=GpuDirect.NONE))
    assert "initContainers" not in group(off, "h100-x16")["template"]["spec"]


def test_autoscaling_groups_declare_the_accelerator_resource_and_turn_on_the_autoscaler(settings):
    dev = cluster_of(render_rayservice(settings(machine=G2, models=DISTILLS)))
    assert dev["enableInTreeAutoscaling"] is True
    assert dev["autoscalerOptions"]["version"] == "v2"
    for worker in dev["workerGroupSpecs"]:
        if worker["groupName"] != "cpu":
            assert worker["resources"] == {"accelerator_type:L4": "1"}, worker["groupName"]
            assert worker["minReplicas"] == 0, worker["groupName"]
    static = cluster_of(render_rayservice(settings()))
    assert static["enableInTreeAutoscaling"] is False and "autoscalerOptions" not in static
    assert "resources" not in group(render_rayservice(settings()), "h100-x16")


def test_cpu_group_on_the_system_pool_hosts_the_ingress_so_gpus_can_scale_to_zero(settings):
    cpu = group(render_rayservice(settings(machine=G2, models=DISTILLS)), "cpu")
    assert cpu["template"]["spec"]["nodeSelector"] == {"llmserve.dev/pool": "system"}
    assert (cpu["minReplicas"], cpu["maxReplicas"]) == (1, 1)
    names = [g["groupName"] for g in cluster_of(render_rayservice(settings(cpu_workers=0)))["workerGroupSpecs"]]
    assert names == ["h100-x16"]


# --- auth, serve app, exposure, rollout -------------------------------------------------------------------------------


def ray_templates(rayservice: dict) -> list[dict]:
    cluster = cluster_of(rayservice)
    return [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]


def key_volume_of(template: dict) -> tuple[list[dict], list[dict]]:
    volumes = [v for v in template["spec"]["volumes"] if v["name"] == "api-keys"]
    mounts = [m for m in container(template)["volumeMounts"] if m["name"] == "api-keys"]
    return volumes, mounts


def test_auth_is_on_by_default_every_ray_container_mounts_the_key_secret_as_a_volume(settings):
    """A Secret volume (no subPath) is updated in place by the kubelet; env from a Secret is read once."""
    rayservice = render_rayservice(settings())
    for template in ray_templates(rayservice):
        volumes, mounts = key_volume_of(template)
        assert volumes == [
            {
                "name": "api-keys",
                "secret": {
                    "secretName": "llm-api-key",
                    "defaultMode": 0o444,
                    "items": [{"key": "keys", "path": "keys"}],
                },
            }
        ]
        assert mounts == [{"name": "api-keys", "mountPath": "/etc/llmserve/api-keys", "readOnly": True}]
        assert all(
            "secretKeyRef" not in str(value) for value in env_of(template).values() if "llm-api-key" in str(value)
        ), "the keys must not also come from env"
    assert ingress_args(rayservice) == {
        "ingress_cls": "serve_app.ingress:AuthenticatedOpenAiIngress",
        "ingress_kwargs": {"api_key_file": "/etc/llmserve/api-keys/keys", "api_key_reload_s": 10.0},
    }


def ingress_args(rayservice: dict) -> dict:
    serve = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    (ingress,) = [app for app in serve["applications"] if app["route_prefix"] is not None]
    assert ingress["name"] == "llm" and ingress["route_prefix"] == "/"
    return ingress["args"]


def test_auth_off_removes_the_key_and_the_key_check(settings):
    rayservice = render_rayservice(settings(api_auth=False))
    assert all(key_volume_of(t) == ([], []) for t in ray_templates(rayservice))
    assert ingress_args(rayservice) == {"ingress_cls": "serve_app.ingress:ConfiguredOpenAiIngress"}


def test_serve_app_is_mounted_on_pythonpath_from_a_content_named_configmap(monkeypatch, settings):
    current = settings()
    configmap = render.render_serve_app_configmap(current)
    assert "serve_app.ingress.py" in configmap["data"] and configmap["immutable"] is True
    for template in ray_templates(render_rayservice(current)):
        assert env_of(template)["PYTHONPATH"] == "/opt/llmserve"
        volume = next(v for v in template["spec"]["volumes"] if v["name"] == "serve-app")
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        assert {"key": "serve_app.ingress.py", "path": "serve_app/ingress.py"} in volume["configMap"]["items"]
    render.serve_app_files.cache_clear()
    monkeypatch.setattr(render, "cluster_sources", lambda: {"serve_app/ingress.py": "changed"})
    try:
        assert render.serve_app_configmap_name(current) != configmap["metadata"]["name"]
    finally:
        render.serve_app_files.cache_clear()


def test_hf_token_reaches_gpu_workers_only_when_configured(settings):
    without = group(render_rayservice(settings()), "h100-x16")
    assert "HF_TOKEN" not in env_of(without["template"])
    with_token = group(render_rayservice(settings(hf_token=True)), "h100-x16")
    assert env_of(with_token["template"])["HF_TOKEN"] == {"secretKeyRef": {"name": "llm-hf-token", "key": "token"}}


def test_load_balancer_exposure_is_opt_in_and_internal_only(settings):
    assert "serveService" not in render_rayservice(settings())["spec"]
    service = render_rayservice(settings(exposure="internal", source_ranges=("10.0.0.0/8",)))["spec"]["serveService"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert service["metadata"].get("annotations") == {"networking.gke.io/load-balancer-type": "Internal"}
    # external goes through the HTTPS Gateway (infra/render/exposure.py): no plain-HTTP public load balancer
    assert "serveService" not in render_rayservice(settings(exposure="external"))["spec"]


@pytest.mark.parametrize("upgrade, kuberay_type", [("NewCluster", "NewCluster"), ("Recreate", "None")])
def test_upgrade_strategy_is_explicit(upgrade, kuberay_type, settings):
    spec = render_rayservice(settings(upgrade=upgrade))["spec"]
    assert spec["upgradeStrategy"] == {"type": kuberay_type}


def test_pulumi_waits_for_ready_and_for_every_serve_application_of_this_config_to_run(settings):
    """A JSON list: the provider waits until all hold; an in-place serveConfigV2 update keeps Ready=True, so
    only the application statuses show DEPLOYING / DEPLOY_FAILED, and only the marker named after this config's
    hash tells this config's statuses from the previous one's (tests/render/test_rayservice_wait.py replays it)."""
    rayservice = render_rayservice(settings())
    annotations = rayservice["metadata"]["annotations"]
    digest = annotations["llmserve.dev/serve-config-hash"]
    serve = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    assert serve["applications"][0]["name"] == f"config-{digest}" and re.fullmatch(r"[0-9a-f]{16}", digest)
    assert json.loads(annotations["pulumi.com/waitFor"]) == [
        "jsonpath={$[?@.observedGeneration == $.metadata.generation]}",
        "condition=Ready",
        "condition=UpgradeInProgress=False",
        f"jsonpath={{.status.activeServiceStatus.applicationStatuses['config-{digest}'].status}}=RUNNING",
        "jsonpath={.status.activeServiceStatus.applicationStatuses.llm.status}=RUNNING",
        "jsonpath={.status.activeServiceStatus.applicationStatuses['model-deepseek-r1'].status}=RUNNING",
    ]
    assert wait_for_conditions(serve) == json.loads(annotations["pulumi.com/waitFor"])


@pytest.mark.parametrize(
    "name, path",
    [
        ("llm", "{.status.activeServiceStatus.applicationStatuses.llm.status}"),
        ("b_app", "{.status.activeServiceStatus.applicationStatuses.b_app.status}"),
        ("model-a.b/c", "{.status.activeServiceStatus.applicationStatuses['model-a.b/c'].status}"),
        ("it's", "{.status.activeServiceStatus.applicationStatuses['it\\'s'].status}"),
    ],
)
def test_application_status_paths_select_any_name(name, path):
    assert render.application_status_path(name) == path


def test_a_serve_config_change_changes_the_marker_and_the_hash_annotation(settings):
    before = render_rayservice(settings())["metadata"]["annotations"]
    changed = render_rayservice(settings(models=({**R1, "maxNumSeqs": 32},)))["metadata"]["annotations"]
    assert changed["llmserve.dev/serve-config-hash"] != before["llmserve.dev/serve-config-hash"]
    assert changed["llmserve.dev/serve-config-hash"] in changed["pulumi.com/waitFor"]


# --- validity ---------------------------------------------------------------------------------------------------------

CASES = {
    "prod": dict(),
    "staging": dict(machine=A3_HIGH),
    "dev": dict(machine=G2, models=DISTILLS),
    "exposed": dict(exposure="internal", source_ranges=("10.0.0.0/8",), upgrade="Recreate", hf_token=True),
}


@pytest.mark.parametrize("case", CASES)
def test_rayservice_validates_against_the_kuberay_v1_crd_rules(case, validate_rayservice, settings):
    validate_rayservice(render_rayservice(settings(**CASES[case])))


@pytest.mark.parametrize("case", CASES)
def test_every_pod_template_is_a_valid_pod(case, assert_valid_kubernetes_object, settings):
    for template in ray_templates(render_rayservice(settings(**CASES[case]))):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x", **template.get("metadata", {})},
            "spec": template["spec"],
        }
        assert_valid_kubernetes_object(pod, f"{case}: {container(template)['name']} pod template")


@pytest.mark.parametrize("case", CASES)
def test_serve_config_validates_with_rays_own_schema(case, settings):
    serve = yaml.safe_load(render_rayservice(settings(**CASES[case]))["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve)


@pytest.mark.parametrize("case", CASES)
def test_built_in_objects_validate_against_the_openapi_schema(case, assert_valid_kubernetes_object, settings):
    current = settings(**CASES[case])
    for obj in (
        render.render_namespace("llm"),
        render.render_serve_app_configmap(current),
        render_secret("s", "llm", {"keys": "k"}),
    ):
        assert_valid_kubernetes_object(obj, case)


def test_settings_are_frozen(settings):
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings().name = "other"  # type: ignore[misc]
