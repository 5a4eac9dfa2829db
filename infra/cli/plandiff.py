"""What a change will do, before `pulumi up`: compare two offline plans.

`python -m infra plan <stack> --against <previous plan folder>` plans the stack, then compares its
`resources.json` with the previous one and prints, per resource, add / change / replace / delete with the
changed input paths, and for the RayService which upgrade path the change takes and why:

- only `spec.serveConfigV2` (models, engine options, autoscaling) changed: **in place**; KubeRay hands the
  new Serve config to the running Ray cluster, no pod restarts (Serve replaces the affected replicas);
- `spec.rayClusterConfig` (image, resources, worker groups, the ingress code's ConfigMap) changed, with
  `rayClusterUpgrade: Recreate` (KubeRay upgrade type `None`): **recreate with downtime**; infra/components/serving.py
  sets `replace_on_changes=["spec.rayClusterConfig"]` and `delete_before_replace`, so Pulumi deletes the
  RayService and creates it again: one cold start of downtime (an estimated 7.5-20 minutes for DeepSeek-R1
  from the model store);
- the same with `rayClusterUpgrade: NewCluster`: **a second cluster with twice the GPUs**; KubeRay builds a new
  Ray cluster beside the old one and switches traffic once it serves, so the new cluster's GPUs must be free
  while the old one still holds its own.

Pure: it reads two lists of `{"type", "name", "parent", "inputs"}` and returns data. "replace" is reported
for the replacement triggers this program is known to hit (a Kubernetes object's name or namespace, the
immutable serve_app ConfigMap, the RayService under Recreate, a Google resource's name or location); the
provider may replace on other fields too, which only `pulumi preview` knows. Secret values are "[secret]" in
both plans, so a changed secret does not show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.catalog import GPU_RESOURCE

RAYSERVICE_TYPE = "kubernetes:ray.io/v1:RayService"
# Inputs whose change makes Google's provider replace the resource, for the resources this program creates.
GCP_REPLACE_PATHS = ("name", "project", "location", "region", "zone", "network", "accountId")
MAX_PATHS_SHOWN = 8


class PlanDiffError(Exception):
    """The previous plan folder cannot be read."""


@dataclass(frozen=True)
class UpgradePath:
    kind: str  # "in place" | "recreate with downtime" | "second cluster" | "create" | "delete" | "none"
    reason: str


@dataclass(frozen=True)
class ResourceChange:
    action: str  # "add" | "change" | "replace" | "delete"
    type: str
    name: str
    paths: tuple[str, ...] = ()
    upgrade: UpgradePath | None = None


@dataclass
class PlanDiff:
    changes: list[ResourceChange] = field(default_factory=list)
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("add", "change", "replace", "delete"), 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts


def load_previous(folder: Path) -> list[dict]:
    path = Path(folder) / "resources.json"
    try:
        resources = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise PlanDiffError(
            f"--against {folder}: no resources.json there; pass the folder of a previous "
            f"`python -m infra plan <stack> --out <folder>`"
        ) from error
    except (OSError, json.JSONDecodeError) as error:
        raise PlanDiffError(f"--against {folder}: resources.json cannot be read ({error})") from error
    if not isinstance(resources, list) or not all(
        isinstance(r, dict) and {"type", "name", "inputs"} <= set(r) for r in resources
    ):
        raise PlanDiffError(
            f"--against {folder}: resources.json is not a plan (a list of {{type, name, inputs}} objects)"
        )
    return resources


# --- comparing values ---------------------------------------------------------------------------------------------


def changed_paths(old: Any, new: Any, path: str = "") -> Iterator[str]:
    """Leaf paths where `old` and `new` differ; a YAML string that holds a mapping is compared inside."""
    old, new = _structured(old), _structured(new)
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            child = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                yield child
            else:
                yield from changed_paths(old[key], new[key], child)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (first, second) in enumerate(zip(old, new, strict=True)):  # lengths compared just above
            yield from changed_paths(first, second, f"{path}[{index}]")
    elif old != new:
        yield path or "(value)"


def _structured(value: Any) -> Any:
    if isinstance(value, str) and "\n" in value and ":" in value:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, dict):
            return parsed
    return value


# --- the RayService ---------------------------------------------------------------------------------------------


def _gpus(spec: dict) -> tuple[int, int]:
    """GPUs the Ray cluster of a RayService spec asks for at its smallest and at its largest."""
    smallest = largest = 0
    for group in spec.get("rayClusterConfig", {}).get("workerGroupSpecs", []):
        per_pod = sum(
            int(container.get("resources", {}).get("limits", {}).get(GPU_RESOURCE, 0) or 0)
            for container in group.get("template", {}).get("spec", {}).get("containers", [])
        )
        smallest += per_pod * int(group.get("minReplicas", group.get("replicas", 0)) or 0)
        largest += per_pod * int(group.get("maxReplicas", group.get("replicas", 0)) or 0)
    return smallest, largest


def rayservice_upgrade(old: dict | None, new: dict | None) -> UpgradePath:
    """Which path a RayService change takes on the cluster, with the reason (see the module docstring)."""
    if old is None:
        return UpgradePath("create", "a new RayService: a cold start (image pull, weights download, engine start)")
    if new is None:
        return UpgradePath("delete", "the RayService and its Ray cluster are deleted: the endpoint goes away")
    old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
    cluster_paths = list(
        changed_paths(old_spec.get("rayClusterConfig"), new_spec.get("rayClusterConfig"), "spec.rayClusterConfig")
    )
    serve_paths = list(
        changed_paths(old_spec.get("serveConfigV2"), new_spec.get("serveConfigV2"), "spec.serveConfigV2")
    )
    if cluster_paths:
        strategy = new_spec.get("upgradeStrategy", {}).get("type")
        if strategy == "None":
            return UpgradePath(
                "recreate with downtime",
                (
                    "spec.rayClusterConfig changed and rayClusterUpgrade is Recreate: Pulumi deletes and "
                    "recreates the RayService (replace_on_changes on spec.rayClusterConfig), so the endpoint is down "
                    "for one cold start (7.5-20 minutes for DeepSeek-R1 from the model store, estimated)"
                ),
            )
        smallest, largest = _gpus(new_spec)
        needs = f"{smallest} more GPUs" + (f" (up to {largest} as it scales)" if largest != smallest else "")
        return UpgradePath(
            "second cluster",
            (
                f"spec.rayClusterConfig changed and rayClusterUpgrade is NewCluster: KubeRay builds a second "
                f"Ray cluster beside the running one and switches traffic once it serves; it needs {needs} free "
                f"while the old cluster keeps its own (twice the GPUs), or the upgrade never completes"
            ),
        )
    if serve_paths:
        return UpgradePath(
            "in place",
            (
                "only spec.serveConfigV2 changed: KubeRay applies it to the running Ray "
                "cluster; no new pods, and Serve replaces only the affected replicas"
            ),
        )
    other = list(changed_paths(old, new))
    if other:
        return UpgradePath("in place", f"only {_shown(other)} changed: no effect on the Ray cluster or Serve")
    return UpgradePath("none", "unchanged")


def _shown(paths: list[str]) -> str:
    extra = len(paths) - MAX_PATHS_SHOWN
    return ", ".join(paths[:MAX_PATHS_SHOWN]) + (f" and {extra} more" if extra > 0 else "")


# --- every resource ---------------------------------------------------------------------------------------------


def _replaces(resource_type: str, new: dict, paths: list[str]) -> bool:
    """Whether the provider replaces a resource (the RayService's own rule is its upgrade path)."""
    if resource_type.startswith("kubernetes:"):
        identity = ("metadata.name", "metadata.namespace", "apiVersion", "kind")
        if any(path in identity for path in paths):
            return True
        return bool(new.get("immutable")) and any(path.startswith(("data", "binaryData")) for path in paths)
    if resource_type.startswith("gcp:"):
        return any(path.split(".")[0].split("[")[0] in GCP_REPLACE_PATHS for path in paths)
    return False


def diff_plans(old: list[dict], new: list[dict]) -> PlanDiff:
    """Per resource (by type and logical name): add, change, replace or delete."""
    before = {(r["type"], r["name"]): r for r in old}
    after = {(r["type"], r["name"]): r for r in new}
    result = PlanDiff()
    for key in sorted(set(before) | set(after), key=lambda k: (k[1], k[0])):
        resource_type, name = key
        first, second = before.get(key), after.get(key)
        upgrade = None
        if resource_type == RAYSERVICE_TYPE:
            upgrade = rayservice_upgrade(first and first["inputs"], second and second["inputs"])
        if first is None:
            result.changes.append(ResourceChange("add", resource_type, name, upgrade=upgrade))
        elif second is None:
            result.changes.append(ResourceChange("delete", resource_type, name, upgrade=upgrade))
        else:
            paths = list(changed_paths(first["inputs"], second["inputs"]))
            if (first.get("parent") != second.get("parent")) and not paths:
                paths = ["(parent)"]
            if not paths:
                result.unchanged += 1
                continue
            replaces = (
                upgrade.kind == "recreate with downtime"
                if upgrade is not None
                else _replaces(resource_type, second["inputs"], paths)
            )
            action = "replace" if replaces else "change"
            result.changes.append(ResourceChange(action, resource_type, name, tuple(paths), upgrade))
    return result


def format_diff(diff: PlanDiff, against: str) -> str:
    counts = diff.counts()
    lines = [
        f"Changes against {against}: "
        + ", ".join(f"{count} {action}" for action, count in counts.items())
        + f", {diff.unchanged} unchanged"
    ]
    symbols = {"add": "+", "change": "~", "replace": "+-", "delete": "-"}
    for change in diff.changes:
        lines.append(f"  {symbols[change.action]:>2} {change.action:<8} {change.name} ({change.type})")
        if change.paths:
            lines.append(f"       changed: {_shown(list(change.paths))}")
        if change.upgrade is not None:
            lines.append(f"       RayService upgrade: {change.upgrade.kind}: {change.upgrade.reason}")
    if not diff.changes:
        lines.append("  no changes")
    return "\n".join(lines)
