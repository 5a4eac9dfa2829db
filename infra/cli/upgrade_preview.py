"""What a RayService change does on the cluster, for `plan --against`: KubeRay's rules for the Ray cluster
(infra/cli/kuberay_rules.py), Serve's for the applications (infra/cli/serve_rules.py), and this program's own
(infra/components/serving.py: under `rayClusterUpgrade: Recreate`, any change under `spec.rayClusterConfig`
makes Pulumi delete and recreate the RayService).

The verdicts, most disruptive first: "recreate with downtime" (every model down for one cold start), "second
cluster" (no downtime, the GPUs of a second Ray cluster), "not applied by KubeRay" (a change KubeRay ignores),
"in place, models restart" (Serve restarts some models; one whose every replica restarts at once is down for
one engine start), "in place, no restart", and "create", "delete", "none". Estimates come from
infra/planning/coldstart.py through `ModelTimes`.

Pure: plain dicts in, plain data out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.cli import kuberay_rules, serve_rules
from infra.cli.paths import changed_paths
from infra.planning.coldstart import NODE_PROVISIONING_MINUTES

MAX_PATHS_SHOWN = 8
ROLLING_UPDATE_PERCENTAGE = 0.2  # ray/serve/_private/constants.py:294 (2.60.0)

Minutes = tuple[float, float]


@dataclass(frozen=True)
class ModelTimes:
    """A model's estimated minutes (low, high) to serve again: after a replica start in a new pod (image pull,
    weights, engine; no node), and after a Serve restart of its replica in a running pod. None: not sized."""

    cold_start: Minutes | None = None
    restart: Minutes | None = None


@dataclass(frozen=True)
class PreviewContext:
    """What the preview knows besides the two RayService specs: per model id its times, and the GPU pool's
    largest size in GPUs (None: unknown)."""

    times: Mapping[str, ModelTimes] = field(default_factory=dict)
    pool_gpus: int | None = None


@dataclass(frozen=True)
class UpgradePath:
    kind: str
    reason: str
    details: tuple[str, ...] = ()


def shown(paths: list[str] | tuple[str, ...]) -> str:
    extra = len(paths) - MAX_PATHS_SHOWN
    return ", ".join(paths[:MAX_PATHS_SHOWN]) + (f" and {extra} more" if extra > 0 else "")


def _minutes(span: Minutes) -> str:
    return f"{span[0]:g}-{span[1]:g} min"


def _slowest_cold_start(context: PreviewContext) -> str:
    known = [(times.cold_start, model) for model, times in context.times.items() if times.cold_start is not None]
    if not known:
        return "one cold start (no estimate: no model is sized)"
    span, model = max(known, key=lambda item: item[0][1])
    return (
        f"one cold start: about {_minutes(span)} for {model} (estimated), "
        f"+ {_minutes(NODE_PROVISIONING_MINUTES)} where GPU nodes have to be created"
    )


# --- the Ray cluster ----------------------------------------------------------------------------------------------


def _recreate(context: PreviewContext) -> UpgradePath:
    return UpgradePath(
        "recreate with downtime",
        (
            "spec.rayClusterConfig changed and rayClusterUpgrade is Recreate: Pulumi deletes and recreates the "
            "RayService (replace_on_changes on spec.rayClusterConfig), so every model is down for "
            + _slowest_cold_start(context)
        ),
    )


def _second_cluster(old: dict, new: dict, cluster: kuberay_rules.ClusterChange, context: PreviewContext) -> UpgradePath:
    smallest, largest = kuberay_rules.cluster_gpus(new)
    held, _ = kuberay_rules.cluster_gpus(old)
    needs = f"{smallest} GPUs at its smallest" + (f" (up to {largest} as it scales)" if largest != smallest else "")
    reason = (
        f"spec.rayClusterConfig changed where KubeRay's cluster hash sees it and rayClusterUpgrade is NewCluster: "
        f"KubeRay builds a second Ray cluster beside the running one and moves traffic once its Serve "
        f"applications run (no downtime); it needs {needs} while the old cluster keeps its own ({held} at least)"
    )
    if context.pool_gpus is not None:
        if held + smallest > context.pool_gpus:
            reason += (
                f"; the GPU pool has {context.pool_gpus} GPUs at most, so the second cluster never gets them "
                f"and the upgrade never completes"
            )
        else:
            reason += f"; the GPU pool has {context.pool_gpus} GPUs at most"
    details = []
    unhashed = [path for path in cluster.paths if path not in cluster.hashed_paths]
    if unhashed:
        details.append(f"KubeRay's hash sees {shown(cluster.hashed_paths)}; it leaves out {shown(unhashed)}")
    details += [f"worker group bounds: {change}" for change in kuberay_rules.bound_changes(old, new)]
    details.append(
        "the Serve config goes to the new cluster only; the old one keeps serving the previous config until the switch"
    )
    return UpgradePath("second cluster", reason, tuple(details))


def _not_applied(old: dict, new: dict, cluster: kuberay_rules.ClusterChange) -> str:
    bounds = kuberay_rules.bound_changes(old, new)
    text = (
        f"{shown(cluster.paths)} changed, which KubeRay's cluster hash leaves out: KubeRay neither updates the "
        f"running RayCluster nor builds a new one, so this does not take effect (kuberay #2331, #4568)"
    )
    if bounds:
        text += f"; the groups keep their old bounds ({'; '.join(bounds)}), and replicas that need more never schedule"
    return text


# --- Serve ---------------------------------------------------------------------------------------------------------


def model_restart(model: serve_rules.ModelReplicas, context: PreviewContext) -> tuple[str, bool]:
    """What a restart does to the endpoint for one model, and whether it may go down."""
    restart = context.times.get(model.model_id, ModelTimes()).restart
    engine = f"one engine start, about {_minutes(restart)} (estimated)" if restart else "one engine start (no estimate)"
    low, high = model.min_replicas, model.max_replicas
    if high == 0:
        return f"{model.model_id}: no replica, nothing restarts", False
    if low is None or high is None:
        return f"{model.model_id}: replicas not set; with one replica it is down for {engine}", True
    if low >= 2:
        step = max(int(ROLLING_UPDATE_PERCENTAGE * low), 1)
        return (
            f"{model.model_id}: {low}-{high} replicas restart {step} at a time (Serve's rolling update); "
            f"the others keep serving"
        ), False
    if high == 1:
        when = "" if low == 1 else " while it runs (at zero replicas nothing restarts)"
        return f"{model.model_id}: its only replica restarts{when}: down for {engine}", True
    when = "at zero replicas nothing restarts; " if low == 0 else ""
    return (
        f"{model.model_id}: {when}running one replica it is down for {engine}; with more, a rolling restart "
        f"keeps it serving"
    ), True


def _app_lines(app: serve_rules.AppChange, context: PreviewContext) -> tuple[list[str], list[str], list[str]]:
    """Detail lines for one application (sub-items indented by two spaces), the models that restart, and those
    of them the endpoint may drop while they restart."""
    ids = ", ".join(model.model_id for model in app.models)
    if app.kind == "added":
        return [f"application '{app.name}' is added: Serve builds and starts it" + (f" ({ids})" if ids else "")], [], []
    if app.kind == "removed":
        return [f"application '{app.name}' is deleted" + (f": {ids} leave the endpoint" if ids else "")], [], []
    if app.kind == "in place":
        return [f"application '{app.name}': {shown(app.why)} applied to the running replicas, no restart"], [], []
    if app.new_version:
        head = (
            f"application '{app.name}' restarts: {shown(app.new_version)} changed, which makes its code version "
            f"(import_path, runtime_env, args), so every deployment of it restarts"
        )
    else:
        head = f"application '{app.name}': {shown(app.why)} changed, which restarts those deployments' replicas"
    lines = [head] + [f"  deployment {name} restarts" for name in app.deployments]
    lines += [f"  {model_id}: new, starts with the application" for model_id in app.started]
    lines += [f"  {model_id}: removed, leaves the endpoint" for model_id in app.stopped]
    dropping = []
    for model in app.models:
        text, may_drop = model_restart(model, context)
        lines.append(f"  {text}")
        dropping += [model.model_id] if may_drop else []
    return lines, [model.model_id for model in app.models], dropping


def _serve_lines(change: serve_rules.ServeChange, context: PreviewContext) -> tuple[list[str], list[str], list[str]]:
    """Detail lines for a Serve config change, the models that restart, and those the endpoint may drop."""
    lines: list[str] = []
    restarting: list[str] = []
    dropping: list[str] = []
    for app in change.apps:
        app_lines, models, drops = _app_lines(app, context)
        lines += app_lines
        restarting += models
        dropping += drops
    if change.ignored:
        lines.append(
            f"{shown(change.ignored)}: not applied, a running Serve keeps the HTTP and proxy options it started with"
        )
    if change.applied:
        lines.append(f"{shown(change.applied)}: applied to the running Serve, no restart")
    if change.unknown:
        lines.append(f"{shown(change.unknown)}: not covered by these rules; check with `pulumi preview`")
    return lines, restarting, dropping


def _in_place(
    cluster_line: str | None, serve: serve_rules.ServeChange, other: list[str], context: PreviewContext
) -> UpgradePath:
    lines, restarting, dropping = _serve_lines(serve, context)
    details = ([cluster_line] if cluster_line else []) + lines
    if other and details:
        details.append(f"{shown(other)} changed: no effect on the Ray cluster or Serve")
    if restarting:
        outcome = (
            f"the endpoint drops {', '.join(dropping)} for one engine start where a single replica runs"
            if dropping
            else "each keeps serving during a rolling restart"
        )
        return UpgradePath(
            "in place, models restart",
            f"Serve restarts {', '.join(restarting)} on the running cluster; {outcome}",
            tuple(details),
        )
    if details:
        return UpgradePath("in place, no restart", "applied to the running cluster; no model restarts", tuple(details))
    if other:
        return UpgradePath(
            "in place, no restart", f"only {shown(other)} changed: no effect on the Ray cluster or Serve"
        )
    return UpgradePath("none", "unchanged")


def rayservice_upgrade(old: dict | None, new: dict | None, context: PreviewContext | None = None) -> UpgradePath:
    """Which path a RayService change takes on the cluster, with the reason (see the module docstring)."""
    context = context or PreviewContext()
    if old is None:
        return UpgradePath("create", f"a new RayService: {_slowest_cold_start(context)}")
    if new is None:
        return UpgradePath("delete", "the RayService and its Ray cluster are deleted: the endpoint goes away")
    old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
    old_cluster, new_cluster = old_spec.get("rayClusterConfig") or {}, new_spec.get("rayClusterConfig") or {}
    cluster = kuberay_rules.cluster_change(old_cluster, new_cluster, changed_paths(old_cluster, new_cluster))
    if cluster.kind != "unchanged" and new_spec.get("upgradeStrategy", {}).get("type") == "None":
        return _recreate(context)
    if cluster.kind == "new hash":
        return _second_cluster(old_cluster, new_cluster, cluster, context)
    serve = serve_rules.serve_change(old_spec.get("serveConfigV2"), new_spec.get("serveConfigV2"))
    other = [
        path for path in changed_paths(old, new) if not path.startswith(("spec.rayClusterConfig", "spec.serveConfigV2"))
    ]
    if cluster.kind == "not hashed":
        lines, _, _ = _serve_lines(serve, context)
        return UpgradePath("not applied by KubeRay", _not_applied(old_cluster, new_cluster, cluster), tuple(lines))
    cluster_line = None
    if cluster.kind == "groups appended":
        cluster_line = (
            f"worker group(s) {', '.join(cluster.appended_groups)} appended: KubeRay updates the running RayCluster "
            f"in place (the existing groups take their new bounds with it); no pod restarts"
        )
    return _in_place(cluster_line, serve, other, context)
