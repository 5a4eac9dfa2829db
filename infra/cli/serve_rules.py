"""What Ray Serve 2.60 does with a new `serveConfigV2`, application by application, replayed on plan data.

Sources: ray 2.60.0 (commit b7f4259), python/ray/serve/ unless named otherwise.

- An application's code version: `_private/deploy_utils.py:158-198` (`get_app_code_version`) hashes its
  `import_path`, `runtime_env`, `args` and `autoscaling_policy`, and of its `deployments:` overrides the
  `request_router_config` dicts, `autoscaling_config.policy` and `deployment_actors`. When that version
  changes, `apply_app_config` (`_private/application_state.py:673-820`) builds the application again, and the
  build gives every deployment of it that version (`build_serve_application`, 1686-1820, `version=code_version`);
  a new code version means new replicas (`_private/version.py:69-81`, `requires_actor_restart`). So one model's
  option in an application's args restarts every deployment of that application.
- The same code version: the overrides are applied to the running deployments (`override_deployment_info`,
  application_state.py:695-723). A deployment's replicas restart only when `ray_actor_options`, its placement
  group options, `max_replicas_per_node` or `gang_scheduling_config` change (version.py:69-81); every other
  option is LightWeight or reconfigures the running replica (`_private/config.py:177-270`, the update types in
  `_private/utils.py:173-183`), and so is a new `route_prefix` (version.py:126-137).
- A restart is a rolling update: Serve stops at most max(1, 20 % of the target replicas) old replicas at a time
  and, with `max_surge_percent` 0 (the default), stops them before it starts their replacements
  (`_private/deployment_state.py:4185-4195` `_rollout_size`, 4339-4397; `_private/constants.py:294`,
  config.py:165-174). A model running one replica is down until its new replica has started.
- An application only in the new config is built and started; one only in the old config is deleted.
- A running Serve keeps its HTTP options: the dashboard's deploy handler starts Serve only when it is not
  running and warns that new HTTP options are ignored (`ray/dashboard/modules/serve/serve_head.py:171-186`,
  286-299).

The models of an application are found in its args, wherever a dict holds `model_loading_config.model_id`
(Serve LLM's `LLMConfig`), with their replica bounds beside it in `deployment_config`. A `deployments:` override
belongs to a model through Serve LLM's deployment name, `LLMServer:` + the model id with "/" -> "--" and
"." -> "_" (`ray/llm/_internal/serve/core/server/builder.py:37-38`, 64-73).

Pure: plain dicts in, plain data out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from infra.cli.paths import changed_paths, structured
from infra.cli.paths import under as _matches
from serve_app.contract import CONFIG_MARKER_BUILDER
from serve_app.spec import llm_server_deployment as deployment_name

# deploy_utils.py:168-196: what an application's code version is made of.
CODE_VERSION_APP_FIELDS = ("import_path", "runtime_env", "args", "autoscaling_policy")
CODE_VERSION_DEPLOYMENT_FIELDS = ("request_router_config", "autoscaling_config.policy", "deployment_actors")
# version.py:69-81 and the placement group hash (version.py:100-120): these restart a deployment's replicas.
RESTART_DEPLOYMENT_FIELDS = (
    "ray_actor_options",
    "placement_group_bundles",
    "placement_group_strategy",
    "placement_group_bundle_label_selector",
    "placement_group_fallback_strategy",
    "max_replicas_per_node",
    "gang_scheduling_config",
)
# config.py:177-270: LightWeight, NeedsReconfigure or NeedsActorReconfigure; no restart.
RUNNING_DEPLOYMENT_FIELDS = (
    "name",
    "num_replicas",
    "max_ongoing_requests",
    "max_queued_requests",
    "backpressure_config",
    "user_config",
    "autoscaling_config",
    "graceful_shutdown_wait_loop_s",
    "graceful_shutdown_timeout_s",
    "health_check_period_s",
    "health_check_timeout_s",
    "logging_config",
    "rolling_update_percentage",
    "max_surge_percent",
)
# Application fields applied to the running replicas: the route (version.py:126-137), the logging config (an
# override like a deployment's), the external scaler switch (target state only).
RUNNING_APP_FIELDS = ("name", "route_prefix", "logging_config", "external_scaler_enabled")
# Top-level fields a running Serve does not change (serve_head.py:171-186) and those it applies.
IGNORED_TOP_FIELDS = ("http_options", "grpc_options", "proxy_location", "controller_options")
APPLIED_TOP_FIELDS = ("applications", "target_capacity", "logging_config")


@dataclass(frozen=True)
class ModelReplicas:
    """A model of an application and its replica bounds (None: not set in the config)."""

    model_id: str
    min_replicas: int | None
    max_replicas: int | None


@dataclass(frozen=True)
class AppChange:
    """What Serve does with one application.

    kind: "added" (built and started) | "removed" (deleted) | "restarts" (replicas replaced, `models` are the
    ones that restart) | "in place" (applied to the running replicas).
    """

    name: str
    kind: str
    why: tuple[str, ...]  # the changed paths, relative to the application
    models: tuple[ModelReplicas, ...] = ()
    deployments: tuple[str, ...] = ()  # deployments that restart and hold none of the models found
    new_version: tuple[str, ...] = ()  # the paths that give the application a new code version
    started: tuple[str, ...] = ()  # models only in the new application: they start with it
    stopped: tuple[str, ...] = ()  # models only in the old one: they leave the endpoint


@dataclass(frozen=True)
class ServeChange:
    apps: tuple[AppChange, ...]
    ignored: tuple[str, ...] = ()  # top-level paths a running Serve ignores
    applied: tuple[str, ...] = ()  # top-level paths applied without a restart
    unknown: tuple[str, ...] = ()  # top-level paths these rules do not know


def models_in(value: Any) -> Iterator[ModelReplicas]:
    """Every LLMConfig-shaped dict (one holding `model_loading_config.model_id`) inside `value`."""
    if isinstance(value, dict):
        loading = value.get("model_loading_config")
        if isinstance(loading, dict) and isinstance(loading.get("model_id"), str):
            deployment = value.get("deployment_config") or {}
            yield ModelReplicas(loading["model_id"], *_bounds(deployment))
            return
        for item in value.values():
            yield from models_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from models_in(item)


def _bounds(deployment: dict) -> tuple[int | None, int | None]:
    autoscaling = deployment.get("autoscaling_config")
    if isinstance(autoscaling, dict):
        return autoscaling.get("min_replicas"), autoscaling.get("max_replicas")
    replicas = deployment.get("num_replicas")
    return (replicas, replicas) if isinstance(replicas, int) else (None, None)


def _overrides(app: dict) -> dict[str, dict]:
    return {str(item.get("name")): item for item in app.get("deployments") or [] if isinstance(item, dict)}


def _models_with_overrides(app: dict) -> dict[str, ModelReplicas]:
    """The application's models by deployment name; bounds from a `deployments:` override win."""
    overrides = _overrides(app)
    models = {}
    for model in models_in(app.get("args")):
        name = deployment_name(model.model_id)
        low, high = _bounds(overrides.get(name, {}))
        if low is not None or high is not None:
            model = ModelReplicas(model.model_id, low, high)
        models[name] = model
    return models


def _changes_code_version(path: str) -> bool:
    """Whether a changed option of a `deployments:` override changes the application's code version. Ray lists
    the autoscaling policy of every override that has an `autoscaling_config` (deploy_utils.py:173-177), so an
    `autoscaling_config` added or removed changes the list even when no policy is set."""
    return path == "autoscaling_config" or _matches(path, CODE_VERSION_DEPLOYMENT_FIELDS)


def _deployment_paths(old: dict, new: dict) -> Iterator[tuple[str, str]]:
    """(deployment name, path relative to that deployment) for every changed option of an override."""
    before, after = _overrides(old), _overrides(new)
    for name in sorted(set(before) | set(after)):
        first, second = before.get(name, {}), after.get(name, {})
        for path in changed_paths(first, second):
            yield name, path


def app_change(name: str, old: dict, new: dict) -> AppChange | None:
    """Serve's verdict on one application present in both configs (None when unchanged)."""
    own = [path for path in changed_paths(old, new) if not _matches(path, ("deployments",))]
    overrides = [(deployment, path) for deployment, path in _deployment_paths(old, new)]
    why = tuple(own + [f"deployments[{deployment}].{path}" for deployment, path in overrides])
    if not why:
        return None
    models = _models_with_overrides(old)
    # A field these rules do not know is taken to restart: the safe side of a preview.
    new_version = [p for p in own if _matches(p, CODE_VERSION_APP_FIELDS) or not _matches(p, RUNNING_APP_FIELDS)]
    new_version += [f"deployments[{d}].{p}" for d, p in overrides if _changes_code_version(p)]
    if new_version:
        ids = {model.model_id for model in models_in(new.get("args"))}
        kept = tuple(model for model in models.values() if model.model_id in ids)
        return AppChange(
            name,
            "restarts",
            why,
            kept,
            new_version=tuple(new_version),
            started=tuple(sorted(ids - {model.model_id for model in models.values()})),
            stopped=tuple(sorted(model.model_id for model in models.values() if model.model_id not in ids)),
        )
    restarting = sorted(
        {
            deployment
            for deployment, path in overrides
            if _matches(path, RESTART_DEPLOYMENT_FIELDS) or not _matches(path, RUNNING_DEPLOYMENT_FIELDS)
        }
    )
    if restarting:
        held = tuple(models[d] for d in restarting if d in models)
        return AppChange(name, "restarts", why, held, tuple(d for d in restarting if d not in models))
    return AppChange(name, "in place", why)


def _applications(config: dict) -> dict[Any, dict]:
    """The applications by name, the config marker left out: it is renamed with every change by design (what
    `pulumi up` waits for, serve_app/builder.py) and never starts a replica, so its swap restarts nothing."""
    return {
        app.get("name"): app
        for app in config.get("applications") or []
        if isinstance(app, dict) and app.get("import_path") != CONFIG_MARKER_BUILDER
    }


def serve_change(old_config: Any, new_config: Any) -> ServeChange:
    """Serve's verdict on a new serveConfigV2 (a YAML string or a dict), application by application."""
    old, new = structured(old_config) or {}, structured(new_config) or {}
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ServeChange((), unknown=("serveConfigV2 (not a mapping)",))
    before, after = _applications(old), _applications(new)
    apps: list[AppChange] = []
    for name in sorted(set(before) | set(after), key=str):
        if name not in before:
            apps.append(AppChange(str(name), "added", (), tuple(models_in(after[name].get("args")))))
        elif name not in after:
            apps.append(AppChange(str(name), "removed", (), tuple(models_in(before[name].get("args")))))
        elif (change := app_change(str(name), before[name], after[name])) is not None:
            apps.append(change)
    top = [path for path in changed_paths(old, new) if not path.startswith("applications")]
    return ServeChange(
        tuple(apps),
        ignored=tuple(p for p in top if _matches(p, IGNORED_TOP_FIELDS)),
        applied=tuple(p for p in top if _matches(p, APPLIED_TOP_FIELDS)),
        unknown=tuple(p for p in top if not _matches(p, IGNORED_TOP_FIELDS + APPLIED_TOP_FIELDS)),
    )
