"""The capacity planner applied to a stack's models: engine settings from each model's spec, one report per
model on the GPU pool's machine, and the errors and warnings config validation shows.

`infra/planning/capacity.py` does the sizing; this module only reads a `serve_app.spec.ModelSpec` (its fields,
engineKwargs and envVars) into `EngineSettings`, and finds the model's shape in
`infra/planning/architectures.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from infra.catalog import GPU_MEMORY, MachineProfile
from infra.planning.architectures import ARCHITECTURES, architecture_for
from infra.planning.capacity import KV_CACHE_DTYPE_BYTES, CapacityReport, EngineSettings, plan_capacity
from infra.planning.profile_rules import profile_problems
from serve_app.spec import ModelSpec


def settings_for(spec: ModelSpec) -> EngineSettings:
    """The engine settings of a `serve_app.spec.ModelSpec` (fields, engineKwargs and envVars).

    Raises ValueError for an engine option the planner cannot size (message names the option).
    """
    kwargs: Mapping[str, Any] = spec.engine_kwargs
    env: Mapping[str, str] = spec.env_vars
    # kvCacheDtype owns the option; a spec built in code may still carry it in engine_kwargs.
    kv_dtype = str(spec.kv_cache_dtype or kwargs.get("kv_cache_dtype", "auto"))
    if kv_dtype not in KV_CACHE_DTYPE_BYTES:
        raise ValueError(
            f"{'kvCacheDtype' if spec.kv_cache_dtype else 'engineKwargs.kv_cache_dtype'} {kv_dtype!r} is not sized "
            f"by the capacity planner (known: {', '.join(KV_CACHE_DTYPE_BYTES)})"
        )
    quantization = kwargs.get("quantization")
    weight_format = "fp8" if quantization == "fp8" else None
    if quantization not in (None, "fp8"):
        raise ValueError(
            f"engineKwargs.quantization {quantization!r} is not sized by the capacity planner (known: fp8)"
        )
    for name in ("block_size", "kv_cache_memory_bytes"):
        value = kwargs.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(
                f"engineKwargs.{name} {value!r} is not a positive whole number the capacity planner can size"
            )
    partition = env.get("VLLM_PP_LAYER_PARTITION")
    try:
        layer_partition = tuple(int(part) for part in partition.split(",")) if partition else None
    except ValueError:
        raise ValueError(
            f"envVars.VLLM_PP_LAYER_PARTITION {partition!r} is not a comma-separated list of layer counts"
        ) from None
    return EngineSettings(
        tensor_parallel_size=spec.tensor_parallel_size,
        pipeline_parallel_size=spec.pipeline_parallel_size,
        max_model_len=spec.max_model_len,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        max_num_seqs=spec.max_num_seqs,
        kv_cache_dtype=kv_dtype,
        weight_format=weight_format,
        block_size=kwargs.get("block_size"),
        cuda_graphs=not kwargs.get("enforce_eager", False)
        and env.get("VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS", "1") != "0",
        kv_cache_memory_bytes=kwargs.get("kv_cache_memory_bytes"),
        pp_layer_partition=layer_partition,
        allow_long_max_model_len=env.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "").lower() in ("1", "true"),
        mtp_speculative_tokens=spec.mtp_speculative_tokens or 0,
        expert_parallel=bool(spec.enable_expert_parallel),
        decode_context_parallel_size=spec.decode_context_parallel_size or 1,
    )


def model_reports(
    models: Sequence[ModelSpec], machine: MachineProfile
) -> list[tuple[int, ModelSpec, CapacityReport | None, str | None]]:
    """(index, spec, report or None, why not) for each model of a stack on the GPU pool's machine profile."""
    gpu = GPU_MEMORY.get(machine.gke_accelerator)
    results: list[tuple[int, ModelSpec, CapacityReport | None, str | None]] = []
    for index, spec in enumerate(models):
        if gpu is None:
            results.append((index, spec, None, f"no GPU memory profile for {machine.gke_accelerator}"))
            continue
        try:
            arch = architecture_for(spec)
            settings = settings_for(spec)
        except (ValueError, OSError) as error:
            results.append((index, spec, None, str(error)))
            continue
        if arch is None:
            results.append(
                (
                    index,
                    spec,
                    None,
                    f"no known architecture for source {spec.model_source!r} (built in: "
                    f"{', '.join(a.name for a in ARCHITECTURES.values())}; or set preset deepseek-r1 for a "
                    "mirrored R1)",
                )
            )
            continue
        results.append((index, spec, plan_capacity(arch, gpu, settings), None))
    return results


def capacity_findings(
    models: Sequence[ModelSpec], machine: MachineProfile, key: str = "llmserve:models"
) -> tuple[list[str], list[str]]:
    """(errors, warnings) for config validation: models that cannot start on the pool's GPUs are errors."""
    errors: list[str] = []
    warnings: list[str] = []
    for index, spec, report, why_not in model_reports(models, machine):
        where = f"{key}[{index}]"
        if spec.accelerator_type != machine.ray_accelerator:
            continue  # reported by serving_problems; its GPUs would not be these
        if report is None:
            warnings.append(f"{where}: capacity not checked: {why_not}")
            continue
        problems = [*report.problems, *profile_problems(report.architecture, report.settings)]
        errors += [problem.text(where) for problem in problems if not problem.warning]
        warnings += [problem.text(where) for problem in problems if problem.warning]
    return errors, warnings


def profile_json(spec: ModelSpec, report: CapacityReport | None) -> dict:
    """The `profile` entry of a model in capacity.json: the profile's name ("none", a name of
    `serve_app.profiles.PROFILES`, or "custom" for keys set without one), the four settings in force, and when any
    is set, what the planner predicts with them and without them (vLLM's defaults)."""
    settings = report.settings if report is not None else _spec_options(spec)
    options = {
        "kv_cache_dtype": settings.kv_cache_dtype,
        "mtp_speculative_tokens": settings.mtp_speculative_tokens,
        "expert_parallel": settings.expert_parallel,
        "decode_context_parallel_size": settings.decode_context_parallel_size,
    }
    default = replace(
        settings, kv_cache_dtype="auto", mtp_speculative_tokens=0, expert_parallel=False, decode_context_parallel_size=1
    )
    name = spec.profile or ("none" if settings == default else "custom")
    entry: dict = {"name": name, "settings": options, "without_profile": None, "kv_tokens_ratio": None}
    if report is not None and settings != default:
        baseline = plan_capacity(report.architecture, report.gpu, default, suggest=False)
        entry["without_profile"] = {
            "kv_tokens": baseline.kv_tokens,
            "concurrency_at_full_context": round(baseline.concurrency, 2),
            "weights_gib": round(baseline.weight_bytes_per_gpu / 1024**3, 2),
        }
        entry["kv_tokens_ratio"] = round(report.kv_tokens / baseline.kv_tokens, 2) if baseline.kv_tokens else None
    return entry


def _spec_options(spec: ModelSpec) -> EngineSettings:
    """The performance options of a model the planner could not size (no report)."""
    return EngineSettings(
        kv_cache_dtype=str(spec.kv_cache_dtype or spec.engine_kwargs.get("kv_cache_dtype", "auto")),
        mtp_speculative_tokens=spec.mtp_speculative_tokens or 0,
        expert_parallel=bool(spec.enable_expert_parallel),
        decode_context_parallel_size=spec.decode_context_parallel_size or 1,
    )
