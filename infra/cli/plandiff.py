"""What a change will do, before `pulumi up`: compare two offline plans.

`python -m infra plan <stack> --against <previous plan folder>` plans the stack, then compares its
`resources.json` with the previous one and prints, per resource, add / change / replace / delete with the
changed input paths, and for the RayService what the change does on the cluster: recreated with downtime, a
second Ray cluster and the GPUs it needs, not applied by KubeRay at all, or in place, with the models Serve
restarts and whether the endpoint drops for them (infra/cli/upgrade_preview.py, which follows KubeRay's and
Serve's own rules: infra/cli/kuberay_rules.py, infra/cli/serve_rules.py).

Pure: it reads two lists of `{"type", "name", "parent", "inputs"}` and returns data. "replace" is reported
for the replacement triggers this program is known to hit (a Kubernetes object's name or namespace, a Secret's
or ConfigMap's data unless the provider may mutate it, the RayService under Recreate, a Google resource's name
or location); the provider may replace on other fields too, which only `pulumi preview` knows. Secret values
are "[secret]" in both plans, so a changed secret value does not show.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra.cli.paths import changed_paths
from infra.cli.upgrade_preview import ModelTimes, PreviewContext, UpgradePath, rayservice_upgrade, shown

RAYSERVICE_TYPE = "kubernetes:ray.io/v1:RayService"
KUBERNETES_PROVIDER_TYPE = "pulumi:providers:kubernetes"
NODE_POOL_TYPE = "gcp:container/nodePool:NodePool"
# Inputs whose change makes Google's provider replace the resource, for the resources this program creates.
GCP_REPLACE_PATHS = ("name", "project", "location", "region", "zone", "network", "accountId")


class PlanDiffError(Exception):
    """The previous plan folder cannot be read."""


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
    warnings: list[str] = field(default_factory=list)

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


def previous_stack(folder: Path) -> str | None:
    """The stack a plan folder is of, from its capacity.json (written by every plan); None if it cannot tell."""
    try:
        stack = json.loads((Path(folder) / "capacity.json").read_text()).get("stack")
    except (OSError, ValueError, AttributeError):
        return None
    return stack if isinstance(stack, str) else None


def stack_warning(folder: Path, stack: str) -> str | None:
    """A warning when the previous plan in `folder` is not of `stack`, or does not say which stack it is of."""
    previous = previous_stack(folder)
    if previous is None:
        return (
            f"the previous plan does not say which stack it is of (no readable capacity.json): the changes below "
            f"assume it is a plan of '{stack}'"
        )
    if previous != stack:
        return (
            f"the previous plan is of stack '{previous}', not '{stack}': the changes below compare two different "
            f"stacks, not a change to '{stack}'"
        )
    return None


# --- every resource ---------------------------------------------------------------------------------------------


def _provider_flags(resources: list[dict]) -> dict[str, bool]:
    """The Kubernetes provider's mutability switches in a plan (this program creates one provider)."""
    flags = {"enableSecretMutable": False, "enableConfigMapMutable": False}
    for resource in resources:
        if resource["type"] == KUBERNETES_PROVIDER_TYPE:
            for flag in flags:
                flags[flag] = flags[flag] or str(resource["inputs"].get(flag, "")).lower() == "true"
    return flags


def pool_gpus(resources: list[dict]) -> int | None:
    """The most GPUs the plan's GPU node pools can hold (nodes at their largest x GPUs per node)."""
    total = None
    for resource in resources:
        inputs = resource["inputs"]
        if resource["type"] != NODE_POOL_TYPE:
            continue
        per_node = sum(int(a.get("count", 0) or 0) for a in inputs.get("nodeConfig", {}).get("guestAccelerators", []))
        if not per_node:
            continue
        autoscaling = inputs.get("autoscaling") or {}
        nodes = autoscaling.get("totalMaxNodeCount") or autoscaling.get("maxNodeCount") or inputs.get("nodeCount")
        total = (total or 0) + per_node * int(nodes or 0)
    return total


def _replaces(resource_type: str, new: dict, paths: list[str], flags: Mapping[str, bool]) -> bool:
    """Whether the provider replaces a resource (the RayService's own rule is its upgrade path).

    Kubernetes: the identity of the object; a Secret's type, data and stringData unless the provider sets
    enableSecretMutable and the Secret is not immutable, and a ConfigMap's data the same way with
    enableConfigMapMutable (pulumi-kubernetes provider/pkg/provider/diff.go:23-37, `forceNewProperties`)."""
    if resource_type.startswith("kubernetes:"):
        identity = ("metadata.name", "metadata.namespace", "apiVersion", "kind")
        if any(path in identity for path in paths):
            return True
        immutable = bool(new.get("immutable"))
        if new.get("kind") == "Secret":
            mutable = flags["enableSecretMutable"] and not immutable
            fields = ("type",) if mutable else ("type", "data", "stringData")
            return any(path == f or path.startswith(f + ".") for path in paths for f in fields)
        if new.get("kind") == "ConfigMap" and (immutable or not flags["enableConfigMapMutable"]):
            return any(path.startswith(("data", "binaryData")) for path in paths)
        return False
    if resource_type.startswith("gcp:"):
        return any(path.split(".")[0].split("[")[0] in GCP_REPLACE_PATHS for path in paths)
    return False


def diff_plans(old: list[dict], new: list[dict], times: Mapping[str, ModelTimes] | None = None) -> PlanDiff:
    """Per resource (by type and logical name): add, change, replace or delete. `times`: the new plan's model
    estimates, by model id, for the RayService's preview."""
    before = {(r["type"], r["name"]): r for r in old}
    after = {(r["type"], r["name"]): r for r in new}
    context = PreviewContext(times or {}, pool_gpus(new))
    flags = _provider_flags(new)
    result = PlanDiff()
    for key in sorted(set(before) | set(after), key=lambda k: (k[1], k[0])):
        resource_type, name = key
        first, second = before.get(key), after.get(key)
        upgrade = None
        if resource_type == RAYSERVICE_TYPE:
            upgrade = rayservice_upgrade(first and first["inputs"], second and second["inputs"], context)
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
                else _replaces(resource_type, second["inputs"], paths, flags)
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
    lines += [f"  warning: {warning}" for warning in diff.warnings]
    symbols = {"add": "+", "change": "~", "replace": "+-", "delete": "-"}
    for change in diff.changes:
        lines.append(f"  {symbols[change.action]:>2} {change.action:<8} {change.name} ({change.type})")
        if change.paths:
            lines.append(f"       changed: {shown(list(change.paths))}")
        if change.upgrade is not None:
            lines.append(f"       RayService upgrade: {change.upgrade.kind}: {change.upgrade.reason}")
            lines += [
                f"           - {detail[2:]}" if detail.startswith("  ") else f"         - {detail}"
                for detail in change.upgrade.details
            ]
    if not diff.changes:
        lines.append("  no changes")
    return "\n".join(lines)
