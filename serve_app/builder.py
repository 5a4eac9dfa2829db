"""Render the Ray Serve declarative config (RayService ``spec.serveConfigV2``) from ModelSpecs.

Deploy-time module: standard library + PyYAML only (Pulumi depends on PyYAML), no Ray. The output is
plain data, deterministic (keys sorted on dump, models sorted by id), so golden-file tests are stable::

    from serve_app.builder import serve_config_yaml
    from serve_app.spec import parse_models

    models = parse_models(pulumi.Config().require_object("models"))
    rayservice_spec["serveConfigV2"] = serve_config_yaml(models)   # auth on, keys from the mounted key file

The application uses Ray's own builder, ``ray.serve.llm:build_openai_app``, with one LLMConfig per model
and, unless auth is explicitly disabled, the project's ingress class (`serve_app.ingress`), which the
cluster imports from the files of `serve_app.bundle.cluster_sources()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from serve_app.contract import (
    API_KEY_FILE_KWARG,
    API_KEY_RELOAD_KWARG,
    DEFAULT_API_KEY_FILE,
    DEFAULT_API_KEY_RELOAD_S,
    INGRESS_CLASS_PATH,
)
from serve_app.spec import ModelSpec, validate_models

__all__ = [
    "BUILD_OPENAI_APP",
    "PREFIX_CACHE_ROUTER",
    "AuthSettings",
    "build_serve_config",
    "llm_config",
    "serve_config_yaml",
]

BUILD_OPENAI_APP = "ray.serve.llm:build_openai_app"
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
)


def llm_config(spec: ModelSpec) -> dict[str, Any]:
    """One model's LLMConfig as a dict (``ray.serve.llm.LLMConfig`` fields). Assumes a validated spec."""
    engine_kwargs: dict[str, Any] = dict(_plain(spec.engine_kwargs))
    for name in _SPEC_ENGINE_FIELDS:
        value = getattr(spec, name)
        if value is not None:
            engine_kwargs[name] = value
    routing = spec.prefix_cache_routing_enabled
    if routing:
        # The router only pays off when replicas keep prefixes cached (validation refuses an explicit false).
        engine_kwargs["enable_prefix_caching"] = True

    autoscaling: dict[str, Any] = {"max_replicas": spec.max_replicas, "min_replicas": spec.min_replicas}
    if spec.initial_replicas is not None:
        autoscaling["initial_replicas"] = spec.initial_replicas
    if spec.target_ongoing_requests is not None:
        autoscaling["target_ongoing_requests"] = spec.target_ongoing_requests
    deployment: dict[str, Any] = {"autoscaling_config": autoscaling}
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
    auth: AuthSettings | None = None,
    app_name: str = "llm",
    route_prefix: str = "/",
    http_host: str = "0.0.0.0",
    http_port: int = 8000,
    ingress_request_timeout_s: int = 3600,
) -> dict[str, Any]:
    """The Ray Serve declarative config for `models`, as a dict (``yaml.safe_dump`` it for serveConfigV2).

    Args:
        models: the models to serve (from `parse_models`, or built in code); validated again here.
        auth: API-key settings; None means the default, ``AuthSettings()`` (on, keys in
            the mounted key file). Only ``AuthSettings(enabled=False)`` serves without keys.
        app_name: the Serve application name (shows in ``serve status`` and metrics).
        route_prefix: where the OpenAI routes live on the Serve HTTP proxy (``/v1/...`` below it).
        http_host, http_port: the Serve HTTP proxy's bind address (the RayService's serve port).
        ingress_request_timeout_s: seconds the OpenAI ingress waits for a non-streaming answer (or for
            the first chunk of a streaming one) before answering 408; Ray's default is 600.

    Raises:
        ModelConfigError: listing every problem with `models`.
        ValueError: for a bad argument of this function.
    """
    auth = AuthSettings() if auth is None else auth
    if not isinstance(auth, AuthSettings):
        raise ValueError(f"auth must be an AuthSettings or None; found {auth!r}")
    _check_arguments(app_name, route_prefix, http_port, ingress_request_timeout_s)
    validate_models(models)
    args: dict[str, Any] = {
        "ingress_deployment_config": {
            "ray_actor_options": {
                "runtime_env": {"env_vars": {ROUTER_HTTP_TIMEOUT_ENV: str(ingress_request_timeout_s)}}
            }
        },
        "llm_configs": [llm_config(spec) for spec in sorted(models, key=lambda spec: spec.model_id)],
    }
    if auth.enabled:
        args["ingress_cls_config"] = {
            "ingress_cls": INGRESS_CLASS_PATH,
            "ingress_extra_kwargs": {
                API_KEY_FILE_KWARG: auth.api_key_file,
                API_KEY_RELOAD_KWARG: float(auth.reload_interval_s),
            },
        }
    return {
        "applications": [
            {"args": args, "import_path": BUILD_OPENAI_APP, "name": app_name, "route_prefix": route_prefix}
        ],
        "http_options": {"host": http_host, "port": http_port},
    }


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


def serve_config_yaml(models: Sequence[ModelSpec], **kwargs: Any) -> str:
    """`build_serve_config(models, **kwargs)` as YAML text, ready for RayService ``spec.serveConfigV2``."""
    return yaml.safe_dump(build_serve_config(models, **kwargs), sort_keys=True, default_flow_style=False, width=120)
