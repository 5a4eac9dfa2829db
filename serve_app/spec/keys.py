"""The documented keys of a model object in the `models` stack config, and how a problem with one reads."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from configkit import ConfigKey, Range, markdown_table
from serve_app.presets import PRESET_CHOICES
from serve_app.profiles import PROFILE_CHOICES
from serve_app.versions_data import VLLM_VERSION

# The values of `kvCacheDtype`: vLLM 0.29's CacheDType names (vllm/config/cache.py, lines 39-57) that the capacity
# planner sizes; the model-dependent rules (MLA backends) are in infra/planning/profile_rules.py.
KV_CACHE_DTYPES: tuple[str, ...] = ("auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2")
# The values of a model's `weightSource` (and of the stack's default, which also allows "auto").
WEIGHT_SOURCES: tuple[str, ...] = ("gcsfuse", "runai-streamer", "huggingface")

_VLLM_DEFAULT = "vLLM's, or the preset's"
_SERVE_DEFAULT = "10 (Ray Serve LLM), or the preset's"
_HEALTH_PERIOD_DEFAULT = "2 (this project; Ray Serve LLM: 10), or the preset's"
_POSITIVE = Range(0, exclusive_minimum=True)
KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "id",
        "string",
        "Name clients send as `model`; names the Serve deployment. Letters, digits, `.`, "
        "`_`, `-`, `/`; no `:` (Ray's LoRA separator).",
        required=True,
        field="model_id",
    ),
    ConfigKey(
        "source",
        "string",
        "Weights: a Hugging Face id, an absolute path present on every node, or a "
        "`gs://`/`s3://`/`abfss://`/`azure://` URI (Ray downloads it to each node).",
        required=True,
        field="model_source",
    ),
    ConfigKey(
        "acceleratorType",
        "string",
        "Ray's GPU name (`H100`, `H200`, `L4`, `A100-80G`, ...); replicas run only on nodes with that GPU.",
        required=True,
        field="accelerator_type",
    ),
    ConfigKey(
        "weightSource",
        "string",
        "How GPU workers get the weights: `gcsfuse` (staged once into the stack's "
        "model store, mounted on every worker), `runai-streamer` (streamed from the store into GPU memory; "
        "needs an image with the streamer), `huggingface` (each node downloads `source` at every start).",
        default_text="the stack's `weightSource`",
        choices=WEIGHT_SOURCES,
        field="weight_source",
    ),
    ConfigKey(
        "revision",
        "string",
        "With `gcsfuse`/`runai-streamer`: the Hugging Face commit to stage (40 hex "
        "characters), or a label (`v1`, `2026-11`) for an `s3://` source; the weights live in "
        "`gs://<model store>/<id>/<revision>/`. A new value re-stages.",
        field="weights_revision",
    ),
    ConfigKey(
        "preset",
        "string",
        "Defaults for a model family: `auto` (by `source`), `none`, `deepseek-r1`, "
        "`deepseek-r1-distill`. Explicit keys always win.",
        default="auto",
        choices=PRESET_CHOICES,
        field="preset",
    ),
    ConfigKey(
        "tensorParallelSize",
        "integer",
        "GPUs per pipeline stage (vLLM TP); keep within one node.",
        default=1,
        range=Range(1),
        field="tensor_parallel_size",
    ),
    ConfigKey(
        "pipelineParallelSize",
        "integer",
        "Pipeline stages (vLLM PP); a replica uses TP × PP GPUs and PP may span nodes.",
        default=1,
        range=Range(
            1,
            256,
            why="vLLM needs at least one layer per stage, and the deepest models served here have fewer than 256 "
            "layers (DeepSeek-R1: 61)",
        ),
        field="pipeline_parallel_size",
    ),
    ConfigKey(
        "minReplicas",
        "integer",
        "Replicas kept when idle; `0` = scale to zero.",
        default=1,
        range=Range(0),
        field="min_replicas",
    ),
    ConfigKey(
        "maxReplicas",
        "integer",
        "Autoscaling upper bound (= minReplicas for a fixed count).",
        default=1,
        range=Range(1),
        field="max_replicas",
    ),
    ConfigKey(
        "initialReplicas",
        "integer",
        "Replicas started on deploy, between min and max.",
        default_text="minReplicas",
        range=Range(0),
        field="initial_replicas",
    ),
    ConfigKey(
        "targetOngoingRequests",
        "number",
        "In-flight requests per replica the autoscaler aims for; "
        "required when maxReplicas > max(minReplicas, 1) (Ray Serve LLM's default 1e9 never scales up).",
        range=_POSITIVE,
        field="target_ongoing_requests",
    ),
    ConfigKey(
        "prefixCacheRouting",
        "boolean",
        "Route shared prompt prefixes to the same replica "
        "(PrefixCacheAffinityRouter). Unset = on exactly when maxReplicas >= 2; `true` needs maxReplicas "
        ">= 2 and prefix caching.",
        default_text="automatic",
        field="prefix_cache_routing",
    ),
    ConfigKey(
        "maxModelLen",
        "integer",
        "Prompt + completion tokens (vLLM `max_model_len`). deepseek-r1: 32768.",
        default_text=_VLLM_DEFAULT,
        range=Range(1),
        field="max_model_len",
    ),
    ConfigKey(
        "gpuMemoryUtilization",
        "number",
        "Fraction of GPU memory for vLLM, in (0, 1]. deepseek-r1: 0.92.",
        default_text=_VLLM_DEFAULT,
        range=Range(0, 1, exclusive_minimum=True),
        field="gpu_memory_utilization",
    ),
    ConfigKey(
        "maxNumSeqs",
        "integer",
        "Sequences per engine step. deepseek-r1: 64.",
        default_text=_VLLM_DEFAULT,
        range=Range(1),
        field="max_num_seqs",
    ),
    ConfigKey(
        "maxNumBatchedTokens",
        "integer",
        "Tokens per engine step; >= maxNumSeqs, and >= maxModelLen without chunked prefill. deepseek-r1: 8192.",
        default_text=_VLLM_DEFAULT,
        range=Range(1),
        field="max_num_batched_tokens",
    ),
    ConfigKey(
        "enablePrefixCaching",
        "boolean",
        "vLLM prefix caching; forced on (must not be `false`) when prefix-cache routing is on. deepseek-r1: true.",
        default_text=_VLLM_DEFAULT,
        field="enable_prefix_caching",
    ),
    ConfigKey(
        "enableChunkedPrefill",
        "boolean",
        "vLLM chunked prefill. deepseek-r1: true.",
        default_text=_VLLM_DEFAULT,
        field="enable_chunked_prefill",
    ),
    ConfigKey(
        "reasoningParser",
        "string",
        f"vLLM reasoning parser (a name registered in vLLM {VLLM_VERSION}, or "
        "one from engineKwargs.reasoning_parser_plugin). deepseek-r1 and distills: `deepseek_r1`.",
        default_text=_VLLM_DEFAULT,
        field="reasoning_parser",
    ),
    ConfigKey(
        "healthCheckPeriodS",
        "number",
        "Seconds between Serve health checks; a replica whose engine died exits at once and is replaced at the "
        "next check. deepseek-r1: 30.",
        default_text=_HEALTH_PERIOD_DEFAULT,
        range=_POSITIVE,
        field="health_check_period_s",
    ),
    ConfigKey(
        "healthCheckTimeoutS",
        "number",
        "Seconds before a health check fails. deepseek-r1: 60.",
        default_text=_SERVE_DEFAULT,
        range=_POSITIVE,
        field="health_check_timeout_s",
    ),
    ConfigKey(
        "profile",
        "string",
        "Performance profile: `none`, `fp8-kv` (kvCacheDtype fp8), `mtp` (mtpSpeculativeTokens 1), "
        "`fp8-kv-mtp` (both). Fills the four keys below when they are unset; see Capacity and cost.",
        default="none",
        choices=PROFILE_CHOICES,
        field="profile",
    ),
    ConfigKey(
        "kvCacheDtype",
        "string",
        "KV cache element type (vLLM `kv_cache_dtype`): `auto` (the model's, BF16), or FP8 (half the bytes per "
        "token; MLA models on H100/H200: `fp8`, `fp8_e4m3`).",
        default_text="vLLM's `auto`, or the profile's",
        choices=KV_CACHE_DTYPES,
        field="kv_cache_dtype",
    ),
    ConfigKey(
        "mtpSpeculativeTokens",
        "integer",
        "Speculative decoding with the checkpoint's multi-token-prediction layer (DeepSeek-V3/R1): tokens "
        "drafted per step (vLLM `speculative_config` method `mtp`). Unset = off.",
        default_text="off, or the profile's",
        range=Range(1),
        field="mtp_speculative_tokens",
    ),
    ConfigKey(
        "expertParallel",
        "boolean",
        "Place whole MoE experts on each GPU of the tensor-parallel group instead of a slice of every expert "
        "(vLLM `enable_expert_parallel`); MoE models only.",
        default_text="vLLM's `false`",
        field="enable_expert_parallel",
    ),
    ConfigKey(
        "decodeContextParallelSize",
        "integer",
        "Shard the KV cache of each sequence over this many GPUs of the tensor-parallel group (vLLM "
        "`decode_context_parallel_size`); divides tensorParallelSize.",
        default_text="vLLM's `1`",
        range=Range(1),
        field="decode_context_parallel_size",
    ),
    ConfigKey(
        "engineKwargs",
        "map",
        f"Extra vLLM options by their snake_case vLLM name (checked against vLLM "
        f"{VLLM_VERSION}); options owned by the keys above are rejected.",
        default_text="{}",
        field="engine_kwargs",
    ),
    ConfigKey(
        "envVars",
        "map",
        "Extra env vars for the replica and vLLM workers, merged over the preset's "
        "(deepseek-r1: RAYLLM_ENGINE_START_TIMEOUT_S=7200, VLLM_ENGINE_READY_TIMEOUT_S=5400, "
        "HF_XET_HIGH_PERFORMANCE=1). No secrets.",
        default_text="{}",
        field="env_vars",
    ),
)
KEYS_BY_NAME: Mapping[str, ConfigKey] = MappingProxyType({key.name: key for key in KEYS})


def keys_markdown() -> str:
    """The key table as Markdown (key, type, default, allowed values, description), for docs/configuration.md."""
    return markdown_table(KEYS)


def problem(path: str, what: str, found: str, allowed: str) -> str:
    """One problem line: ``<key>[<i>].<field>: <what is wrong>; found <value>; allowed <...>``."""
    return f"{path}: {what}; found {found}; allowed {allowed}"
