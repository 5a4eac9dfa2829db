"""Render the Ray Serve declarative config (RayService ``spec.serveConfigV2``) from ModelSpecs.

Deploy-time module: standard library + PyYAML only (Pulumi depends on PyYAML), no Ray. The output is
plain data, deterministic (keys sorted on dump, models sorted by id), so golden-file tests are stable::

    from serve_app.builder import serve_config_yaml
    from serve_app.spec import parse_models

    models = parse_models(pulumi.Config().require_object("models"))
    rayservice_spec["serveConfigV2"] = serve_config_yaml(models)   # auth on, keys from the mounted key file

The config holds one Serve application per model (``model-<id>``, Ray Serve LLM's own LLMServer deployment
for its LLMConfig), one OpenAI ingress application (the project's ingress class, `serve_app.ingress`, behind
the API key unless auth is explicitly disabled) and one marker application named after the hash of the rest
(``config-<hash>``); the cluster imports their builders from `serve_app.apps` (the files of
`serve_app.bundle.cluster_sources()`). Why one application per model: Ray Serve gives every deployment of an
application one code version derived from the application's args, so in one shared application a change to
one model restarts them all. The ingress learns the models and the hash from its ``user_config``, which Serve
applies to the running replica without a restart. After editing a rendered config, `stamp_serve_config` it
again.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from serve_app.admission_config import AdmissionSettings, admission_entry, model_capacity
from serve_app.contract import (
    ADMISSION_KEY,
    API_KEY_FILE_KWARG,
    API_KEY_RELOAD_KWARG,
    CONFIG_HASH_KEY,
    CONFIG_MARKER_BUILDER,
    DEFAULT_API_KEY_FILE,
    DEFAULT_API_KEY_RELOAD_S,
    INGRESS_APP_BUILDER,
    INGRESS_CLASS_PATH,
    INGRESS_CLS_ARG,
    INGRESS_DEPLOYMENT,
    INGRESS_KWARGS_ARG,
    MODEL_APP_BUILDER,
    MODELS_KEY,
    PLAIN_INGRESS_CLASS_PATH,
    TENANT_KEY_FILE_KWARG,
    config_marker_name,
    model_app_name,
)
from serve_app.engine_health import RECOVERY_KEY
from serve_app.pipeline_spec import PIPELINES_KEY, Pipeline, parse_pipelines
from serve_app.spec import ModelSpec, llm_server_deployment, validate_models

__all__ = [
    "PREFIX_CACHE_ROUTER",
    "AuthSettings",
    "build_serve_config",
    "llm_config",
    "model_llm_configs",
    "serve_config_hash",
    "serve_config_yaml",
    "stamp_serve_config",
]

PREFIX_CACHE_ROUTER = "ray.serve.llm.request_router:PrefixCacheAffinityRouter"
# PrefixCacheAffinityRouter.initialize_state() in Ray 2.60 (ray/llm/_internal/serve/routing_policies/
# prefix_aware/prefix_aware_router.py, lines 59-66) defaults `imbalanced_threshold` to infinity, which keeps
# sending a hot prefix to one replica however long its queue gets; 10 is the documented behaviour (fall back to
# power-of-two choices when queue lengths differ by 10 or more). It also defaults `do_eviction` to False: the
# prefix tree (a detached actor) then remembers every prompt's text for good and grows without bound. With
# eviction on, every `eviction_interval_secs` the tree cuts each replica's text above `eviction_threshold_chars`
# back to `eviction_target_chars`, least recently used first (prefix_tree.py, _run_eviction_loop and
# evict_tenant_by_lru): at most ~400,000 characters per replica, the limits Ray documents (ray-project/ray
# doc/source/serve/llm/user-guides/prefix-aware-routing.md, "Memory management parameters"), written out so
# that a change of Ray's defaults cannot silently move them.
# Recently used prefixes (a shared system prompt, a running conversation) stay; only cold ones are forgotten.
PREFIX_CACHE_ROUTER_KWARGS: Mapping[str, Any] = {
    "imbalanced_threshold": 10,
    "do_eviction": True,
    "eviction_threshold_chars": 400_000,
    "eviction_target_chars": 360_000,
    "eviction_interval_secs": 10,
}
# The OpenAI ingress wraps each request in RAY_SERVE_LLM_ROUTER_HTTP_TIMEOUT (600 s by default); long
# non-streaming R1 answers then end in HTTP 408. Read from the ingress actor's environment at import.
ROUTER_HTTP_TIMEOUT_ENV = "RAY_SERVE_LLM_ROUTER_HTTP_TIMEOUT"
# Ray 2.60's options for the OpenAI ingress deployment (ray/llm/_internal/serve/core/ingress/ingress.py
# DEFAULT_INGRESS_OPTIONS, with DEFAULT_MAX_ONGOING_REQUESTS and DEFAULT_MAX_TARGET_ONGOING_REQUESTS of
# ray/llm/_internal/serve/constants.py), written out because the config now sets them per deployment.
RAY_INGRESS_MAX_ONGOING_REQUESTS = 1_000_000_000
RAY_INGRESS_TARGET_ONGOING_REQUESTS = 1_000_000_000
# A model replica exits its actor as soon as its engine dies (serve_app/engine_watch.py); Serve notices at the
# replica's next health check (an exited actor is unhealthy at once: ray/serve/_private/deployment_state.py
# ActorReplicaWrapper.check_health, ACTOR_CRASHED), so the period bounds that delay. Ray Serve LLM's default is
# 10 s (ray/llm/_internal/serve/constants.py DEFAULT_HEALTH_CHECK_PERIOD_S); LLMServer.check_health only reads
# vLLM's `errored` flag, so a check every 2 s costs nothing. A model's healthCheckPeriodS still wins.
ENGINE_DEATH_HEALTH_CHECK_PERIOD_S = 2.0
# Seconds a stopping replica (scale-down, a config change, a drained node) waits for its in-flight requests,
# streams included, before Serve kills it: graceful_shutdown_timeout_s, 20 s by default in Ray 2.60
# (ray/serve/_private/constants.py DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S), which cuts any longer stream.
DEFAULT_STREAM_DRAIN_S = 900
# The config's name: this many hex digits of the SHA-256 of its canonical JSON (64 bits).
CONFIG_HASH_HEX_DIGITS = 16


@dataclass(frozen=True)
class AuthSettings:
    """API-key authentication of the OpenAI routes.

    On by default; turning it off takes an explicit ``AuthSettings(enabled=False)``. `api_key_file` is the
    *path* of the file that holds the accepted keys on the Ray pods (a mounted Kubernetes Secret volume, set
    up by the infrastructure); the keys never appear in the Serve config. The ingress re-reads it every
    `reload_interval_s` seconds, which bounds how long a key rotation takes to reach it.
    """

    enabled: bool = True
    api_key_file: str = DEFAULT_API_KEY_FILE
    reload_interval_s: float = DEFAULT_API_KEY_RELOAD_S
    tenant_key_file: str | None = None  # the tenants' keys (serve_app.tenants); None: the stack has no tenants

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"AuthSettings.enabled must be a bool; found {self.enabled!r}")
        if (
            not isinstance(self.api_key_file, str)
            or not self.api_key_file.startswith("/")
            or self.api_key_file.endswith("/")
        ):
            raise ValueError(f"AuthSettings.api_key_file must be an absolute file path; found {self.api_key_file!r}")
        interval = self.reload_interval_s
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 1 <= interval <= 300:
            raise ValueError(
                f"AuthSettings.reload_interval_s must be a number of seconds in 1..300; found {interval!r}"
            )


def _plain(value: Any) -> Any:
    """Read-only mappings/tuples of a ModelSpec back to dicts/lists that yaml.safe_dump accepts."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


_SPEC_ENGINE_FIELDS: tuple[str, ...] = (
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "max_model_len",
    "gpu_memory_utilization",
    "max_num_seqs",
    "max_num_batched_tokens",
    "enable_prefix_caching",
    "enable_chunked_prefill",
    "reasoning_parser",
    "kv_cache_dtype",
    "enable_expert_parallel",
    "decode_context_parallel_size",
)


def llm_config(spec: ModelSpec, stream_drain_s: int = DEFAULT_STREAM_DRAIN_S) -> dict[str, Any]:
    """One model's LLMConfig as a dict (``ray.serve.llm.LLMConfig`` fields). Assumes a validated spec."""
    engine_kwargs: dict[str, Any] = dict(_plain(spec.engine_kwargs))
    for name in _SPEC_ENGINE_FIELDS:
        value = getattr(spec, name)
        if value is not None:
            engine_kwargs[name] = value
    if spec.mtp_speculative_tokens is not None:
        # vLLM 0.29 loads the draft from the target's own checkpoint when `model` is unset and the method is mtp
        # (vllm/config/speculative.py, SpeculativeConfig.__post_init__).
        engine_kwargs["speculative_config"] = {"method": "mtp", "num_speculative_tokens": spec.mtp_speculative_tokens}
    routing = spec.prefix_cache_routing_enabled
    if routing:
        # The router only pays off when replicas keep prefixes cached (validation refuses an explicit false).
        engine_kwargs["enable_prefix_caching"] = True

    autoscaling: dict[str, Any] = {"max_replicas": spec.max_replicas, "min_replicas": spec.min_replicas}
    if spec.initial_replicas is not None:
        autoscaling["initial_replicas"] = spec.initial_replicas
    if spec.target_ongoing_requests is not None:
        autoscaling["target_ongoing_requests"] = spec.target_ongoing_requests
    deployment: dict[str, Any] = {
        "autoscaling_config": autoscaling,
        "graceful_shutdown_timeout_s": stream_drain_s,
        "health_check_period_s": ENGINE_DEATH_HEALTH_CHECK_PERIOD_S,
    }
    if spec.health_check_period_s is not None:
        deployment["health_check_period_s"] = spec.health_check_period_s
    if spec.health_check_timeout_s is not None:
        deployment["health_check_timeout_s"] = spec.health_check_timeout_s
    if routing:
        deployment["request_router_config"] = {
            "request_router_class": PREFIX_CACHE_ROUTER,
            "request_router_kwargs": dict(PREFIX_CACHE_ROUTER_KWARGS),
        }

    config: dict[str, Any] = {
        "accelerator_type": spec.accelerator_type,
        "deployment_config": deployment,
        "engine_kwargs": dict(sorted(engine_kwargs.items())),
        # Engine metrics through Ray's Prometheus endpoint (Ray's default too; explicit so that nobody
        # turns it off by accident with disable_log_stats).
        "log_engine_metrics": True,
        "model_loading_config": {"model_id": spec.model_id, "model_source": spec.model_source},
    }
    if spec.env_vars:
        config["runtime_env"] = {"env_vars": {name: str(value) for name, value in sorted(spec.env_vars.items())}}
    return config


def build_serve_config(
    models: Sequence[ModelSpec],
    *,
    pipelines: Sequence[Pipeline] = (),
    auth: AuthSettings | None = None,
    app_name: str = "llm",
    route_prefix: str = "/",
    http_host: str = "0.0.0.0",
    http_port: int = 8000,
    ingress_request_timeout_s: int = 3600,
    stream_drain_s: int = DEFAULT_STREAM_DRAIN_S,
    recovery_s: Mapping[str, int] | None = None,
    admission: AdmissionSettings | None = None,
) -> dict[str, Any]:
    """The Ray Serve declarative config for `models`, as a dict (``yaml.safe_dump`` it for serveConfigV2).

    Args:
        models: the models to serve (from `parse_models`, or built in code); validated again here.
        pipelines: pipelines over those models (`serve_app.pipeline_spec`), checked again here; they reach the
            ingress in its ``user_config``, so a change to them reconfigures the running ingress and restarts
            nothing.
        auth: API-key settings; None means the default, ``AuthSettings()`` (on, keys in
            the mounted key file). Only ``AuthSettings(enabled=False)`` serves without keys.
        app_name: the ingress application's name (shows in ``serve status`` and metrics).
        route_prefix: where the OpenAI routes live on the Serve HTTP proxy (``/v1/...`` below it).
        http_host, http_port: the Serve HTTP proxy's bind address (the RayService's serve port).
        ingress_request_timeout_s: seconds the OpenAI ingress waits for a non-streaming answer (or for
            the first chunk of a streaming one) before answering 408; Ray's default is 600.
        stream_drain_s: seconds a stopping replica (models and ingress) lets its in-flight streams finish.
        recovery_s: model id -> seconds a replacement replica is expected to take (the ``Retry-After`` of the
            503s while its engine is dead, `serve_app.engine_health`); a model not named gets its default.
        admission: the tenants' limits and the overload bound (`serve_app.admission_config`); None: no
            tenants, the default bound.

    Raises:
        ModelConfigError: listing every problem with `models`.
        ValueError: for a bad argument of this function or a bad pipeline.
    """
    auth = AuthSettings() if auth is None else auth
    if not isinstance(auth, AuthSettings):
        raise ValueError(f"auth must be an AuthSettings or None; found {auth!r}")
    _check_arguments(app_name, route_prefix, http_port, ingress_request_timeout_s)
    _check_drain_and_recovery(stream_drain_s, recovery_s)
    validate_models(models)
    ingress = _ingress_app(auth, app_name, route_prefix, ingress_request_timeout_s)
    (ingress_deployment,) = ingress["deployments"]
    ingress_deployment["graceful_shutdown_timeout_s"] = stream_drain_s
    ingress_deployment["user_config"] = _ingress_user_config(models, pipelines, recovery_s, admission)
    model_apps = [
        {
            "args": llm_config(spec, stream_drain_s),
            "import_path": MODEL_APP_BUILDER,
            "name": model_app_name(spec.model_id),
            "route_prefix": None,
        }
        for spec in sorted(models, key=lambda spec: spec.model_id)
    ]
    return stamp_serve_config(
        {"applications": [ingress, *model_apps], "http_options": {"host": http_host, "port": http_port}}
    )


def _ingress_app(auth: AuthSettings, app_name: str, route_prefix: str, timeout_s: int) -> dict[str, Any]:
    """The OpenAI ingress application, before `stamp_serve_config` adds what it learns of the models."""
    ingress_args: dict[str, Any] = {INGRESS_CLS_ARG: PLAIN_INGRESS_CLASS_PATH}
    if auth.enabled:
        ingress_args = {
            INGRESS_CLS_ARG: INGRESS_CLASS_PATH,
            INGRESS_KWARGS_ARG: {
                API_KEY_FILE_KWARG: auth.api_key_file,
                API_KEY_RELOAD_KWARG: float(auth.reload_interval_s),
            },
        }
        if auth.tenant_key_file is not None:
            ingress_args[INGRESS_KWARGS_ARG][TENANT_KEY_FILE_KWARG] = auth.tenant_key_file
    # Everything about the ingress deployment that may change is set here, per deployment, not in the args:
    # args changes rebuild and restart the application, these are applied to it (the environment variable
    # is read at import, so a new timeout still starts a new replica).
    ingress_deployment = {
        "name": INGRESS_DEPLOYMENT,
        "max_ongoing_requests": RAY_INGRESS_MAX_ONGOING_REQUESTS,
        "ray_actor_options": {"runtime_env": {"env_vars": {ROUTER_HTTP_TIMEOUT_ENV: str(timeout_s)}}},
    }
    return {
        "args": ingress_args,
        "deployments": [ingress_deployment],
        "import_path": INGRESS_APP_BUILDER,
        "name": app_name,
        "route_prefix": route_prefix,
    }


def model_llm_configs(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The LLMConfig of each model application of `config`, in order; edit them in place, then stamp again."""
    return [app["args"] for app in config["applications"] if app["import_path"] == MODEL_APP_BUILDER]


def _ingress_user_config(
    models: Sequence[ModelSpec],
    pipelines: Sequence[Pipeline],
    recovery_s: Mapping[str, int] | None,
    admission: AdmissionSettings | None,
) -> dict[str, Any]:
    """What `build_serve_config` hands the ingress; `stamp_serve_config` adds the models and the hash."""
    user_config: dict[str, Any] = {RECOVERY_KEY: dict(sorted((recovery_s or {}).items()))}
    if pipelines:
        user_config[PIPELINES_KEY] = _checked_pipelines(pipelines, models)
    user_config[ADMISSION_KEY] = admission_entry(admission or AdmissionSettings())
    return user_config


def _checked_pipelines(pipelines: Sequence[Pipeline], models: Sequence[ModelSpec]) -> list[dict[str, Any]]:
    """The pipelines as the ingress's ``user_config`` carries them, checked against the models served."""
    rendered = [pipeline.as_config() for pipeline in pipelines]
    _, problems = parse_pipelines(rendered, [spec.model_id for spec in models])
    if problems:
        raise ValueError("; ".join(problems))
    return rendered


def stamp_serve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` whose ingress knows the current model applications and which is named by its hash.

    Derives the ingress deployment's ``user_config`` (each model's application, deployment and context length)
    and its autoscaling (Ray's rule: it may scale to zero when every model may) from the model applications,
    keeps the pipelines `build_serve_config` put there, hashes the result (`CONFIG_HASH_HEX_DIGITS` of SHA-256
    over canonical JSON, marker and hash left out), and
    adds the marker application ``config-<hash>`` first and the hash to the ingress's ``user_config``.
    Idempotent: call it again after any edit of a rendered config (a CPU rewrite, a weights patch).
    """
    stamped = copy.deepcopy(dict(config))
    applications = [app for app in stamped["applications"] if app["import_path"] != CONFIG_MARKER_BUILDER]
    (ingress,) = [app for app in applications if app["import_path"] == INGRESS_APP_BUILDER]
    (deployment,) = [entry for entry in ingress["deployments"] if entry["name"] == INGRESS_DEPLOYMENT]
    models = [app for app in applications if app["import_path"] == MODEL_APP_BUILDER]
    autoscaling: dict[str, Any] = {"target_ongoing_requests": RAY_INGRESS_TARGET_ONGOING_REQUESTS}
    if models and all(app["args"]["deployment_config"]["autoscaling_config"]["min_replicas"] == 0 for app in models):
        autoscaling["min_replicas"] = 0
    deployment["autoscaling_config"] = autoscaling
    model_ids = {app["args"]["model_loading_config"]["model_id"] for app in models}
    previous = deployment.get("user_config") or {}
    recovery = previous.get(RECOVERY_KEY, {})
    deployment["user_config"] = {
        MODELS_KEY: [_ingress_model_entry(app) for app in models],
        RECOVERY_KEY: {model_id: seconds for model_id, seconds in sorted(recovery.items()) if model_id in model_ids},
    }
    if previous.get(PIPELINES_KEY):  # rendered by build_serve_config; kept through every later stamp
        _, problems = parse_pipelines(previous[PIPELINES_KEY], sorted(model_ids))
        if problems:  # e.g. an edit removed a model a pipeline calls: the ingress would refuse the config
            raise ValueError("; ".join(problems))
        deployment["user_config"][PIPELINES_KEY] = previous[PIPELINES_KEY]
    admission = previous.get(ADMISSION_KEY)
    if admission is not None:  # the tenants as given, each model's capacity from its application
        deployment["user_config"][ADMISSION_KEY] = {**admission, "capacity": model_capacity(admission, models)}
    stamped["applications"] = applications
    digest = hashlib.sha256(
        json.dumps(stamped, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    ).hexdigest()[:CONFIG_HASH_HEX_DIGITS]
    deployment["user_config"][CONFIG_HASH_KEY] = digest
    # The marker's one deployment autoscales from 0 without initial_replicas, so Serve sets its target to the
    # current count, 0 for a new deployment (ray/serve/_private/autoscaling_state.py, `register`, 2.60.0): it
    # starts no replica and holds no resource (serve_app/apps.py build_config_marker).
    marker: dict[str, Any] = {
        "args": {},
        "import_path": CONFIG_MARKER_BUILDER,
        "name": config_marker_name(digest),
        "route_prefix": None,
    }
    stamped["applications"] = [marker, *applications]
    return stamped


def _ingress_model_entry(app: Mapping[str, Any]) -> dict[str, Any]:
    """What the ingress needs of one model: its id, where its deployment lives, and the context length its
    model card reports (Ray's `to_model_metadata` reads `max_model_len`)."""
    model_id = app["args"]["model_loading_config"]["model_id"]
    entry = {"app": app["name"], "deployment": llm_server_deployment(model_id), "id": model_id}
    max_model_len = app["args"].get("engine_kwargs", {}).get("max_model_len")
    return entry if max_model_len is None else {**entry, "max_model_len": max_model_len}


def serve_config_hash(config: Mapping[str, Any]) -> str:
    """The hash a stamped config carries (`stamp_serve_config`)."""
    (deployment,) = [
        entry
        for app in config["applications"]
        if app["import_path"] == INGRESS_APP_BUILDER
        for entry in app["deployments"]
        if entry["name"] == INGRESS_DEPLOYMENT
    ]
    digest: str = deployment["user_config"][CONFIG_HASH_KEY]
    return digest


def _check_arguments(app_name: str, route_prefix: str, http_port: int, timeout_s: int) -> None:
    problems = []
    if not isinstance(app_name, str) or not app_name.strip():
        problems.append(f"app_name must be a non-empty string; found {app_name!r}")
    if (
        not isinstance(route_prefix, str)
        or not route_prefix.startswith("/")
        or (len(route_prefix) > 1 and route_prefix.endswith("/"))
    ):
        problems.append(f"route_prefix must start with '/' and not end with one (except '/'); found {route_prefix!r}")
    if isinstance(http_port, bool) or not isinstance(http_port, int) or not 1 <= http_port <= 65535:
        problems.append(f"http_port must be an integer in 1..65535; found {http_port!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 1:
        problems.append(f"ingress_request_timeout_s must be a positive integer; found {timeout_s!r}")
    if problems:
        raise ValueError("; ".join(problems))


def _check_drain_and_recovery(stream_drain_s: int, recovery_s: Mapping[str, int] | None) -> None:
    if isinstance(stream_drain_s, bool) or not isinstance(stream_drain_s, int) or not 1 <= stream_drain_s <= 3600:
        raise ValueError(f"stream_drain_s must be an integer of seconds in 1..3600; found {stream_drain_s!r}")
    for model_id, seconds in (recovery_s or {}).items():
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
            raise ValueError(f"recovery_s[{model_id!r}] must be a positive integer of seconds; found {seconds!r}")


def serve_config_yaml(models: Sequence[ModelSpec], **kwargs: Any) -> str:
    """`build_serve_config(models, **kwargs)` as YAML text, ready for RayService ``spec.serveConfigV2``."""
    return yaml.safe_dump(build_serve_config(models, **kwargs), sort_keys=True, default_flow_style=False, width=120)
