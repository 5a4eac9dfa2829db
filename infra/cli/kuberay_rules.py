"""What KubeRay v1.7.0 does with a change under a RayService's `spec.rayClusterConfig`, replayed on plan data.

Sources: ray-project/kuberay at tag v1.7.0 (commit 59d663a), under ray-operator/controllers/ray/.

- The cluster hash. `utils/util.go:645-668` (`GenerateHashWithoutReplicasAndWorkersToDelete`) hashes the
  cluster spec without each worker group's `replicas`, `minReplicas`, `maxReplicas` and
  `scaleStrategy.workersToDelete`, without the `tolerations` and `schedulingGates` of every pod template (head
  and workers) and without the spec's own `upgradeStrategy`; `rayservice_controller.go:1498-1502`
  (`rayClusterSpecForHashing`) also leaves out `suspend`. KubeRay keeps that hash on the RayCluster it made.
- Same hash: nothing happens to the Ray cluster. `shouldUpdateCluster` (`rayservice_controller.go:1351-1377`)
  and `shouldPrepareNewCluster` (1409-1437) both return false, so a change to only those fields is neither
  applied to the running RayCluster nor builds a new one; the RayService and its RayCluster silently disagree.
  KubeRay means it that way, so as not to undo the autoscaler's work (kuberay #2331, PR #2333's review), and
  #4568 (open) asks for it to change.
- Worker groups added at the end, the first N groups (N = the running cluster's count) hashing the same:
  `isClusterSpecHashEqual(..., partial=true)` (1379-1407) holds, `shouldPrepareNewCluster` returns false and
  `reconcileRayCluster` updates the running RayCluster in place; `modifyRayCluster` (1442-1469) copies the whole
  new spec into it, the existing groups' new bounds included. No pod restarts; the new groups start.
- Any other change: with upgrade type `NewCluster`, `isZeroDowntimeUpgradeEnabled` (868-897) is true and
  KubeRay builds a second RayCluster, switching the serve Service to it once its Serve applications run. With
  `None` it does nothing (why this program's `Recreate` stacks let Pulumi replace the RayService instead,
  infra/components/serving.py).
- While a second cluster is pending, only it gets the Serve config (`Reconcile`, rayservice_controller.go:
  229-255): the running cluster keeps its applications as they are until the switch.

Pure: plain dicts in, plain data out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from infra.catalog import GPU_RESOURCE
from infra.cli.paths import under as _under

# The fields the hash leaves out, as plan paths under spec.rayClusterConfig (utils/util.go:653-665).
WORKER_GROUP_UNHASHED = ("replicas", "minReplicas", "maxReplicas", "scaleStrategy.workersToDelete")
POD_TEMPLATE_UNHASHED = ("template.spec.tolerations", "template.spec.schedulingGates")
CLUSTER_UNHASHED = ("upgradeStrategy", "suspend")


@dataclass(frozen=True)
class ClusterChange:
    """What KubeRay does with a change of the cluster spec.

    kind: "unchanged" | "not hashed" (nothing happens: the change is not applied) | "groups appended" (the
    running RayCluster is updated in place) | "new hash" (a second cluster under NewCluster, nothing under None).
    """

    kind: str
    paths: tuple[str, ...]  # every changed path, under spec.rayClusterConfig
    hashed_paths: tuple[str, ...] = ()  # the ones KubeRay's hash sees
    appended_groups: tuple[str, ...] = ()


def _drop(mapping: Any, dotted: str) -> None:
    """Remove `dotted` (a.b.c) from nested dicts, and the parents it leaves empty below the first level."""
    keys = dotted.split(".")
    parents = [mapping]
    for key in keys[:-1]:
        child = parents[-1].get(key) if isinstance(parents[-1], dict) else None
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(keys[-1], None)
    for depth in range(len(parents) - 1, 0, -1):  # Go marshals an emptied struct like an absent one
        if not parents[depth]:
            parents[depth - 1].pop(keys[depth - 1], None)


def hashed_view(cluster: dict, groups: int | None = None) -> dict:
    """The part of a cluster spec KubeRay's hash covers (utils/util.go:645-668, rayservice_controller.go:1498),
    over its first `groups` worker groups when given (the partial comparison,
    rayservice_controller.go:1393-1401)."""
    spec = copy.deepcopy(cluster)
    for field in CLUSTER_UNHASHED:
        spec.pop(field, None)
    for field in POD_TEMPLATE_UNHASHED:
        _drop(spec.get("headGroupSpec", {}), field)
    workers = spec.get("workerGroupSpecs", [])
    if groups is not None:
        workers = spec["workerGroupSpecs"] = workers[:groups]
    for group in workers:
        for field in WORKER_GROUP_UNHASHED + POD_TEMPLATE_UNHASHED:
            _drop(group, field)
    return spec


def is_unhashed(path: str) -> bool:
    """Whether a changed path under spec.rayClusterConfig is one the hash leaves out."""
    head, _, rest = path.partition(".")
    if head in CLUSTER_UNHASHED:
        return True
    if head == "headGroupSpec":
        return _under(rest, POD_TEMPLATE_UNHASHED)
    if head.startswith("workerGroupSpecs["):
        return _under(rest, WORKER_GROUP_UNHASHED + POD_TEMPLATE_UNHASHED)
    return False


def cluster_change(old: dict, new: dict, paths: Iterable[str]) -> ClusterChange:
    """KubeRay's verdict on a cluster-spec change; `paths` are the changed paths relative to the cluster spec."""
    paths = tuple(paths)
    if not paths:
        return ClusterChange("unchanged", ())
    hashed = tuple(path for path in paths if not is_unhashed(path))
    if hashed_view(old) == hashed_view(new):
        return ClusterChange("not hashed", paths)
    old_groups = old.get("workerGroupSpecs", [])
    new_groups = new.get("workerGroupSpecs", [])
    if len(new_groups) > len(old_groups) and hashed_view(old) == hashed_view(new, len(old_groups)):
        appended = tuple(str(group.get("groupName")) for group in new_groups[len(old_groups) :])
        return ClusterChange("groups appended", paths, hashed, appended)
    return ClusterChange("new hash", paths, hashed)


def group_bounds(cluster: dict) -> dict[str, tuple[int, int]]:
    """Worker group name -> (minReplicas, maxReplicas), pods."""
    return {
        str(group.get("groupName")): (
            int(group.get("minReplicas", group.get("replicas", 0)) or 0),
            int(group.get("maxReplicas", group.get("replicas", 0)) or 0),
        )
        for group in cluster.get("workerGroupSpecs", [])
    }


def cluster_gpus(cluster: dict) -> tuple[int, int]:
    """GPUs a Ray cluster spec asks for at its smallest and at its largest (num GPU pods x GPUs per pod)."""
    smallest = largest = 0
    for group in cluster.get("workerGroupSpecs", []):
        per_pod = sum(
            int(container.get("resources", {}).get("limits", {}).get(GPU_RESOURCE, 0) or 0)
            for container in group.get("template", {}).get("spec", {}).get("containers", [])
        )
        low, high = group_bounds({"workerGroupSpecs": [group]})[str(group.get("groupName"))]
        smallest += per_pod * low
        largest += per_pod * high
    return smallest, largest


def bound_changes(old: dict, new: dict) -> list[str]:
    """'group min-max -> min-max' for every worker group whose bounds changed (kept groups only)."""
    before, after = group_bounds(old), group_bounds(new)
    return [
        f"{name} {before[name][0]}-{before[name][1]} -> {after[name][0]}-{after[name][1]} pods"
        for name in after
        if name in before and before[name] != after[name]
    ]
