"""What keeps a voluntary disruption from cutting streams or taking a model's last replica: PodDisruptionBudgets
for the Ray pods, the Ray worker pods' graceful stop, and each model's recovery estimate for the ingress.

Pure: plain dicts from `RayServiceSettings`; `LlmService` (infra/components/serving.py) registers the budgets.

* **Budgets.** A PodDisruptionBudget limits *evictions* (``kubectl drain``, GKE node upgrades and repairs, the
  cluster autoscaler's scale-down), not deletions: KubeRay's autoscaler deletes idle worker pods and a
  RayService upgrade deletes the old cluster, neither of which a budget blocks (Kubernetes, "Disruptions":
  https://kubernetes.io/docs/concepts/workloads/pods/disruptions/). One budget per Ray group, selecting that
  group's pods by KubeRay's labels (``ray.io/group``, ``ray.io/node-type``; ray-operator/controllers/ray/utils/
  constant.go at v1.7.0). A multi-host replica (DeepSeek-R1 at TP 8 x PP 2: 2 pods) dies when *either* of its
  pods goes, so a group may lose at most one replica's pods at a time, and only when every model in it keeps
  another replica: `max_unavailable_pods`. Otherwise the budget is 0: the eviction is refused and the drain
  waits, visibly (``kubectl drain`` retries and says which budget; GKE node upgrades wait and then go ahead
  anyway, see docs/operations.md). The head is always 0 (one head; its loss restarts the cluster unless GCS
  fault tolerance is on). ``unhealthyPodEvictionPolicy: AlwaysAllow``: a pod that is not Ready serves nothing
  and may always go (Kubernetes, "Unhealthy Pod Eviction Policy", GA in 1.31).
* **Graceful stop** of a Ray worker pod that is deleted or evicted: the preStop hook ``python -m
  serve_app.drain`` drains the Ray node and waits until Serve has moved off it (serve_app/drain.py), for at most
  `stream_drain_s` + `PRESTOP_MARGIN_S`; ``terminationGracePeriodSeconds`` is `GRACE_MARGIN_S` more, so the
  kubelet never kills the hook. Serve's own ``graceful_shutdown_timeout_s`` on every deployment is
  `stream_drain_s` too (serve_app/builder.py), so a replica stopped by a scale-down or a config change waits for
  its streams the same time.
* **Recovery estimates**: seconds until a model whose engine died serves again, the ``Retry-After`` of the 503s
  meanwhile (serve_app/engine_health.py): the low end of the cold-start planner's restart estimate for the
  model's weight source (infra/planning/coldstart.py ``restart_minutes``: a new replica in a pod that keeps
  running), the earliest a retry can succeed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from infra.catalog import PART_OF_LABEL
from infra.planning.coldstart import restart_minutes
from infra.planning.model_capacity import model_reports
from infra.planning.sizing import WorkerGroupSize, gpu_worker_groups

if TYPE_CHECKING:
    from infra.render.rayservice import RayServiceSettings

RAY_GROUP_LABEL = "ray.io/group"
RAY_NODE_TYPE_LABEL = "ray.io/node-type"
WORKER_CONTAINER = "ray-worker"
PRESTOP_MARGIN_S = 15  # Serve's replacement replica start and the proxy's drain check, on top of the streams
GRACE_MARGIN_S = 15  # the kubelet's SIGTERM to `ray start --block` after the hook, before its SIGKILL
CPU_GROUP = "cpu"


def termination_grace_s(stream_drain_s: int) -> int:
    return stream_drain_s + PRESTOP_MARGIN_S + GRACE_MARGIN_S


def with_graceful_stop(template: dict, stream_drain_s: int) -> dict:
    """A Ray worker pod template whose pod drains its Ray node before it stops (see the module docstring)."""
    spec = dict(template["spec"])
    hook = ["python", "-m", "serve_app.drain", "--deadline-s", str(stream_drain_s + PRESTOP_MARGIN_S)]
    spec["containers"] = [
        {**container, "lifecycle": {"preStop": {"exec": {"command": hook}}}}
        if container["name"] == WORKER_CONTAINER
        else container
        for container in spec["containers"]
    ]
    spec["terminationGracePeriodSeconds"] = termination_grace_s(stream_drain_s)
    return {**template, "spec": spec}


def max_unavailable_pods(group: WorkerGroupSize, settings: RayServiceSettings) -> int:
    """Pods of a GPU group that may be evicted at once: one replica's worth when every model of the group keeps
    another replica through it, else 0."""
    gpus_per_node = settings.machine.gpu_count
    pods_per_replica = max(1, group.gpus_per_replica // gpus_per_node)
    replicas_per_pod = max(1, gpus_per_node // group.gpus_per_replica)
    models = [model for model in settings.models if model.model_id in group.model_ids]
    spare = all(model.min_replicas > replicas_per_pod for model in models) and bool(models)
    return pods_per_replica if spare else 0


def _budget(settings: RayServiceSettings, name: str, selector: dict[str, str], max_unavailable: int) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": f"{settings.name}-{name}", "namespace": settings.namespace, "labels": dict(PART_OF_LABEL)},
        "spec": {
            "maxUnavailable": max_unavailable,
            "selector": {"matchLabels": {**PART_OF_LABEL, **selector}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def render_disruption_budgets(settings: RayServiceSettings) -> list[dict]:
    """One PodDisruptionBudget for the head, one per GPU worker group and one for the CPU group (if any)."""
    budgets = [_budget(settings, "head", {RAY_NODE_TYPE_LABEL: "head"}, 0)]
    for group in gpu_worker_groups(settings.models, settings.machine, settings.max_gpu_nodes):
        selector = {RAY_NODE_TYPE_LABEL: "worker", RAY_GROUP_LABEL: group.name}
        budgets.append(_budget(settings, group.name, selector, max_unavailable_pods(group, settings)))
    if settings.cpu_workers:
        selector = {RAY_NODE_TYPE_LABEL: "worker", RAY_GROUP_LABEL: CPU_GROUP}
        budgets.append(_budget(settings, CPU_GROUP, selector, 1 if settings.cpu_workers >= 2 else 0))
    return budgets


def recovery_estimates(settings: RayServiceSettings) -> dict[str, int]:
    """Model id -> seconds until it serves again after its engine died (see the module docstring); a model the
    planner cannot size is left out (the ingress then says 60 s)."""
    estimates = {}
    for _, spec, report, _ in model_reports(settings.models, settings.machine):
        if report is None:
            continue
        source = settings.weights.config.for_model(spec.model_id).source if settings.weights else "huggingface"
        minutes = restart_minutes(report.architecture.stored_bytes())[source]["low"]
        estimates[spec.model_id] = math.ceil(minutes * 60)
    return estimates
