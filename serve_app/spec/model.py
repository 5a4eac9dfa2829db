"""`ModelSpec`, the value type of one served model, and `with_preset`, which fills in a preset's defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from serve_app.presets import resolve_preset
from serve_app.profiles import PROFILES

_EMPTY: Mapping[str, Any] = MappingProxyType({})


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
    kv_cache_dtype: str | None = None
    """KV cache element type (vLLM ``kv_cache_dtype``): ``auto`` or an FP8 type (half the bytes per token)."""
    mtp_speculative_tokens: int | None = None
    """Tokens drafted per step by the checkpoint's multi-token-prediction layer (vLLM ``speculative_config``
    ``{"method": "mtp", "num_speculative_tokens": n}``); None = no speculative decoding."""
    enable_expert_parallel: bool | None = None
    """Whole MoE experts per GPU instead of a tensor-parallel slice of each (vLLM ``enable_expert_parallel``)."""
    decode_context_parallel_size: int | None = None
    """GPUs of the tensor-parallel group that shard each sequence's KV cache (vLLM
    ``decode_context_parallel_size``)."""
    profile: str | None = None
    """The performance profile whose settings were applied (`with_profile`), or None."""
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
    `model_source`); None = the stack's default. The infrastructure (infra/config/sections/weights.py) resolves it."""
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
    updates: dict[str, Any] = {name: value for name, value in chosen.fields.items() if getattr(spec, name) is None}
    updates["env_vars"] = {**chosen.env_vars, **spec.env_vars}
    updates["preset"] = chosen.name
    return dataclasses.replace(spec, **updates)


def with_profile(spec: ModelSpec, profile: str = "none") -> ModelSpec:
    """`spec` with a performance profile's settings filled into the fields it leaves unset (None).

    `profile` is "none" or a name from `serve_app.profiles.PROFILES`; the name is kept in `spec.profile`.
    """
    chosen = PROFILES.get(profile)
    if chosen is None:
        return spec
    updates: dict[str, Any] = {name: value for name, value in chosen.fields.items() if getattr(spec, name) is None}
    return dataclasses.replace(spec, profile=chosen.name, **updates)
