"""What is served: one `ModelSpec` per model, parsed and validated from the `models` stack config.

Deploy-time module: standard library only (no Ray, no Pulumi), so that `pulumi preview` can validate a
stack on a machine that has nothing but Pulumi.

The stack config is a list of objects with camelCase keys; `KEYS` documents each one (``keys_markdown()``
renders it for the README / Pulumi.yaml). Example, for Pulumi.<stack>.yaml::

    config:
      llmserve:models:
        - id: deepseek-r1
          source: deepseek-ai/DeepSeek-R1
          acceleratorType: H100
          tensorParallelSize: 8
          pipelineParallelSize: 2
          minReplicas: 1
          maxReplicas: 1

`parse_models` validates in two stages and reports every problem at once in one `ModelConfigError`:

1. shape: unknown or missing keys, types, ranges, enums, engine options and environment variables, each
   key on its own;
2. cross-field rules on the models that passed stage 1: replica bounds, duplicate ids, prefix-cache
   routing, vLLM's batching invariants, presets' minimum GPU counts.

Each problem reads ``<key>[<i>].<field>: <what is wrong>; found <value>; allowed <...>``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from configkit import ConfigKey, Range, closest, did_you_mean, shown
from serve_app.errors import ModelConfigError
from serve_app.presets import PRESET_CHOICES, PRESETS, resolve_preset
from serve_app.versions_data import (
    RAY_GPU_ACCELERATOR_TYPES,
    RAY_TPU_ACCELERATOR_TYPES,
    VLLM_ENGINE_ARG_NAMES,
    VLLM_FRONTEND_ARG_NAMES,
    VLLM_REASONING_PARSERS,
    VLLM_VERSION,
)

__all__ = [
    "KEYS",
    "ConfigKey",
    "ModelConfigError",
    "ModelSpec",
    "keys_markdown",
    "parse_models",
    "validate_models",
    "with_preset",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# The values of a model's `weightSource` (and of the stack's default, which also allows "auto").
WEIGHT_SOURCES: tuple[str, ...] = ("gcsfuse", "runai-streamer", "huggingface")


@dataclass(frozen=True)
class ModelSpec:
    """One served model: its weights, GPU topology, autoscaling and vLLM settings.

    Build it with `parse_models` (which also applies presets) or directly in code (then call
    `with_preset` if a preset should apply). Optional fields left as None are not emitted, so Ray Serve
    LLM's or vLLM's own default applies. `engine_kwargs` and `env_vars` are stored read-only.
    """

    model_id: str
    """The name clients send as ``model``; also names the Serve deployment. No ":" (Ray uses it for LoRA)."""
    model_source: str
    """Where the weights come from: a Hugging Face id (``deepseek-ai/DeepSeek-R1``), an absolute local path
    that exists on every node, or a ``gs://`` / ``s3://`` / ``abfss://`` / ``azure://`` URI that Ray
    downloads to each node before vLLM starts."""
    accelerator_type: str
    """Ray's accelerator name (``H100``, ``L4``, ...; from `ray.util.accelerators`); the replica's GPUs are
    scheduled only on nodes whose GPUs have that name (NVML-derived, e.g. H100 80GB HBM3 -> ``H100``)."""
    tensor_parallel_size: int = 1
    """GPUs one pipeline stage is split over (vLLM ``tensor_parallel_size``); keep it within one node."""
    pipeline_parallel_size: int = 1
    """Pipeline stages (vLLM ``pipeline_parallel_size``); a replica uses TP × PP GPUs, PP may cross nodes."""
    min_replicas: int = 1
    """Replicas kept when idle; 0 lets the model scale to zero (the first request then waits for a start)."""
    max_replicas: int = 1
    """Upper bound for autoscaling; equal to `min_replicas` for a fixed count."""
    initial_replicas: int | None = None
    """Replicas started on deploy (between min and max); None = Serve's default (min_replicas)."""
    target_ongoing_requests: float | None = None
    """Autoscaling target of in-flight requests per replica. Required to scale above one replica: Ray Serve
    LLM's default is 1e9, which never scales up."""
    prefix_cache_routing: bool | None = None
    """Route requests with a shared prompt prefix to the same replica (`PrefixCacheAffinityRouter`).
    None = automatic: on exactly when max_replicas >= 2. Needs vLLM prefix caching."""
    max_model_len: int | None = None
    """Longest prompt + completion, in tokens (vLLM ``max_model_len``)."""
    gpu_memory_utilization: float | None = None
    """Fraction of each GPU's memory vLLM may use, in (0, 1] (vLLM ``gpu_memory_utilization``)."""
    max_num_seqs: int | None = None
    """Most sequences in one engine step (vLLM ``max_num_seqs``)."""
    max_num_batched_tokens: int | None = None
    """Most tokens in one engine step (vLLM ``max_num_batched_tokens``)."""
    enable_prefix_caching: bool | None = None
    """vLLM automatic prefix caching; must not be False when prefix-cache routing is on."""
    enable_chunked_prefill: bool | None = None
    """vLLM chunked prefill; when False, max_num_batched_tokens must be >= max_model_len."""
    reasoning_parser: str | None = None
    """vLLM reasoning parser (``deepseek_r1``, ``qwen3``, ...): puts the model's thinking into
    ``reasoning_content``."""
    health_check_period_s: float | None = None
    """Seconds between Serve health checks of a replica (Ray Serve LLM default 10)."""
    health_check_timeout_s: float | None = None
    """Seconds before a health check counts as failed (Ray Serve LLM default 10)."""
    engine_kwargs: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """Extra vLLM engine/frontend options (snake_case, as vLLM names them), passed through unchanged.
    Options that a field above owns, that Ray Serve LLM sets, or that the pinned vLLM
    (`versions_data.VLLM_VERSION`) does not know are rejected."""
    env_vars: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """Extra environment variables for the model's replica and its vLLM workers (Ray runtime_env).
    Never secrets: the Serve config is stored in plain text in the RayService."""
    weight_source: str | None = None
    """How the GPU workers get the weights: ``gcsfuse`` (the stack's model store mounted through the GCS FUSE
    CSI driver), ``runai-streamer`` (vLLM streams from the store), ``huggingface`` (each node downloads
    `model_source`); None = the stack's default. The infrastructure (infra/config/weights.py) resolves it."""
    weights_revision: str | None = None
    """For the model store: the Hugging Face commit (40 hex characters) or, for an ``s3://`` source, a label
    that names the store folder ``<id>/<revision>/``. None when the weights come straight from `source`."""
    preset: str | None = None
    """The preset whose defaults were applied (filled in by `with_preset` / `parse_models`), or None."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine_kwargs", _freeze(dict(self.engine_kwargs or {})))
        object.__setattr__(self, "env_vars", MappingProxyType(dict(self.env_vars or {})))

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one replica needs: tensor_parallel_size × pipeline_parallel_size."""
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def prefix_cache_routing_enabled(self) -> bool:
        """`prefix_cache_routing` with "automatic" (None) resolved: on exactly when max_replicas >= 2."""
        if self.prefix_cache_routing is None:
            return self.max_replicas >= 2
        return self.prefix_cache_routing


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item) for item in value)
    return value


def with_preset(spec: ModelSpec, preset: str = "auto") -> ModelSpec:
    """`spec` with a preset's defaults filled into the fields it leaves unset (None).

    `preset` is "auto" (pick by `model_source`), "none", or a preset name from `serve_app.presets`.
    Environment variables of the preset are merged under the spec's own.
    """
    chosen = resolve_preset(preset, spec.model_source)
    if chosen is None:
        return spec
    updates: dict[str, Any] = {
        name: value for name, value in chosen.fields.items() if getattr(spec, name) is None
    }
    updates["env_vars"] = {**chosen.env_vars, **spec.env_vars}
    updates["preset"] = chosen.name
    return dataclasses.replace(spec, **updates)


# --------------------------------------------------------------------------------------------------
# The stack config keys


_VLLM_DEFAULT = "vLLM's, or the preset's"
_SERVE_DEFAULT = "10 (Ray Serve LLM), or the preset's"
_POSITIVE = Range(0, exclusive_minimum=True)
KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("id", "string", "Name clients send as `model`; names the Serve deployment. Letters, digits, `.`, "
              "`_`, `-`, `/`; no `:` (Ray's LoRA separator).", required=True, field="model_id"),
    ConfigKey("source", "string", "Weights: a Hugging Face id, an absolute path present on every node, or a "
              "`gs://`/`s3://`/`abfss://`/`azure://` URI (Ray downloads it to each node).", required=True,
              field="model_source"),
    ConfigKey("acceleratorType", "string", "Ray's GPU name (`H100`, `H200`, `L4`, `A100-80G`, ...); replicas run "
              "only on nodes with that GPU.", required=True, field="accelerator_type"),
    ConfigKey("weightSource", "string", "How GPU workers get the weights: `gcsfuse` (staged once into the stack's "
              "model store, mounted on every worker), `runai-streamer` (streamed from the store into GPU memory; "
              "needs an image with the streamer), `huggingface` (each node downloads `source` at every start).",
              default_text="the stack's `weightSource`", choices=WEIGHT_SOURCES, field="weight_source"),
    ConfigKey("revision", "string", "With `gcsfuse`/`runai-streamer`: the Hugging Face commit to stage (40 hex "
              "characters), or a label (`v1`, `2026-11`) for an `s3://` source; the weights live in "
              "`gs://<model store>/<id>/<revision>/`. A new value re-stages.", field="weights_revision"),
    ConfigKey("preset", "string", "Defaults for a model family: `auto` (by `source`), `none`, `deepseek-r1`, "
              "`deepseek-r1-distill`. Explicit keys always win.", default="auto", choices=PRESET_CHOICES,
              field="preset"),
    ConfigKey("tensorParallelSize", "integer", "GPUs per pipeline stage (vLLM TP); keep within one node.",
              default=1, range=Range(1), field="tensor_parallel_size"),
    ConfigKey("pipelineParallelSize", "integer", "Pipeline stages (vLLM PP); a replica uses TP × PP GPUs and PP "
              "may span nodes.", default=1, range=Range(1), field="pipeline_parallel_size"),
    ConfigKey("minReplicas", "integer", "Replicas kept when idle; `0` = scale to zero.", default=1,
              range=Range(0), field="min_replicas"),
    ConfigKey("maxReplicas", "integer", "Autoscaling upper bound (= minReplicas for a fixed count).", default=1,
              range=Range(1), field="max_replicas"),
    ConfigKey("initialReplicas", "integer", "Replicas started on deploy, between min and max.",
              default_text="minReplicas", range=Range(0), field="initial_replicas"),
    ConfigKey("targetOngoingRequests", "number", "In-flight requests per replica the autoscaler aims for; "
              "required when maxReplicas > max(minReplicas, 1) (Ray Serve LLM's default 1e9 never scales up).",
              range=_POSITIVE, field="target_ongoing_requests"),
    ConfigKey("prefixCacheRouting", "boolean", "Route shared prompt prefixes to the same replica "
              "(PrefixCacheAffinityRouter). Unset = on exactly when maxReplicas >= 2; `true` needs maxReplicas "
              ">= 2 and prefix caching.", default_text="automatic", field="prefix_cache_routing"),
    ConfigKey("maxModelLen", "integer", "Prompt + completion tokens (vLLM `max_model_len`). deepseek-r1: 32768.",
              default_text=_VLLM_DEFAULT, range=Range(1), field="max_model_len"),
    ConfigKey("gpuMemoryUtilization", "number", "Fraction of GPU memory for vLLM, in (0, 1]. deepseek-r1: 0.92.",
              default_text=_VLLM_DEFAULT, range=Range(0, 1, exclusive_minimum=True),
              field="gpu_memory_utilization"),
    ConfigKey("maxNumSeqs", "integer", "Sequences per engine step. deepseek-r1: 64.", default_text=_VLLM_DEFAULT,
              range=Range(1), field="max_num_seqs"),
    ConfigKey("maxNumBatchedTokens", "integer", "Tokens per engine step; >= maxNumSeqs, and >= maxModelLen "
              "without chunked prefill. deepseek-r1: 8192.", default_text=_VLLM_DEFAULT, range=Range(1),
              field="max_num_batched_tokens"),
    ConfigKey("enablePrefixCaching", "boolean", "vLLM prefix caching; forced on (must not be `false`) when "
              "prefix-cache routing is on. deepseek-r1: true.", default_text=_VLLM_DEFAULT,
              field="enable_prefix_caching"),
    ConfigKey("enableChunkedPrefill", "boolean", "vLLM chunked prefill. deepseek-r1: true.",
              default_text=_VLLM_DEFAULT, field="enable_chunked_prefill"),
    ConfigKey("reasoningParser", "string", f"vLLM reasoning parser (a name registered in vLLM {VLLM_VERSION}, or "
              "one from engineKwargs.reasoning_parser_plugin). deepseek-r1 and distills: `deepseek_r1`.",
              default_text=_VLLM_DEFAULT, field="reasoning_parser"),
    ConfigKey("healthCheckPeriodS", "number", "Seconds between Serve health checks. deepseek-r1: 30.",
              default_text=_SERVE_DEFAULT, range=_POSITIVE, field="health_check_period_s"),
    ConfigKey("healthCheckTimeoutS", "number", "Seconds before a health check fails. deepseek-r1: 60.",
              default_text=_SERVE_DEFAULT, range=_POSITIVE, field="health_check_timeout_s"),
    ConfigKey("engineKwargs", "map", f"Extra vLLM options by their snake_case vLLM name (checked against vLLM "
              f"{VLLM_VERSION}); options owned by the keys above are rejected.", default_text="{}",
              field="engine_kwargs"),
    ConfigKey("envVars", "map", "Extra env vars for the replica and vLLM workers, merged over the preset's "
              "(deepseek-r1: RAYLLM_ENGINE_START_TIMEOUT_S=7200, VLLM_ENGINE_READY_TIMEOUT_S=5400, "
              "HF_XET_HIGH_PERFORMANCE=1). No secrets.", default_text="{}", field="env_vars"),
)
_KEYS_BY_NAME: Mapping[str, ConfigKey] = MappingProxyType({key.name: key for key in KEYS})


def keys_markdown() -> str:
    """The key table as Markdown (key, type, default, allowed values, description), for the reference."""
    lines = ["| key | type | default | allowed | description |", "| --- | --- | --- | --- | --- |"]
    for key in KEYS:
        lines.append(f"| `{key.name}` | {key.type} | {key.default_words} | {key.allowed_words} | "
                     f"{key.description} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Rules that are data


_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_REMOTE_SCHEMES: tuple[str, ...] = ("gs://", "s3://", "abfss://", "azure://")
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
        "distributed_executor_backend": "Ray Serve LLM sets it to \"ray\" on GPUs and rejects other values",
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
        "check it; the project's ingress checks API keys (auth settings of the builder)",
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


# --------------------------------------------------------------------------------------------------
# Formatting helpers


def _problem(path: str, what: str, found: str, allowed: str) -> str:
    return f"{path}: {what}; found {found}; allowed {allowed}"


def _snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# --------------------------------------------------------------------------------------------------
# Stage 1: shape, types, ranges, enums (one key at a time)


def _type_problem(path: str, key: ConfigKey, value: Any) -> str | None:
    expected = key.type
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "map": isinstance(value, Mapping),
    }[expected]
    if ok and expected == "number" and not math.isfinite(value):
        ok = False
    if ok:
        return None
    article = "an" if expected[0] in "aeiou" else "a"
    return _problem(path, f"must be {article} {expected}", f"{shown(value)} ({type(value).__name__})",
                    f"{article} {expected}")


# Pulumi carries numbers as doubles (protobuf Struct), which hold integers exactly only up to 2**53.
_LARGEST_EXACT_INTEGER = 2**53


def _range_problem(path: str, key: ConfigKey, value: float) -> str | None:
    if key.type == "integer" and abs(value) > _LARGEST_EXACT_INTEGER:
        return _problem(path, "too large to pass through Pulumi exactly (its numbers are doubles)", shown(value),
                        f"integers up to 2**53 ({_LARGEST_EXACT_INTEGER})")
    if key.range is None or value in key.range:
        return None
    noun = "integers" if key.type == "integer" else "numbers"
    return _problem(path, "out of range", shown(value), f"{noun} {key.range.words()}")


def _string_problems(path: str, key: ConfigKey, value: str) -> list[str]:
    if key.choices is not None and value not in key.choices:
        hint = closest(value, key.choices, cutoff=0.75)
        return [_problem(path, "unknown value" + did_you_mean(hint), shown(value),
                         "one of " + ", ".join(key.choices))]
    if key.field == "model_id" and not _MODEL_ID.match(value):
        return [_problem(path, "not a valid model id", shown(value),
                         "1-128 characters: letters, digits, '.', '_', '-', '/', starting with a letter or "
                         "digit (no ':' or spaces)")]
    if key.field == "model_source":
        return _source_problems(path, value)
    if key.field == "accelerator_type":
        return _accelerator_problems(path, value)
    if key.field == "reasoning_parser" and not value:
        return [_problem(path, "must not be empty", shown(value), "a vLLM reasoning parser name, or leave unset")]
    return []


def _source_problems(path: str, value: str) -> list[str]:
    if value.startswith(_REMOTE_SCHEMES):
        scheme, _, rest = value.partition("://")
        if not rest.split("/")[0]:
            return [_problem(path, f"{scheme}:// URI without a bucket", shown(value), f"{scheme}://<bucket>/<path>")]
        return []
    if "://" in value:
        return [_problem(path, "unsupported URI scheme", shown(value),
                         "a Hugging Face id, an absolute path, or a URI starting with " + ", ".join(_REMOTE_SCHEMES))]
    if value.startswith("/") or _HF_ID.match(value):
        return []
    return [_problem(path, "not a Hugging Face id, absolute path or supported URI", shown(value),
                     "org/name, /absolute/path, or " + ", ".join(f"{scheme}..." for scheme in _REMOTE_SCHEMES))]


def _accelerator_problems(path: str, value: str) -> list[str]:
    if value in RAY_GPU_ACCELERATOR_TYPES:
        return []
    if value == "A10":  # Ray rewrites it, but say the canonical name so that node resources match
        return [_problem(path, "Ray calls this GPU A10G", shown(value), '"A10G"')]
    if value in RAY_TPU_ACCELERATOR_TYPES:
        return [_problem(path, "TPUs are not supported by this project's serve config (GPU only)", shown(value),
                         "a Ray GPU accelerator name")]
    hint = None
    for separator in ("-", " ", "_"):  # "H100-80GB", "nvidia-h100-80gb" -> "H100"
        for part in value.split(separator):
            hint = hint or next((name for name in RAY_GPU_ACCELERATOR_TYPES if name.lower() == part.lower()), None)
    hint = hint or closest(value, sorted(RAY_GPU_ACCELERATOR_TYPES), cutoff=0.6)
    what = "not a Ray accelerator name" + did_you_mean(hint)
    common = ("A100", "A100-80G", "B200", "H100", "H200", "L4", "L40S")
    return [_problem(path, what, shown(value),
                     "one of the names in ray.util.accelerators, e.g. " + ", ".join(common))]


def engine_kwargs_problems(path: str, engine_kwargs: Mapping[Any, Any]) -> list[str]:
    """Problems with the keys (and JSON-ness of the values) of one model's `engineKwargs`."""
    problems: list[str] = []
    known = VLLM_ENGINE_ARG_NAMES | VLLM_FRONTEND_ARG_NAMES
    for name in sorted(engine_kwargs, key=str):
        value = engine_kwargs[name]
        at = f"{path}.{name}"
        if not isinstance(name, str):
            problems.append(_problem(path, "option names must be strings", shown(name),
                                     "snake_case vLLM option names"))
            continue
        if name in OWNED_ENGINE_ARGS:
            problems.append(_problem(at, f"is set by the model spec, not engineKwargs (use the key "
                                     f"{OWNED_ENGINE_ARGS[name]})", f"{name}={shown(value)}",
                                     f"{OWNED_ENGINE_ARGS[name]}: {shown(value)} next to engineKwargs"))
        elif name in RAY_OWNED_ENGINE_ARGS:
            problems.append(_problem(at, RAY_OWNED_ENGINE_ARGS[name], f"{name}={shown(value)}",
                                     "remove it from engineKwargs"))
        elif name in REFUSED_ENGINE_ARGS:
            problems.append(_problem(at, REFUSED_ENGINE_ARGS[name], f"{name}=<redacted>",
                                     "remove it from engineKwargs"))
        elif name in REMOVED_ENGINE_ARGS:
            problems.append(_problem(at, f"unknown engine option for vLLM {VLLM_VERSION}: "
                                     f"{REMOVED_ENGINE_ARGS[name]}", f"{name}={shown(value)}",
                                     "remove it from engineKwargs"))
        elif name not in known:
            hint = closest(name, sorted(known), cutoff=0.8)
            camel_as_snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
            if hint is None and camel_as_snake in known:
                hint = camel_as_snake
            what = f"unknown engine option for vLLM {VLLM_VERSION}" + did_you_mean(hint)
            problems.append(_problem(at, what, f"{name}={shown(value)}",
                                     f"vLLM {VLLM_VERSION} EngineArgs/AsyncEngineArgs/FrontendArgs field names"))
        elif name == "data_parallel_size" and value != 1:
            problems.append(_problem(at, "data parallelism needs Ray's build_dp_openai_app, which this project "
                                     "does not deploy; scale with minReplicas/maxReplicas", shown(value), "1 or unset"))
        elif name == "disable_log_stats" and value is True:
            problems.append(_problem(at, "conflicts with log_engine_metrics, which the project keeps on for "
                                     "the engine metrics", shown(value), "false or unset"))
        else:
            bad = _non_json(value)
            if bad is not None:
                problems.append(_problem(at, "value must be plain data (string, number, boolean, null, list, map)",
                                         f"{bad!r} ({type(bad).__name__})", "YAML/JSON values"))
    return problems


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
            problems.append(_problem(at, "not an environment variable name", shown(name),
                                     "letters, digits and '_', not starting with a digit"))
            continue
        if name in REFUSED_ENV_VARS:
            problems.append(_problem(at, REFUSED_ENV_VARS[name], f"{name}=<redacted>" if "TOKEN" in name else
                                     f"{name}={shown(value)}", "remove it from envVars"))
            continue
        if _SECRET_LOOKING_ENV.search(name):
            problems.append(_problem(at, "looks like a secret, and the Serve config is stored in plain text; "
                                     "set it on the Ray containers from a Kubernetes Secret", f"{name}=<redacted>",
                                     "non-secret variables only"))
            continue
        if isinstance(value, str):
            normalized[name] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            normalized[name] = str(value)
        else:
            problems.append(_problem(at, "environment variable values must be strings (quote them in YAML)",
                                     shown(value), 'a string such as "1" or "true"'))
    return problems, normalized


def _stage1_fields(path: str, values: Mapping[str, Any], *, present: set[str]) -> tuple[list[str], dict[str, Any]]:
    """Check the documented keys of one model object; returns problems and ModelSpec keyword arguments.

    `values` maps config keys to values; `present` is the set of keys that were written (null = unset).
    """
    problems: list[str] = []
    kwargs: dict[str, Any] = {}
    for key in KEYS:
        at = f"{path}.{key.name}"
        value = values.get(key.name)
        if key.name not in present or value is None:
            if key.required:
                problems.append(_problem(at, "required key is missing", "nothing", f"a {key.type}"))
            continue
        type_problem = _type_problem(at, key, value)
        if type_problem is not None:
            problems.append(type_problem)
            continue
        if key.type in ("integer", "number"):
            range_problem = _range_problem(at, key, value)
            if range_problem is not None:
                problems.append(range_problem)
                continue
        if key.type == "string":
            string_problems = _string_problems(at, key, value)
            if string_problems:
                problems.extend(string_problems)
                continue
        if key.field == "engine_kwargs":
            engine_problems = engine_kwargs_problems(at, value)
            if engine_problems:
                problems.extend(engine_problems)
                continue
        if key.field == "env_vars":
            env_problems, value = env_var_problems(at, value)
            if env_problems:
                problems.extend(env_problems)
                continue
        kwargs[key.field] = value
    return problems, kwargs


def _unknown_key_problem(path: str, name: Any) -> str:
    at = f"{path}.{name}"
    if not isinstance(name, str):
        return _problem(at, "unknown key", shown(name), "one of " + ", ".join(_KEYS_BY_NAME))
    camel = _snake_to_camel(name)
    hint = camel if camel in _KEYS_BY_NAME else closest(name, _KEYS_BY_NAME, cutoff=0.75)
    if hint is not None:
        return _problem(at, "unknown key" + did_you_mean(hint), shown(name), "one of " + ", ".join(_KEYS_BY_NAME))
    engine_name = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if engine_name in VLLM_ENGINE_ARG_NAMES or engine_name in VLLM_FRONTEND_ARG_NAMES:
        return _problem(at, f"unknown key; {engine_name!r} is a vLLM option: put it under engineKwargs",
                        shown(name), f"engineKwargs: {{{engine_name}: ...}}")
    return _problem(at, "unknown key", shown(name), "one of " + ", ".join(_KEYS_BY_NAME))


# --------------------------------------------------------------------------------------------------
# Stage 2: rules across fields and across models


def _cross_field_problems(path: str, spec: ModelSpec) -> list[str]:
    problems: list[str] = []
    preset_note = f" (unset keys take preset {spec.preset}'s defaults)" if spec.preset else ""

    if spec.min_replicas > spec.max_replicas:
        problems.append(_problem(f"{path}.minReplicas", "must not exceed maxReplicas",
                                 f"minReplicas={spec.min_replicas}, maxReplicas={spec.max_replicas}",
                                 f"0..{spec.max_replicas} (0 = scale to zero)"))
    elif spec.initial_replicas is not None and not spec.min_replicas <= spec.initial_replicas <= spec.max_replicas:
        problems.append(_problem(f"{path}.initialReplicas", "must lie between minReplicas and maxReplicas",
                                 f"initialReplicas={spec.initial_replicas}, minReplicas={spec.min_replicas}, "
                                 f"maxReplicas={spec.max_replicas}", f"{spec.min_replicas}..{spec.max_replicas}"))
    if spec.max_replicas > max(spec.min_replicas, 1) and spec.target_ongoing_requests is None:
        problems.append(_problem(f"{path}.targetOngoingRequests", "required when the model can scale above one "
                                 "replica: Ray Serve LLM's default target (1e9 in-flight requests) never scales up",
                                 f"unset with minReplicas={spec.min_replicas}, maxReplicas={spec.max_replicas}",
                                 "a number > 0, e.g. about maxNumSeqs / 2"))

    if spec.prefix_cache_routing is True and spec.max_replicas < 2:
        problems.append(_problem(f"{path}.prefixCacheRouting", "prefix-cache routing chooses between replicas and "
                                 "needs maxReplicas >= 2", f"prefixCacheRouting=true, maxReplicas={spec.max_replicas}",
                                 "false or unset (automatic), or maxReplicas >= 2"))
    elif spec.prefix_cache_routing_enabled and spec.enable_prefix_caching is False:
        how = "true" if spec.prefix_cache_routing else f"automatic, on because maxReplicas={spec.max_replicas}"
        problems.append(_problem(f"{path}.enablePrefixCaching", "prefix-cache routing is on, and it is useless "
                                 "without vLLM prefix caching", f"enablePrefixCaching=false, prefixCacheRouting={how}",
                                 "enablePrefixCaching true or unset, or prefixCacheRouting: false"))

    batched = spec.max_num_batched_tokens
    if batched is not None:
        if spec.max_model_len is not None and spec.enable_chunked_prefill is False and batched < spec.max_model_len:
            problems.append(_problem(f"{path}.maxNumBatchedTokens", "without chunked prefill it must be at least "
                                     "maxModelLen, or vLLM refuses to start" + preset_note,
                                     f"maxNumBatchedTokens={batched}, maxModelLen={spec.max_model_len}, "
                                     "enableChunkedPrefill=false",
                                     f">= {spec.max_model_len}, or enableChunkedPrefill true"))
        if spec.max_num_seqs is not None and batched < spec.max_num_seqs:
            problems.append(_problem(f"{path}.maxNumBatchedTokens", "must be at least maxNumSeqs, or vLLM refuses "
                                     "to start" + preset_note,
                                     f"maxNumBatchedTokens={batched}, maxNumSeqs={spec.max_num_seqs}",
                                     f">= {spec.max_num_seqs}"))

    if (
        spec.reasoning_parser is not None
        and spec.reasoning_parser not in VLLM_REASONING_PARSERS
        and "reasoning_parser_plugin" not in spec.engine_kwargs
    ):
        hint = closest(spec.reasoning_parser, sorted(VLLM_REASONING_PARSERS), cutoff=0.6)
        problems.append(_problem(f"{path}.reasoningParser", f"not a reasoning parser of vLLM {VLLM_VERSION}"
                                 + did_you_mean(hint), shown(spec.reasoning_parser),
                                 ", ".join(sorted(VLLM_REASONING_PARSERS))
                                 + ", or a name registered by engineKwargs.reasoning_parser_plugin"))

    if spec.preset is not None and spec.preset in PRESETS:
        needed = PRESETS[spec.preset].min_gpus_per_replica
        if spec.gpus_per_replica < needed:
            problems.append(_problem(f"{path}.tensorParallelSize", f"preset {spec.preset} needs at least {needed} "
                                     "GPUs per replica (tensorParallelSize × pipelineParallelSize) to hold the weights",
                                     f"tensorParallelSize={spec.tensor_parallel_size}, "
                                     f"pipelineParallelSize={spec.pipeline_parallel_size}",
                                     f"TP × PP >= {needed}, e.g. 8 × 2 on 8-GPU H100 nodes"))
    return problems


def serve_deployment_name(model_id: str) -> str:
    """The name Ray Serve LLM 2.60 gives a model's deployment, after "LLMServer:" (server/builder.py)."""
    return model_id.replace("/", "--").replace(".", "_")


def _duplicate_id_problems(key: str, indexed_specs: Sequence[tuple[int, ModelSpec]]) -> list[str]:
    problems: list[str] = []
    first_id: dict[str, int] = {}
    first_deployment: dict[str, int] = {}
    for index, spec in indexed_specs:
        deployment = serve_deployment_name(spec.model_id)
        if spec.model_id in first_id:
            other = first_id[spec.model_id]
            problems.append(_problem(f"{key}[{index}].id", f"duplicate model id (also {key}[{other}].id)",
                                     shown(spec.model_id), "ids unique across models"))
        elif deployment in first_deployment:
            other = first_deployment[deployment]
            problems.append(_problem(f"{key}[{index}].id", "maps to the same Serve deployment name as "
                                     f"{key}[{other}].id (Ray replaces '/' with '--' and '.' with '_')",
                                     f"{shown(spec.model_id)} -> LLMServer:{deployment}",
                                     "ids that stay distinct after that replacement"))
        else:
            first_id[spec.model_id] = index
            first_deployment[deployment] = index
    return problems


# --------------------------------------------------------------------------------------------------
# Entry points


def parse_models(raw: Any, key: str = "models") -> tuple[ModelSpec, ...]:
    """Parse and validate the `models` stack config value into ModelSpecs, presets applied.

    `raw` is the decoded value (``pulumi.Config().require_object("models")``): a non-empty list of
    objects with the keys in `KEYS`. Raises `ModelConfigError` listing every problem found.
    """
    if isinstance(raw, Mapping) or not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ModelConfigError([_problem(key, "must be a list of model objects", shown(raw),
                                         "a list of objects with keys " + ", ".join(_KEYS_BY_NAME))])
    if not raw:
        raise ModelConfigError([_problem(key, "must list at least one model", "[]", "1 or more model objects")])

    problems: list[str] = []
    parsed: list[tuple[int, ModelSpec]] = []
    for index, item in enumerate(raw):
        path = f"{key}[{index}]"
        if not isinstance(item, Mapping):
            problems.append(_problem(path, "must be an object (a map of keys)", shown(item),
                                     "an object with keys " + ", ".join(_KEYS_BY_NAME)))
            continue
        item_problems = [_unknown_key_problem(path, name) for name in item if name not in _KEYS_BY_NAME]
        field_problems, kwargs = _stage1_fields(path, item, present=set(item))
        item_problems.extend(field_problems)
        if item_problems:
            problems.extend(item_problems)
            continue
        preset = kwargs.pop("preset", _KEYS_BY_NAME["preset"].default)
        parsed.append((index, with_preset(ModelSpec(**kwargs), preset)))

    problems.extend(_duplicate_id_problems(key, parsed))
    for index, spec in parsed:
        problems.extend(_cross_field_problems(f"{key}[{index}]", spec))
    if problems:
        raise ModelConfigError(problems)
    return tuple(spec for _, spec in parsed)


def validate_models(models: Sequence[ModelSpec], key: str = "models") -> None:
    """Run every check of `parse_models` on ModelSpecs built in code; raises `ModelConfigError`."""
    problems: list[str] = []
    if not models:
        problems.append(_problem(key, "must list at least one model", "[]", "1 or more ModelSpec"))
    indexed: list[tuple[int, ModelSpec]] = []
    for index, spec in enumerate(models):
        path = f"{key}[{index}]"
        if not isinstance(spec, ModelSpec):
            problems.append(_problem(path, "must be a ModelSpec", shown(spec), "serve_app.spec.ModelSpec"))
            continue
        values = {config_key.name: getattr(spec, config_key.field) for config_key in KEYS}
        values["preset"] = None  # the resolved name, not a choice; checked below
        field_problems, _ = _stage1_fields(path, values, present=set(values))
        if spec.preset is not None and spec.preset not in PRESETS:
            field_problems.append(_problem(f"{path}.preset", "unknown preset", shown(spec.preset),
                                           "None or one of " + ", ".join(PRESETS)))
        problems.extend(field_problems)
        if not field_problems:
            indexed.append((index, spec))
    problems.extend(_duplicate_id_problems(key, indexed))
    for index, spec in indexed:
        problems.extend(_cross_field_problems(f"{key}[{index}]", spec))
    if problems:
        raise ModelConfigError(problems)
