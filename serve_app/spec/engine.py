"""The engine-argument checks: a model's `engineKwargs` against the pinned vLLM's options and the options the spec
or Ray Serve LLM own, and its `envVars` against the variables that must not be set per model."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from configkit import closest, did_you_mean, shown
from serve_app.spec.keys import KEYS, problem
from serve_app.versions_data import VLLM_ENGINE_ARG_NAMES, VLLM_FRONTEND_ARG_NAMES, VLLM_VERSION

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# engine_kwargs keys that a ModelSpec field sets; the value is the stack config key to use instead.
OWNED_ENGINE_ARGS: Mapping[str, str] = MappingProxyType(
    {key.field: key.name for key in KEYS if key.field in VLLM_ENGINE_ARG_NAMES}
)
# engine_kwargs keys that Ray Serve LLM 2.60 sets itself (vllm_models.py get_initialization_kwargs).
RAY_OWNED_ENGINE_ARGS: Mapping[str, str] = MappingProxyType(
    {
        "model": "Ray Serve LLM sets it from `source` and rejects it in engine_kwargs",
        "served_model_name": "Ray Serve LLM sets it from `id` and rejects it in engine_kwargs",
        "distributed_executor_backend": 'Ray Serve LLM sets it to "ray" on GPUs and rejects other values',
    }
)
# Names that older vLLM versions (or old examples) use and vLLM 0.29 no longer has.
REMOVED_ENGINE_ARGS: Mapping[str, str] = MappingProxyType(
    {
        "enable_reasoning": "removed from vLLM; reasoning output is on whenever `reasoningParser` is set",
        "device": "removed from vLLM; the platform is detected (still used by old KubeRay samples)",
        "disable_log_requests": "removed from vLLM; request logging is off unless "
        "engineKwargs.enable_log_requests is true",
        "guided_decoding_backend": "removed from vLLM; use engineKwargs.structured_outputs_config",
        "swap_space": "removed from vLLM (the V1 engine does not swap to CPU)",
        "use_v2_block_manager": "removed from vLLM",
        "num_scheduler_steps": "removed from vLLM",
        "worker_use_ray": "removed from vLLM; Ray Serve LLM always uses the Ray executor on GPUs",
        "engine_use_ray": "removed from vLLM",
    }
)
# Options vLLM accepts but this project refuses, with the reason.
REFUSED_ENGINE_ARGS: Mapping[str, str] = MappingProxyType(
    {
        "api_key": "a secret would sit in plain text in the RayService, and Ray Serve LLM's ingress does not "
        "check it; the project's ingress checks API keys (auth settings of the builder)"
    }
)
# Environment variables that must not be set per model, with the reason.
REFUSED_ENV_VARS: Mapping[str, str] = MappingProxyType(
    {
        "VLLM_USE_V1": f"removed: vLLM {VLLM_VERSION} no longer reads it (V1 is its only engine); delete it",
        "HF_TOKEN": "a secret: the Serve config is stored in plain text; set it on the Ray containers from a "
        "Kubernetes Secret (Ray Serve LLM passes it on to the engine)",
        "HUGGING_FACE_HUB_TOKEN": "a secret: set HF_TOKEN on the Ray containers from a Kubernetes Secret",
    }
)
_SECRET_LOOKING_ENV = re.compile(r"(_TOKEN|_SECRET|_PASSWORD|_API_KEYS?)$")
_KNOWN_ENGINE_ARGS = VLLM_ENGINE_ARG_NAMES | VLLM_FRONTEND_ARG_NAMES


def engine_kwargs_problems(path: str, engine_kwargs: Mapping[Any, Any]) -> list[str]:
    """Problems with the keys (and JSON-ness of the values) of one model's `engineKwargs`: at most one per
    option, the first of: set elsewhere or refused, unknown to vLLM, a value the project cannot deploy, a value
    that is not plain data."""
    problems: list[str] = []
    for name in sorted(engine_kwargs, key=str):
        value = engine_kwargs[name]
        if not isinstance(name, str):
            problems.append(problem(path, "option names must be strings", shown(name), "snake_case vLLM option names"))
            continue
        at = f"{path}.{name}"
        found = (
            _set_elsewhere_problem(at, name, value)
            or _unknown_option_problem(at, name, value)
            or _undeployable_value_problem(at, name, value)
            or _non_json_problem(at, value)
        )
        if found is not None:
            problems.append(found)
    return problems


def _set_elsewhere_problem(at: str, name: str, value: Any) -> str | None:
    """An option that the spec or Ray Serve LLM sets, that this project refuses, or that vLLM removed."""
    if name in OWNED_ENGINE_ARGS:
        return problem(
            at,
            f"is set by the model spec, not engineKwargs (use the key {OWNED_ENGINE_ARGS[name]})",
            f"{name}={shown(value)}",
            f"{OWNED_ENGINE_ARGS[name]}: {shown(value)} next to engineKwargs",
        )
    if name in RAY_OWNED_ENGINE_ARGS:
        return problem(at, RAY_OWNED_ENGINE_ARGS[name], f"{name}={shown(value)}", "remove it from engineKwargs")
    if name in REFUSED_ENGINE_ARGS:
        return problem(at, REFUSED_ENGINE_ARGS[name], f"{name}=<redacted>", "remove it from engineKwargs")
    if name in REMOVED_ENGINE_ARGS:
        return problem(
            at,
            f"unknown engine option for vLLM {VLLM_VERSION}: {REMOVED_ENGINE_ARGS[name]}",
            f"{name}={shown(value)}",
            "remove it from engineKwargs",
        )
    return None


def _unknown_option_problem(at: str, name: str, value: Any) -> str | None:
    """A name that the pinned vLLM does not have, with the closest one it does (a camelCase name too)."""
    if name in _KNOWN_ENGINE_ARGS:
        return None
    hint = closest(name, sorted(_KNOWN_ENGINE_ARGS), cutoff=0.8)
    camel_as_snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if hint is None and camel_as_snake in _KNOWN_ENGINE_ARGS:
        hint = camel_as_snake
    return problem(
        at,
        f"unknown engine option for vLLM {VLLM_VERSION}" + did_you_mean(hint),
        f"{name}={shown(value)}",
        f"vLLM {VLLM_VERSION} EngineArgs/AsyncEngineArgs/FrontendArgs field names",
    )


def _undeployable_value_problem(at: str, name: str, value: Any) -> str | None:
    """A vLLM option set to a value that this project's deployment does not support."""
    if name == "data_parallel_size" and value != 1:
        return problem(
            at,
            "data parallelism needs Ray's build_dp_openai_app, which this project "
            "does not deploy; scale with minReplicas/maxReplicas",
            shown(value),
            "1 or unset",
        )
    if name == "disable_log_stats" and value is True:
        return problem(
            at,
            "conflicts with log_engine_metrics, which the project keeps on for the engine metrics",
            shown(value),
            "false or unset",
        )
    return None


def _non_json_problem(at: str, value: Any) -> str | None:
    """A value that the Serve config (YAML/JSON) cannot carry."""
    bad = _non_json(value)
    if bad is None:
        return None
    return problem(
        at,
        "value must be plain data (string, number, boolean, null, list, map)",
        f"{bad!r} ({type(bad).__name__})",
        "YAML/JSON values",
    )


def _non_json(value: Any) -> Any:
    """The first value inside `value` that YAML/JSON cannot represent, or None."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return key
            bad = _non_json(item)
            if bad is not None:
                return bad
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            bad = _non_json(item)
            if bad is not None:
                return bad
        return None
    return value


def env_var_problems(path: str, env_vars: Mapping[Any, Any]) -> tuple[list[str], dict[str, str]]:
    """Problems with one model's `envVars`, and the variables as strings (numbers are converted)."""
    problems: list[str] = []
    normalized: dict[str, str] = {}
    for name in sorted(env_vars, key=str):
        value = env_vars[name]
        at = f"{path}.{name}"
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            problems.append(
                problem(
                    at,
                    "not an environment variable name",
                    shown(name),
                    "letters, digits and '_', not starting with a digit",
                )
            )
            continue
        if name in REFUSED_ENV_VARS:
            problems.append(
                problem(
                    at,
                    REFUSED_ENV_VARS[name],
                    f"{name}=<redacted>" if "TOKEN" in name else f"{name}={shown(value)}",
                    "remove it from envVars",
                )
            )
            continue
        if _SECRET_LOOKING_ENV.search(name):
            problems.append(
                problem(
                    at,
                    "looks like a secret, and the Serve config is stored in plain text; "
                    "set it on the Ray containers from a Kubernetes Secret",
                    f"{name}=<redacted>",
                    "non-secret variables only",
                )
            )
            continue
        if isinstance(value, str):
            normalized[name] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            normalized[name] = str(value)
        else:
            problems.append(
                problem(
                    at,
                    "environment variable values must be strings (quote them in YAML)",
                    shown(value),
                    'a string such as "1" or "true"',
                )
            )
    return problems, normalized
