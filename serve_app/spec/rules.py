"""Stage 2 of the validation: the rules across the fields of a model that passed stage 1, and across models.

Each rule family is one function returning its problems (each naming the key to change): replica bounds and
autoscaling, prefix-cache routing, vLLM's batching invariants, the reasoning parser, a preset's minimum GPUs.
"""

from __future__ import annotations

from collections.abc import Sequence

from configkit import closest, did_you_mean, shown
from serve_app.presets import PRESETS
from serve_app.spec.keys import problem
from serve_app.spec.model import ModelSpec
from serve_app.spec.perf_rules import perf_problems
from serve_app.versions_data import VLLM_REASONING_PARSERS, VLLM_VERSION


def rule_problems(key: str, indexed_specs: Sequence[tuple[int, ModelSpec]]) -> list[str]:
    """Every stage-2 problem of the models that passed stage 1, given with their index in the config."""
    problems = duplicate_id_problems(key, indexed_specs)
    for index, spec in indexed_specs:
        problems.extend(cross_field_problems(f"{key}[{index}]", spec))
    return problems


def cross_field_problems(path: str, spec: ModelSpec) -> list[str]:
    """The rules between the fields of one model, `path` being its place in the config (``models[0]``)."""
    return [
        *_replica_problems(path, spec),
        *_prefix_cache_problems(path, spec),
        *_batching_problems(path, spec),
        *_reasoning_parser_problems(path, spec),
        *_preset_problems(path, spec),
        *perf_problems(path, spec),
    ]


def _replica_problems(path: str, spec: ModelSpec) -> list[str]:
    problems = []
    if spec.min_replicas > spec.max_replicas:
        problems.append(
            problem(
                f"{path}.minReplicas",
                "must not exceed maxReplicas",
                f"minReplicas={spec.min_replicas}, maxReplicas={spec.max_replicas}",
                f"0..{spec.max_replicas} (0 = scale to zero)",
            )
        )
    elif spec.initial_replicas is not None and not spec.min_replicas <= spec.initial_replicas <= spec.max_replicas:
        problems.append(
            problem(
                f"{path}.initialReplicas",
                "must lie between minReplicas and maxReplicas",
                f"initialReplicas={spec.initial_replicas}, minReplicas={spec.min_replicas}, "
                f"maxReplicas={spec.max_replicas}",
                f"{spec.min_replicas}..{spec.max_replicas}",
            )
        )
    if spec.max_replicas > max(spec.min_replicas, 1) and spec.target_ongoing_requests is None:
        problems.append(
            problem(
                f"{path}.targetOngoingRequests",
                "required when the model can scale above one "
                "replica: Ray Serve LLM's default target (1e9 in-flight requests) never scales up",
                f"unset with minReplicas={spec.min_replicas}, maxReplicas={spec.max_replicas}",
                "a number > 0, e.g. about maxNumSeqs / 2",
            )
        )
    return problems


def _prefix_cache_problems(path: str, spec: ModelSpec) -> list[str]:
    if spec.prefix_cache_routing is True and spec.max_replicas < 2:
        return [
            problem(
                f"{path}.prefixCacheRouting",
                "prefix-cache routing chooses between replicas and needs maxReplicas >= 2",
                f"prefixCacheRouting=true, maxReplicas={spec.max_replicas}",
                "false or unset (automatic), or maxReplicas >= 2",
            )
        ]
    if spec.prefix_cache_routing_enabled and spec.enable_prefix_caching is False:
        how = "true" if spec.prefix_cache_routing else f"automatic, on because maxReplicas={spec.max_replicas}"
        return [
            problem(
                f"{path}.enablePrefixCaching",
                "prefix-cache routing is on, and it is useless without vLLM prefix caching",
                f"enablePrefixCaching=false, prefixCacheRouting={how}",
                "enablePrefixCaching true or unset, or prefixCacheRouting: false",
            )
        ]
    return []


def _batching_problems(path: str, spec: ModelSpec) -> list[str]:
    batched = spec.max_num_batched_tokens
    if batched is None:
        return []
    preset_note = f" (unset keys take preset {spec.preset}'s defaults)" if spec.preset else ""
    problems = []
    if spec.max_model_len is not None and spec.enable_chunked_prefill is False and batched < spec.max_model_len:
        problems.append(
            problem(
                f"{path}.maxNumBatchedTokens",
                "without chunked prefill it must be at least maxModelLen, or vLLM refuses to start" + preset_note,
                f"maxNumBatchedTokens={batched}, maxModelLen={spec.max_model_len}, enableChunkedPrefill=false",
                f">= {spec.max_model_len}, or enableChunkedPrefill true",
            )
        )
    if spec.max_num_seqs is not None and batched < spec.max_num_seqs:
        problems.append(
            problem(
                f"{path}.maxNumBatchedTokens",
                "must be at least maxNumSeqs, or vLLM refuses to start" + preset_note,
                f"maxNumBatchedTokens={batched}, maxNumSeqs={spec.max_num_seqs}",
                f">= {spec.max_num_seqs}",
            )
        )
    return problems


def _reasoning_parser_problems(path: str, spec: ModelSpec) -> list[str]:
    parser = spec.reasoning_parser
    if parser is None or parser in VLLM_REASONING_PARSERS or "reasoning_parser_plugin" in spec.engine_kwargs:
        return []
    hint = closest(parser, sorted(VLLM_REASONING_PARSERS), cutoff=0.6)
    return [
        problem(
            f"{path}.reasoningParser",
            f"not a reasoning parser of vLLM {VLLM_VERSION}" + did_you_mean(hint),
            shown(parser),
            ", ".join(sorted(VLLM_REASONING_PARSERS))
            + ", or a name registered by engineKwargs.reasoning_parser_plugin",
        )
    ]


def _preset_problems(path: str, spec: ModelSpec) -> list[str]:
    if spec.preset is None or spec.preset not in PRESETS:
        return []
    needed = PRESETS[spec.preset].min_gpus_per_replica
    if spec.gpus_per_replica >= needed:
        return []
    return [
        problem(
            f"{path}.tensorParallelSize",
            f"preset {spec.preset} needs at least {needed} GPUs per replica "
            "(tensorParallelSize × pipelineParallelSize) to hold the weights",
            f"tensorParallelSize={spec.tensor_parallel_size}, pipelineParallelSize={spec.pipeline_parallel_size}",
            f"TP × PP >= {needed}, e.g. 8 × 2 on 8-GPU H100 nodes",
        )
    ]


LLM_SERVER_PREFIX = "LLMServer:"


def serve_deployment_name(model_id: str) -> str:
    """The name Ray Serve LLM 2.60 gives a model's deployment, after "LLMServer:" (server/builder.py)."""
    return model_id.replace("/", "--").replace(".", "_")


def llm_server_deployment(model_id: str) -> str:
    """A model's whole Serve deployment name in Ray Serve LLM 2.60: "LLMServer:" and `serve_deployment_name`."""
    return LLM_SERVER_PREFIX + serve_deployment_name(model_id)


def duplicate_id_problems(key: str, indexed_specs: Sequence[tuple[int, ModelSpec]]) -> list[str]:
    """Ids used twice, or that Ray would turn into the same deployment name."""
    problems: list[str] = []
    first_id: dict[str, int] = {}
    first_deployment: dict[str, int] = {}
    for index, spec in indexed_specs:
        deployment = serve_deployment_name(spec.model_id)
        if spec.model_id in first_id:
            other = first_id[spec.model_id]
            problems.append(
                problem(
                    f"{key}[{index}].id",
                    f"duplicate model id (also {key}[{other}].id)",
                    shown(spec.model_id),
                    "ids unique across models",
                )
            )
        elif deployment in first_deployment:
            other = first_deployment[deployment]
            problems.append(
                problem(
                    f"{key}[{index}].id",
                    "maps to the same Serve deployment name as "
                    f"{key}[{other}].id (Ray replaces '/' with '--' and '.' with '_')",
                    f"{shown(spec.model_id)} -> LLMServer:{deployment}",
                    "ids that stay distinct after that replacement",
                )
            )
        else:
            first_id[spec.model_id] = index
            first_deployment[deployment] = index
    return problems
