"""How many Ray GPU worker pods (one per node) the stack's models occupy, how many GPU nodes stay up idle, and how
many GPUs of those nodes no replica uses.

Pure: shared by the RayService renderer (its worker groups), the cost model and the monitoring floor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from infra.catalog import MachineProfile
from serve_app.spec import ModelSpec


@dataclass(frozen=True)
class WorkerGroupSize:
    """One GPU worker group: every model whose replicas need `gpus_per_replica` GPUs."""

    name: str
    gpus_per_replica: int
    model_ids: tuple[str, ...]
    min_pods: int
    max_pods: int


def pods_for(replicas: int, gpus_per_replica: int, gpus_per_node: int) -> int:
    """Worker pods (= nodes) that `replicas` replicas occupy: a replica spans whole nodes, or several replicas
    share one node evenly."""
    if gpus_per_replica >= gpus_per_node:
        return replicas * (gpus_per_replica // gpus_per_node)
    return math.ceil(replicas / (gpus_per_node // gpus_per_replica))


def gpu_worker_groups(
    models: Sequence[ModelSpec], machine: MachineProfile, max_gpu_nodes: int
) -> list[WorkerGroupSize]:
    """One group per model shape, sized from the models' min/max replicas and capped at the pool's size."""
    shapes: dict[int, list[ModelSpec]] = {}
    for model in models:
        shapes.setdefault(model.gpus_per_replica, []).append(model)
    groups = []
    for gpus, members in sorted(shapes.items()):
        min_pods = sum(pods_for(m.min_replicas, gpus, machine.gpu_count) for m in members)
        max_pods = sum(pods_for(m.max_replicas, gpus, machine.gpu_count) for m in members)
        groups.append(
            WorkerGroupSize(
                name=f"{machine.ray_accelerator.lower()}-x{gpus}",
                gpus_per_replica=gpus,
                model_ids=tuple(sorted(m.model_id for m in members)),
                min_pods=min(min_pods, max_gpu_nodes),
                max_pods=min(max_pods, max_gpu_nodes),
            )
        )
    return groups


def idle_gpu_nodes(models: Sequence[ModelSpec], machine: MachineProfile, pool_floor: int, max_gpu_nodes: int) -> int:
    """GPU nodes a stack keeps when idle: the pool's floor (`pool_floor`), or more when the models' minReplicas
    hold Ray GPU workers (and so nodes) that the autoscaler never gives back; never more than the pool's size."""
    ray_floor = sum(group.min_pods for group in gpu_worker_groups(models, machine, max_gpu_nodes))
    return min(max(pool_floor, ray_floor), max_gpu_nodes)


@dataclass(frozen=True)
class GroupUse:
    """How much of its nodes a worker group uses when each of its models runs `maxReplicas`: a replica of fewer
    GPUs than a node still takes the node (one Ray worker pod per node), so the rest of its GPUs stay idle."""

    group: WorkerGroupSize
    max_replicas: int  # of all the group's models together
    used_gpus: int  # by those replicas, within the group's pods
    node_gpus: int  # of the nodes the group's pods take

    @property
    def idle_gpus(self) -> int:
        return self.node_gpus - self.used_gpus

    def replicas_to_fill(self, gpus_per_node: int) -> int:
        """Replicas that would use every GPU of the group's nodes."""
        return self.group.max_pods * (gpus_per_node // self.group.gpus_per_replica)


def group_use(models: Sequence[ModelSpec], machine: MachineProfile, max_gpu_nodes: int) -> list[GroupUse]:
    """Each GPU worker group's use of its nodes at the models' maxReplicas (see `GroupUse`)."""
    uses = []
    for group in gpu_worker_groups(models, machine, max_gpu_nodes):
        replicas = sum(model.max_replicas for model in models if model.model_id in group.model_ids)
        node_gpus = group.max_pods * machine.gpu_count
        uses.append(GroupUse(group, replicas, min(replicas * group.gpus_per_replica, node_gpus), node_gpus))
    return uses
