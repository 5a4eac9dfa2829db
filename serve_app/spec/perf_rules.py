"""Stage-2 rules of the performance settings that need only the model's own keys (the rules that need its
architecture or GPU are in infra/planning/profile_rules.py): what vLLM 0.29 refuses at engine start for the model's
tensorParallelSize x pipelineParallelSize, each problem citing the vLLM file and lines of the rule.

Paths are of the vllm package of vLLM 0.29.0 (vllm-project/vllm at tag v0.29.0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from configkit import shown
from serve_app.spec.keys import problem
from serve_app.spec.model import ModelSpec
from serve_app.versions_data import VLLM_VERSION

# Speculative methods whose drafter reads hidden states of every target layer, which vLLM's default (V2) model
# runner refuses under pipeline parallelism: v1/worker/gpu/model_runner.py lines 263-275 (and DSpark again in
# v1/worker/gpu/spec_decode/dspark/utils.py lines 79-80). MTP reads only the last stage's output and runs there.
PP_REFUSED_SPECULATIVE_METHODS: tuple[str, ...] = ("dflash", "dspark", "extract_hidden_states")


def perf_problems(path: str, spec: ModelSpec) -> list[str]:
    """The rules between the performance keys, engineKwargs and the model's TP x PP."""
    return [*_speculative_problems(path, spec), *_dcp_problems(path, spec), *_engine_option_problems(path, spec)]


def _vllm(rule: str) -> str:
    return f"vLLM {VLLM_VERSION} refuses to start ({rule})"


def _speculative_problems(path: str, spec: ModelSpec) -> list[str]:
    speculative = spec.engine_kwargs.get("speculative_config")
    if spec.mtp_speculative_tokens is not None and speculative is not None:
        return [
            problem(
                f"{path}.mtpSpeculativeTokens",
                "sets engineKwargs.speculative_config too, and a model has one speculative method"
                + (f" (from profile {spec.profile})" if spec.profile else ""),
                f"mtpSpeculativeTokens={spec.mtp_speculative_tokens}, engineKwargs.speculative_config="
                f"{shown(speculative)}",
                "one of the two",
            )
        ]
    method = speculative.get("method") if isinstance(speculative, Mapping) else None
    if method in PP_REFUSED_SPECULATIVE_METHODS and spec.pipeline_parallel_size > 1:
        return [
            problem(
                f"{path}.engineKwargs.speculative_config",
                _vllm(
                    f"'{method} with pipeline parallel is not supported.', vllm/v1/worker/gpu/model_runner.py "
                    "lines 263-275"
                ),
                f"method {shown(method)} with pipelineParallelSize={spec.pipeline_parallel_size}",
                "pipelineParallelSize 1, or method mtp (mtpSpeculativeTokens), eagle, eagle3 or ngram",
            )
        ]
    return []


def _dcp_problems(path: str, spec: ModelSpec) -> list[str]:
    dcp, tp = spec.decode_context_parallel_size, spec.tensor_parallel_size
    if dcp is None or dcp == 1 or tp % dcp == 0:
        return []
    return [
        problem(
            f"{path}.decodeContextParallelSize",
            _vllm(
                "decode context parallelism reuses the tensor-parallel ranks, 'tp_size must be divisible by "
                "dcp_size', vllm/config/parallel.py lines 547-553"
            ),
            f"decodeContextParallelSize={dcp}, tensorParallelSize={tp}",
            "a divisor of tensorParallelSize: " + ", ".join(str(n) for n in range(1, tp + 1) if tp % n == 0),
        )
    ]


def _engine_option_problems(path: str, spec: ModelSpec) -> list[str]:
    """engineKwargs that vLLM refuses with pipeline parallelism, or without the option they build on."""
    kwargs: Mapping[str, Any] = spec.engine_kwargs
    pp = spec.pipeline_parallel_size
    problems = []
    if kwargs.get("enable_elastic_ep") is True and pp > 1:
        problems.append(
            problem(
                f"{path}.engineKwargs.enable_elastic_ep",
                _vllm("'Elastic EP is not supported with pipeline parallelism', vllm/config/parallel.py lines 876-882"),
                f"true with pipelineParallelSize={pp}",
                "false or unset, or pipelineParallelSize 1",
            )
        )
    if kwargs.get("enable_return_routed_experts") is True and pp > 1:
        problems.append(
            problem(
                f"{path}.engineKwargs.enable_return_routed_experts",
                _vllm(
                    "'--enable-return-routed-experts is incompatible with pipeline parallelism', "
                    "vllm/config/vllm.py lines 1098-1106"
                ),
                f"true with pipelineParallelSize={pp}",
                "false or unset, or pipelineParallelSize 1",
            )
        )
    if kwargs.get("enable_eplb") is True and not spec.enable_expert_parallel:
        problems.append(
            problem(
                f"{path}.engineKwargs.enable_eplb",
                _vllm("'enable_expert_parallel must be True to use EPLB', vllm/config/parallel.py lines 514-521"),
                f"true with expertParallel={shown(spec.enable_expert_parallel)}",
                "expertParallel: true, or enable_eplb false or unset",
            )
        )
    return problems
