"""The serving objects as plain dicts: the RayService that runs the models, and what it mounts and reads.

Pure: `render_rayservice(settings)` and friends take typed settings and return Kubernetes objects; the
`LlmService` component (infra/components/serving.py) turns them into resources. The Ray Serve config inside the
RayService comes from `serve_app.builder`, the single source of truth for what is served.

Shape of the Ray cluster:
- the head runs on the CPU system pool with `num-cpus: 0` and `num-gpus: 0`, so no Serve replica and no vLLM
  worker ever lands on it (a head that sees GPUs makes pipeline-parallel placement hang);
- a small CPU worker group on the system pool hosts the OpenAI ingress, so GPU groups can scale to zero and
  still be woken by a request;
- one GPU worker group per model shape (GPUs per replica), one pod per node taking all of its GPUs, sized
  from tensor x pipeline parallel over GPUs per node; on A3 the GPUDirect pod patch is applied.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from infra.catalog import (
    ACCELERATOR_NODE_LABEL,
    GPU_POOL_LABELS,
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    PART_OF_LABEL,
    RAY_NODE_SELECTOR,
    RAY_VERSION,
    SERVE_CONFIG_HASH_ANNOTATION,
    SYSTEM_POOL_LABELS,
    GpuDirect,
    MachineProfile,
)
from infra.planning.sizing import WorkerGroupSize, gpu_worker_groups
from infra.render.disruption import recovery_estimates, with_graceful_stop
from infra.render.files import content_name, files_configmap, files_volume, keyed_files
from infra.render.gpudirect.pod_patch import workload_pod_patch
from infra.render.secrets import HF_TOKEN_SECRET_KEY, hf_token_secret_name
from infra.render.weights import WeightsSettings, patch_gpu_template, patch_serve_config, with_store_identity
from serve_app.admission_config import AdmissionSettings
from serve_app.builder import AuthSettings, build_serve_config, serve_config_hash
from serve_app.bundle import cluster_sources
from serve_app.contract import DEFAULT_API_KEY_FILE, config_marker_name
from serve_app.pipeline_spec import Pipeline
from serve_app.spec import ModelSpec

SERVE_PORT = 8000
DASHBOARD_PORT = 8265
HEAD_CPU, HEAD_MEMORY = "4", "16Gi"
CPU_WORKER_CPU, CPU_WORKER_MEMORY = "2", "8Gi"
SERVE_APP_MOUNT = "/opt/llmserve"  # the ConfigMap with serve_app's in-cluster files; on PYTHONPATH
WEIGHT_CACHE_MOUNT = "/mnt/hf-cache"  # HF_HOME on local NVMe: ~690 GB of R1 weights per node
API_KEY_SECRET_KEY = "keys"
TENANT_KEYS_SECRET_KEY = "tenant-keys"  # the tenants' keys (serve_app/tenants.py), only when there are tenants
# The Kubernetes provider waits for these before `pulumi up` returns (see `wait_for_conditions`).
WAIT_FOR_ANNOTATION = "pulumi.com/waitFor"
WAIT_FOR_READY = "condition=Ready"
# During a NewCluster upgrade the old cluster keeps Ready=True and its RUNNING application statuses while the
# pending cluster starts; KubeRay sets UpgradeInProgress=False (reason NoPendingCluster) only once the switch is
# done, and whenever an active cluster exists without a pending one (so also after a Recreate).
WAIT_FOR_NO_PENDING_CLUSTER = "condition=UpgradeInProgress=False"
# KubeRay has written a status for this generation of the spec. Not enough on its own: KubeRay 1.7 fetches the
# application statuses *before* it submits a changed serveConfigV2 (rayservice_controller.go reconcileServe:
# getAndCheckServeStatus, then updateServeDeployment) and calculateStatus writes observedGeneration in the same
# update as those pre-submit statuses. The application named after the config's hash (see wait_for_conditions)
# is what no pre-submit status can satisfy. The provider's RFC 9535 JSONPath compares against the object's own
# metadata.generation: the filter selects .status only once it has caught up.
WAIT_FOR_OBSERVED = "jsonpath={$[?@.observedGeneration == $.metadata.generation]}"
API_KEY_VOLUME = "api-keys"
KUBERAY_UPGRADE_TYPE = {"NewCluster": "NewCluster", "Recreate": "None"}
# A worker group's bounds as "min-max" pods, on its pod template under NewCluster (see `_worker_group`).
REPLICA_BOUNDS_ANNOTATION = "llmserve.dev/worker-replicas"
HEAD_PORTS = (
    ("gcs-server", 6379),
    ("dashboard", DASHBOARD_PORT),
    ("client", 10001),
    ("serve", SERVE_PORT),
    ("metrics", 8080),
    ("as-metrics", 44217),
    ("dash-metrics", 44227),
)
# Only the internal exposure is a load balancer on the serve Service; external goes through the HTTPS Gateway
# (infra/render/exposure.py), so no public plain-HTTP load balancer is ever rendered.
LOAD_BALANCER_ANNOTATIONS = {"internal": {"networking.gke.io/load-balancer-type": "Internal"}}


@dataclass(frozen=True)
class RayServiceSettings:
    """Everything the serving objects depend on, already validated by infra/config/stack.py."""

    name: str
    namespace: str
    image: str
    models: tuple[ModelSpec, ...]
    machine: MachineProfile
    gpudirect: GpuDirect
    max_gpu_nodes: int
    cpu_workers: int
    upgrade: str  # "NewCluster" | "Recreate"
    exposure: str  # "cluster" | "internal" | "external"
    source_ranges: tuple[str, ...] = ()
    api_auth: bool = True
    hf_token: bool = False  # whether an HF token Secret exists; LlmService sets it from the token it is given
    api_key_file: str = DEFAULT_API_KEY_FILE
    weights: WeightsSettings | None = None  # where the weights come from (infra/render/weights.py)
    pipelines: tuple[Pipeline, ...] = ()  # rendered into the ingress's user_config (serve_app/pipeline_spec.py)
    stream_drain_s: int = 900  # streamDrainSeconds: graceful shutdown, preStop and grace periods (drain.py)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)  # tenants' limits and the overload bound

    @property
    def api_key_secret(self) -> str:
        return f"{self.name}-api-key"

    @property
    def tenant_key_file(self) -> str | None:
        """The tenants' keys, next to the API-key file in the same Secret volume; None without tenants."""
        if not (self.api_auth and self.admission.tenants):
            return None
        return posixpath.join(posixpath.dirname(self.api_key_file), TENANT_KEYS_SECRET_KEY)

    @property
    def hf_token_secret(self) -> str:
        return hf_token_secret_name(self.name)

    @property
    def serve_service(self) -> str:
        return f"{self.name}-serve-svc"  # KubeRay's name for the Service in front of the Serve proxies

    @property
    def head_service(self) -> str:
        return f"{self.name}-head-svc"


# --- the objects ----------------------------------------------------------------------------------------------


def render_namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(PART_OF_LABEL)}}


@functools.cache
def serve_app_files() -> dict[str, tuple[str, str]]:
    """The in-cluster serve_app files: ConfigMap key (which cannot contain "/") -> (relative path, text).
    Read once per process: every Ray pod template and the ConfigMap refer to the same content."""
    return keyed_files(cluster_sources())


def serve_app_configmap_name(settings: RayServiceSettings) -> str:
    """Named after its content: new ingress code means a new ConfigMap and so a new pod template, which is
    what makes KubeRay roll the Ray cluster (a changed ConfigMap under a running pod is never re-read)."""
    return content_name(f"{settings.name}-serve-app", serve_app_files())


def render_serve_app_configmap(settings: RayServiceSettings) -> dict:
    return files_configmap(serve_app_configmap_name(settings), settings.namespace, serve_app_files(), PART_OF_LABEL)


def render_serve_config(settings: RayServiceSettings) -> dict:
    config = build_serve_config(
        settings.models,
        pipelines=settings.pipelines,
        auth=AuthSettings(
            enabled=settings.api_auth, api_key_file=settings.api_key_file, tenant_key_file=settings.tenant_key_file
        ),
        http_port=SERVE_PORT,
        stream_drain_s=settings.stream_drain_s,
        recovery_s=recovery_estimates(settings),
        admission=settings.admission,
    )
    return patch_serve_config(config, settings.weights, settings.models) if settings.weights else config


def application_status_path(app_name: str) -> str:
    """KubeRay 1.7's per-application Serve status (RUNNING, DEPLOYING, DEPLOY_FAILED, ...) as JSONPath."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", app_name):
        selector = f".{app_name}"
    else:  # RFC 9535 name selector for names with '-', '.' or spaces
        selector = "['" + app_name.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return "{.status.activeServiceStatus.applicationStatuses" + selector + ".status}"


def wait_for_conditions(serve_config: dict) -> list[str]:
    """What `pulumi up` waits for on the RayService: KubeRay has seen this spec, it is Ready, no upgrade to a
    second cluster is still pending, and every Serve application of *this* config is RUNNING, the first of them
    the marker ``config-<hash>`` named after the config's hash (serve_app.builder.stamp_serve_config).

    The marker makes the wait unsatisfiable by any status KubeRay writes before it submits this config: KubeRay
    1.7 copies the applications the dashboard lists into status.activeServiceStatus.applicationStatuses,
    replacing the previous map (rayservice_controller.go calculateStatus), and before the submit no application
    has that name. The PUT that submits it returns only after the Serve controller has applied the whole config
    (ray/serve/_private/controller.py apply_config), which marks every application of it DEPLOYING
    (application_state.py _set_target_state) and creates the marker as DEPLOYING; an application reports RUNNING
    again only once its deployments are healthy at the new target. So the first status that lists the marker
    comes from after the submit, and "marker and every application RUNNING" in one status means this config
    runs. `condition=Ready` alone is not enough (KubeRay keeps it True while the old endpoints serve), nor are
    the application statuses alone (right after the update they still say RUNNING for the previous config).
    With rayClusterUpgrade NewCluster, a cluster change leaves all of these true for the old cluster while the
    new one is pending, hence UpgradeInProgress=False. The Kubernetes provider (>= 4.18; RFC 9535 JSONPath since
    4.24) takes a JSON list of conditions and waits until all hold at once; while it waits it shows the first
    unmet condition with the value it found (e.g. `found "DEPLOY_FAILED"`), and at the custom timeout it fails
    with that last state of the object. It has no failure condition (pulumi-kubernetes #4428): a DEPLOY_FAILED
    application waits for the timeout.
    """
    marker = config_marker_name(serve_config_hash(serve_config))
    others = sorted(
        application["name"] for application in serve_config["applications"] if application["name"] != marker
    )
    return [WAIT_FOR_OBSERVED, WAIT_FOR_READY, WAIT_FOR_NO_PENDING_CLUSTER] + [
        f"jsonpath={application_status_path(app)}=RUNNING" for app in [marker, *others]
    ]


def in_tree_autoscaling(settings: RayServiceSettings) -> bool:
    """Whether KubeRay runs Ray's autoscaler in the head pod: only when a GPU worker group may change size."""
    return _any_group_scales(gpu_worker_groups(settings.models, settings.machine, settings.max_gpu_nodes))


def _any_group_scales(groups: Sequence[WorkerGroupSize]) -> bool:
    return any(group.min_pods != group.max_pods for group in groups)


def render_rayservice(settings: RayServiceSettings) -> dict:
    """The RayService. `serveConfigV2` changes roll out in place; anything under `rayClusterConfig` rolls out
    per `settings.upgrade` (see infra/components/serving.py)."""
    groups = gpu_worker_groups(settings.models, settings.machine, settings.max_gpu_nodes)
    serve_config = render_serve_config(settings)
    autoscaling = _any_group_scales(groups)
    cluster: dict[str, Any] = {
        "rayVersion": RAY_VERSION,
        "enableInTreeAutoscaling": autoscaling,
        # Ray 2.60 turns token auth on by default; say so explicitly and let KubeRay create the token Secret,
        # inject it into every Ray container and present it to the dashboard when it deploys serveConfigV2.
        # The token guards the dashboard and job API (remote code execution); the OpenAI API has its own key.
        "authOptions": {"mode": "token"},
        "headGroupSpec": _head_group(settings),
        "workerGroupSpecs": [_gpu_group(settings, group, autoscaling) for group in groups]
        + ([_cpu_group(settings)] if settings.cpu_workers else []),
    }
    if autoscaling:
        cluster["autoscalerOptions"] = {"version": "v2", "upscalingMode": "Default", "idleTimeoutSeconds": 600}
    spec: dict[str, Any] = {
        "upgradeStrategy": {"type": KUBERAY_UPGRADE_TYPE[settings.upgrade]},
        "serveConfigV2": yaml.safe_dump(serve_config, sort_keys=True, width=120),
        "rayClusterConfig": cluster,
    }
    if settings.upgrade == "NewCluster":
        spec["rayClusterDeletionDelaySeconds"] = 60
    if settings.exposure in LOAD_BALANCER_ANNOTATIONS:
        spec["serveService"] = _load_balancer(settings)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": settings.name,
            "namespace": settings.namespace,
            "labels": dict(PART_OF_LABEL),
            "annotations": {
                WAIT_FOR_ANNOTATION: json.dumps(wait_for_conditions(serve_config)),
                SERVE_CONFIG_HASH_ANNOTATION: serve_config_hash(serve_config),
            },
        },
        "spec": spec,
    }


def _common_env() -> list[dict]:
    return [{"name": "PYTHONPATH", "value": SERVE_APP_MOUNT}]


def _api_key_volume(settings: RayServiceSettings) -> tuple[dict, dict]:
    """The API-key Secret as a volume (not env, not subPath): the kubelet updates the file in place when the
    Secret changes and the ingress re-reads it, so a key rotation needs no restart."""
    directory, filename = posixpath.split(settings.api_key_file)
    items = [{"key": API_KEY_SECRET_KEY, "path": filename}]
    if settings.tenant_key_file is not None:
        items.append({"key": TENANT_KEYS_SECRET_KEY, "path": posixpath.basename(settings.tenant_key_file)})
    volume = {
        "name": API_KEY_VOLUME,
        "secret": {"secretName": settings.api_key_secret, "defaultMode": 0o444, "items": items},
    }
    return volume, {"name": API_KEY_VOLUME, "mountPath": directory, "readOnly": True}


def _serve_app_volume(settings: RayServiceSettings) -> tuple[dict, dict]:
    volume = files_volume("serve-app", serve_app_configmap_name(settings), serve_app_files())
    return volume, {"name": "serve-app", "mountPath": SERVE_APP_MOUNT, "readOnly": True}


def _resources(cpu: str, memory: str, gpus: int = 0) -> dict:
    amounts = {"cpu": cpu, "memory": memory}
    if gpus:
        amounts[GPU_RESOURCE] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _pod_template(
    settings: RayServiceSettings,
    container: dict,
    node_selector: dict,
    *,
    volumes: Sequence[dict] = (),
    tolerations: Sequence[dict] = (),
) -> dict:
    """A Ray pod template: `container` (name, resources, and any env, mounts or ports of its own) gains the
    image, the env every Ray container needs and the serve_app mount; the pod gains the serve_app volume."""
    serve_app_volume, serve_app_mount = _serve_app_volume(settings)
    own_volumes, own_mounts = [serve_app_volume], [serve_app_mount]
    if settings.api_auth:  # every Ray container: the ingress replica may land on any node
        key_volume, key_mount = _api_key_volume(settings)
        own_volumes.append(key_volume)
        own_mounts.append(key_mount)
    container = {
        **container,
        "image": settings.image,
        "env": _common_env() + container.get("env", []),
        "volumeMounts": [*own_mounts, *container.get("volumeMounts", [])],
    }
    spec: dict[str, Any] = {"nodeSelector": node_selector}
    if tolerations:
        spec["tolerations"] = list(tolerations)
    spec["containers"] = [container]
    spec["volumes"] = [*own_volumes, *volumes]
    return {"metadata": {"labels": dict(PART_OF_LABEL)}, "spec": spec}


def _worker_group(settings: RayServiceSettings, name: str, min_pods: int, max_pods: int, template: dict) -> dict:
    template = with_graceful_stop(template, settings.stream_drain_s)  # infra/render/disruption.py
    if settings.upgrade == "NewCluster":
        # KubeRay's cluster hash leaves out replicas, minReplicas and maxReplicas (utils/util.go:645-668 at
        # v1.7.0), so a change to only those is neither applied to the running RayCluster nor builds a new one
        # (kuberay #2331, #4568): the group would keep its old bounds, silently. Written into the pod template,
        # which the hash covers, new bounds build a second cluster that has them. (Under Recreate any change
        # under rayClusterConfig already replaces the RayService: infra/components/serving.py.)
        metadata = dict(template.get("metadata", {}))
        metadata["annotations"] = {
            **metadata.get("annotations", {}),
            REPLICA_BOUNDS_ANNOTATION: f"{min_pods}-{max_pods}",
        }
        template = {**template, "metadata": metadata}
    return {
        "groupName": name,
        "replicas": min_pods,
        "minReplicas": min_pods,
        "maxReplicas": max_pods,
        "numOfHosts": 1,
        "rayStartParams": {},
        "template": template,
    }


def _head_group(settings: RayServiceSettings) -> dict:
    return {
        "rayStartParams": {"num-cpus": "0", "num-gpus": "0"},
        "template": _pod_template(
            settings,
            {
                "name": "ray-head",
                "resources": _resources(HEAD_CPU, HEAD_MEMORY),
                "ports": [{"name": name, "containerPort": port} for name, port in HEAD_PORTS],
            },
            dict(SYSTEM_POOL_LABELS),
        ),
    }


def _cpu_group(settings: RayServiceSettings) -> dict:
    template = _pod_template(
        settings,
        {"name": "ray-worker", "resources": _resources(CPU_WORKER_CPU, CPU_WORKER_MEMORY)},
        dict(SYSTEM_POOL_LABELS),
    )
    if settings.weights is not None:
        template = with_store_identity(template, settings.weights)
    return _worker_group(settings, "cpu", settings.cpu_workers, settings.cpu_workers, template)


def _gpu_group(settings: RayServiceSettings, group: WorkerGroupSize, autoscaling: bool) -> dict:
    machine = settings.machine
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": WEIGHT_CACHE_MOUNT},
        # Pods on multi-NIC nodes have eth1..ethN too: keep Gloo's rendezvous on the pod network.
        {"name": "GLOO_SOCKET_IFNAME", "value": "eth0"},
    ]
    if settings.gpudirect is GpuDirect.NONE:
        env.append({"name": "NCCL_SOCKET_IFNAME", "value": "eth0"})  # the GPUDirect patch sets its own
    if settings.hf_token:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": settings.hf_token_secret, "key": HF_TOKEN_SECRET_KEY}},
            }
        )
    template = _pod_template(
        settings,
        {
            "name": "ray-worker",
            "resources": _resources(
                str(machine.ray_worker_cpu), f"{machine.ray_worker_memory_gib}Gi", machine.gpu_count
            ),
            "env": env,
            "volumeMounts": [{"name": "weight-cache", "mountPath": WEIGHT_CACHE_MOUNT}],
        },
        {ACCELERATOR_NODE_LABEL: machine.gke_accelerator, **GPU_POOL_LABELS},
        volumes=[{"name": "weight-cache", "emptyDir": {"sizeLimit": f"{machine.local_ssd_gib // 2}Gi"}}],
        tolerations=[{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
    )
    patch = workload_pod_patch(settings.gpudirect, machine.gpu_nic_count, machine.gpu_count)
    if not patch.is_empty:
        template = patch.apply_to_pod_template(template, "ray-worker")
    if settings.weights is not None:
        template = with_store_identity(template, settings.weights)
        template = patch_gpu_template(
            template,
            settings.weights,
            [model for model in settings.models if model.model_id in group.model_ids],
            machine,
        )
    worker = _worker_group(settings, group.name, group.min_pods, group.max_pods, template)
    if autoscaling:
        # The autoscaler only knows resources a group declares; Serve LLM's placement groups ask for
        # `accelerator_type:<GPU>`, so without this a scale-up from zero is "infeasible".
        worker["resources"] = {f"accelerator_type:{machine.ray_accelerator}": "1"}
    return worker


def _load_balancer(settings: RayServiceSettings) -> dict:
    # Local: the load balancer sends traffic only to nodes with a Serve proxy, with the client's address kept.
    # With Cluster, kube-proxy would forward from other nodes under the node's address, which the Serve port's
    # NetworkPolicy (serveSourceRanges) does not allow.
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Local",
        "ports": [{"name": "serve", "port": SERVE_PORT, "targetPort": SERVE_PORT, "protocol": "TCP"}],
    }
    if settings.source_ranges:
        spec["loadBalancerSourceRanges"] = list(settings.source_ranges)
    metadata: dict[str, Any] = {
        "labels": dict(PART_OF_LABEL),
        "annotations": dict(LOAD_BALANCER_ANNOTATIONS[settings.exposure]),
    }
    return {"metadata": metadata, "spec": spec}


def render_pod_monitorings(settings: RayServiceSettings) -> list[dict]:
    """Managed Prometheus scrapes of Ray's metrics port on every Ray pod (Ray, Serve and the vLLM engine
    metrics Serve LLM re-exports as ray_vllm_*) and of the head's dashboard metrics, plus its autoscaler's
    when KubeRay runs the in-tree autoscaler (without it nothing listens on that port: a target always down).
    That port is the autoscaler monitor's metrics server (ray/autoscaler/_private/monitor.py, `Monitor.__init__`,
    port AUTOSCALER_METRIC_PORT 44217 in autoscaler/_private/constants.py, Ray 2.60.0), which Ray starts for
    KubeRay's autoscaler container (autoscaler/_private/kuberay/run_autoscaler.py).
    The `ray_io_cluster` label is what Ray's Grafana dashboards filter on."""
    from_pod = [{"from": "ray.io/cluster", "to": "ray_io_cluster"}, {"from": "ray.io/node-type", "to": "ray_node_type"}]

    def monitoring(name: str, selector: dict, ports: Sequence[str]) -> dict:
        return {
            "apiVersion": "monitoring.googleapis.com/v1",
            "kind": "PodMonitoring",
            "metadata": {"name": name, "namespace": settings.namespace, "labels": dict(PART_OF_LABEL)},
            "spec": {
                "selector": {"matchLabels": selector},
                "endpoints": [{"port": port, "interval": "30s"} for port in ports],
                "targetLabels": {"fromPod": from_pod},
            },
        }

    return [
        monitoring(f"{settings.name}-ray", RAY_NODE_SELECTOR, ["metrics"]),
        monitoring(
            f"{settings.name}-ray-head",
            {"ray.io/node-type": "head"},
            ["as-metrics", "dash-metrics"] if in_tree_autoscaling(settings) else ["dash-metrics"],
        ),
    ]


def serve_urls(settings: RayServiceSettings) -> dict[str, str]:
    """How to reach what the RayService serves, for the stack outputs."""
    namespace = settings.namespace
    return {
        "openai_base_url": f"http://{settings.serve_service}.{namespace}.svc.cluster.local:{SERVE_PORT}/v1",
        "port_forward_command": f"kubectl -n {namespace} port-forward svc/{settings.serve_service} "
        f"{SERVE_PORT}:{SERVE_PORT}  # then use http://127.0.0.1:{SERVE_PORT}/v1",
        "ray_dashboard_command": f"kubectl -n {namespace} port-forward svc/{settings.head_service} "
        f"{DASHBOARD_PORT}:{DASHBOARD_PORT}  # then open http://127.0.0.1:{DASHBOARD_PORT}",
    }
