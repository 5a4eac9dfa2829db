"""Capacity planner: does a model fit its replica's GPUs, and how many tokens of KV cache are left?

Pure Python (no Pulumi, no torch), so that the offline plan and `pulumi preview` can refuse a configuration
that cannot start before 16 GPUs are rented. The arithmetic mirrors vLLM 0.29's own sizing:

- weights: each pipeline stage holds its layers (split the way `get_pp_indices` splits them) plus the
  embedding (first stage) or `lm_head` (last stage); tensor-parallel layers are divided TP ways, replicated
  ones are not (DeepSeek's `q_a_proj`/`kv_a_proj_with_mqa`, the MoE router, norms);
- KV bytes per token per GPU: MLA keeps one latent of `kv_lora_rank + qk_rope_head_dim` per layer on every
  TP rank (not split by TP); GQA splits the KV heads over TP and replicates them when TP > kv heads;
- the KV budget per GPU: `ceil(cuda_total x gpu_memory_utilization) - weights - activation/non-torch peak -
  CUDA-graph estimate`, cut into blocks of `block_size` tokens; every pipeline stage is then cut to the
  smallest block count of all stages, so the binding stage sets the capacity of the whole replica;
- concurrency at full context = blocks / ceil(max_model_len / block_size), and the "GPU KV cache size"
  vLLM logs is int(concurrency x max_model_len).
- the performance options (FP8 KV cache, MTP speculative decoding, decode context and expert parallelism) change
  these as infra/planning/engine_features.py says.

`plan_capacity` never raises for a configuration that does not fit: it returns a `CapacityReport` whose
`problems` say what is wrong, which key to change and the numbers. Overheads are estimates (see
`infra.catalog.GPU_MEMORY`); everything else is exact arithmetic on the model's shape, which comes from
infra/planning/architectures.py. A stack's models are read into `EngineSettings` and planned by
infra/planning/model_capacity.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from infra.catalog import GpuMemoryProfile
from infra.planning.architectures import Architecture
from infra.planning.engine_features import blocks_per_sequence, layer_bytes_per_gpu, mtp_kv_layers, mtp_weight_bytes

GIB = 1024**3
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.92  # vllm/config/cache.py in 0.29 (older releases: 0.90)
DEFAULT_BLOCK_SIZE = 16  # CacheConfig.DEFAULT_BLOCK_SIZE; FlashAttention keeps it
FLASHMLA_BLOCK_SIZE = 64  # FlashMLA's only supported kernel block size

# Bytes per element of the KV cache; "auto" is the model's dtype, BF16 for every model here (FP8 DeepSeek too).
KV_CACHE_DTYPE_BYTES: Mapping[str, int] = {
    "auto": 2,
    "bfloat16": 2,
    "float16": 2,
    "half": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
}


# --- engine settings and the report ------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSettings:
    """The vLLM options that decide memory. None means vLLM's default (or the model's, for max_model_len)."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    kv_cache_dtype: str = "auto"
    weight_format: str | None = None  # None: the checkpoint's; "fp8" also means quantization=fp8
    block_size: int | None = None
    cuda_graphs: bool = True  # False with enforce_eager or VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0
    kv_cache_memory_bytes: int | None = None  # bypasses the utilization budget, as in vLLM
    pp_layer_partition: tuple[int, ...] | None = None  # VLLM_PP_LAYER_PARTITION
    allow_long_max_model_len: bool = False  # VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
    overhead_gib: float | None = None  # activation + non-torch + CUDA graphs; None: the GPU's estimate
    # The performance options (infra/planning/engine_features.py says how each changes the memory).
    mtp_speculative_tokens: int = 0  # speculative_config method mtp; 0 = off
    expert_parallel: bool = False  # enable_expert_parallel
    decode_context_parallel_size: int = 1


@dataclass(frozen=True)
class Problem:
    """Something that stops the engine from starting (error) or from doing what the config asks (warning).

    `key` is the model config key to change (camelCase, as in the stack file); `found` and `allowed` carry
    the numbers.
    """

    key: str
    message: str
    found: str
    allowed: str
    warning: bool = False

    def text(self, where: str = "") -> str:
        prefix = f"{where}.{self.key}" if where else self.key
        return f"{prefix}: {self.message}; found {self.found}; allowed: {self.allowed}"


@dataclass(frozen=True)
class StageCapacity:
    index: int
    layers: int
    weight_bytes: int  # per GPU
    kv_bytes_per_token: int  # per GPU
    kv_budget_bytes: int  # per GPU, may be negative
    blocks: int


@dataclass(frozen=True)
class CapacityReport:
    architecture: Architecture
    gpu: GpuMemoryProfile
    settings: EngineSettings
    gpu_memory_utilization: float
    max_model_len: int
    block_size: int
    kv_dtype_bytes: int
    requested_bytes: int  # per GPU: ceil(cuda_total x utilization), or weights + overhead + kv_cache_memory_bytes
    overhead_bytes: int  # per GPU
    stages: tuple[StageCapacity, ...]
    binding_stage: int
    blocks: int  # per replica, after the minimum over stages
    problems: tuple[Problem, ...] = field(default=())

    @property
    def gpus_per_replica(self) -> int:
        return self.settings.tensor_parallel_size * self.settings.pipeline_parallel_size

    @property
    def weight_bytes_per_gpu(self) -> int:
        """Weights on the GPUs of the binding stage."""
        return self.stages[self.binding_stage].weight_bytes

    @property
    def kv_capacity_tokens(self) -> int:
        return self.blocks * self.block_size * self.settings.decode_context_parallel_size

    @property
    def blocks_per_sequence(self) -> int:
        return blocks_per_sequence(self.max_model_len, self.block_size, self.settings.decode_context_parallel_size)

    @property
    def concurrency(self) -> float:
        """Full-context (max_model_len) sequences the KV cache holds at once (vLLM's "Maximum concurrency")."""
        return self.blocks / self.blocks_per_sequence

    @property
    def kv_tokens(self) -> int:
        """vLLM's logged "GPU KV cache size: N tokens" = int(concurrency x max_model_len)."""
        return int(self.concurrency * self.max_model_len)

    @property
    def headroom_bytes(self) -> int:
        """KV memory per GPU of the binding stage left after one full-context sequence (negative: refused)."""
        stage = self.stages[self.binding_stage]
        return stage.kv_budget_bytes - self.blocks_per_sequence * self.block_size * stage.kv_bytes_per_token

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(problem for problem in self.problems if not problem.warning)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(problem for problem in self.problems if problem.warning)

    def as_json(self) -> dict:
        def gib(value: int) -> float:
            return round(value / GIB, 2)

        return {
            "architecture": self.architecture.name,
            "gpu": self.gpu.gke_accelerator,
            "tensor_parallel_size": self.settings.tensor_parallel_size,
            "pipeline_parallel_size": self.settings.pipeline_parallel_size,
            "gpus_per_replica": self.gpus_per_replica,
            "weight_format": self.settings.weight_format or self.architecture.weight_format,
            "kv_cache_dtype": self.settings.kv_cache_dtype,
            "mtp_speculative_tokens": self.settings.mtp_speculative_tokens,
            "expert_parallel": self.settings.expert_parallel,
            "decode_context_parallel_size": self.settings.decode_context_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.settings.max_num_seqs,
            "block_size": self.block_size,
            "per_gpu_gib": {
                "cuda_total": self.gpu.cuda_total_gib,
                "requested": gib(self.requested_bytes),
                "weights": gib(self.weight_bytes_per_gpu),
                "overhead": gib(self.overhead_bytes),
                "kv_cache": gib(self.stages[self.binding_stage].kv_budget_bytes),
                "headroom": gib(self.headroom_bytes),
            },
            "stages": [
                {
                    "layers": stage.layers,
                    "weights_gib": gib(stage.weight_bytes),
                    "kv_bytes_per_token": stage.kv_bytes_per_token,
                    "kv_cache_gib": gib(stage.kv_budget_bytes),
                    "blocks": stage.blocks,
                }
                for stage in self.stages
            ],
            "binding_stage": self.binding_stage,
            "kv_cache_blocks": self.blocks,
            "kv_tokens": self.kv_tokens,
            "concurrency_at_full_context": round(self.concurrency, 2),
            "errors": [problem.text() for problem in self.errors],
            "warnings": [problem.text() for problem in self.warnings],
        }


def pp_partition(num_layers: int, pp: int, override: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Layers per pipeline stage as vLLM's `get_pp_indices` splits them: equal shares, the remainder one
    layer each to the stages just before the last (61 / 2 -> 31, 30; 61 / 4 -> 15, 15, 16, 15)."""
    if override is not None:
        if len(override) != pp or sum(override) != num_layers or min(override) < 1:
            raise ValueError(
                f"VLLM_PP_LAYER_PARTITION {','.join(map(str, override))} must list {pp} positive "
                f"layer counts that sum to {num_layers}"
            )
        return tuple(override)
    parts = [num_layers // pp] * pp
    for index in range(2, num_layers % pp + 2):
        parts[-index] += 1
    return tuple(parts)


def plan_capacity(
    arch: Architecture, gpu: GpuMemoryProfile, settings: EngineSettings, suggest: bool = True
) -> CapacityReport:
    """Size one replica of `arch` on GPUs of kind `gpu` with `settings` (see the module docstring).

    With `suggest`, a replica that does not fit searches the smallest deeper pipeline that would.
    """
    tp, pp = settings.tensor_parallel_size, settings.pipeline_parallel_size
    if tp < 1 or pp < 1:
        raise ValueError(f"tensor and pipeline parallel sizes must be >= 1; found {tp} x {pp}")
    dcp = settings.decode_context_parallel_size
    if dcp < 1 or tp % dcp:
        raise ValueError(f"decode context parallel size {dcp} must divide the tensor parallel size {tp}, as in vLLM")
    if settings.mtp_speculative_tokens < 0:
        raise ValueError(f"MTP speculative tokens must be 0 or more; found {settings.mtp_speculative_tokens}")
    if settings.weight_format is not None and settings.weight_format != arch.weight_format:
        arch = replace(arch, weight_format=settings.weight_format)
    util = settings.gpu_memory_utilization or VLLM_DEFAULT_GPU_MEMORY_UTILIZATION
    max_len = settings.max_model_len or arch.max_positions
    kv_dtype_bytes = KV_CACHE_DTYPE_BYTES[settings.kv_cache_dtype]
    block_size = settings.block_size or (
        FLASHMLA_BLOCK_SIZE if arch.attention == "mla" and gpu.flashmla else DEFAULT_BLOCK_SIZE
    )
    problems = _shape_problems(arch, tp, pp) + _limit_problems(arch, settings, max_len)

    overhead_gib = (
        settings.overhead_gib
        if settings.overhead_gib is not None
        else (gpu.activation_overhead_gib + (gpu.cudagraph_overhead_gib if settings.cuda_graphs else 0.0))
    )
    overhead = round(overhead_gib * GIB)
    cuda_total = round(gpu.cuda_total_gib * GIB)
    requested = math.ceil(cuda_total * util)

    partition, partition_problems = _partition(arch, settings)
    problems += partition_problems
    fixed_budget = settings.kv_cache_memory_bytes
    stages = _stage_capacities(
        arch,
        partition,
        settings,
        kv_dtype_bytes,
        block_size,
        lambda weights: fixed_budget if fixed_budget is not None else requested - weights - overhead,
    )
    binding = min(range(pp), key=lambda index: (stages[index].blocks, -stages[index].weight_bytes))
    blocks = stages[binding].blocks
    if fixed_budget is not None:
        requested = max(stage.weight_bytes for stage in stages) + overhead + fixed_budget
    report = CapacityReport(
        arch, gpu, settings, util, max_len, block_size, kv_dtype_bytes, requested, overhead, stages, binding, blocks
    )
    problems += _memory_problems(report, cuda_total, suggest)
    return replace(report, problems=tuple(problems))


def _partition(arch: Architecture, settings: EngineSettings) -> tuple[tuple[int, ...], list[Problem]]:
    """Layers per stage, and the problem with VLLM_PP_LAYER_PARTITION if it cannot be used (then the default
    split stands in, so that the rest can still be sized)."""
    pp = settings.pipeline_parallel_size
    try:
        return pp_partition(arch.num_layers, pp, settings.pp_layer_partition), []
    except ValueError as error:
        problem = Problem(
            "envVars",
            f"{error}, or vLLM refuses to start",
            f"VLLM_PP_LAYER_PARTITION={','.join(map(str, settings.pp_layer_partition or ()))}",
            f"{pp} layer counts that sum to {arch.num_layers}, or unset",
        )
        return pp_partition(arch.num_layers, pp), [problem]


def _stage_capacities(
    arch: Architecture,
    partition: tuple[int, ...],
    settings: EngineSettings,
    kv_dtype_bytes: int,
    block_size: int,
    kv_budget: Callable[[int], int],
) -> tuple[StageCapacity, ...]:
    """Weights, KV bytes per token and KV blocks per GPU of each pipeline stage; `kv_budget(weights)` is the
    KV memory per GPU left beside a stage's weights."""
    pp, tp, ep = len(partition), settings.tensor_parallel_size, settings.expert_parallel
    mtp = settings.mtp_speculative_tokens
    stages = []
    first_layer = 0
    for index, layers in enumerate(partition):
        weights = sum(layer_bytes_per_gpu(arch, layer, tp, ep) for layer in range(first_layer, first_layer + layers))
        kv_layers = layers
        if index == 0:
            weights += arch.embedding_bytes_per_gpu(tp)
        if index == pp - 1:
            weights += arch.hidden_size * 2  # final norm
            if not (arch.tie_word_embeddings and pp == 1):
                weights += arch.embedding_bytes_per_gpu(tp)  # lm_head
            if mtp:
                weights += mtp_weight_bytes(arch, tp, pp, ep)
                kv_layers += mtp_kv_layers(arch, mtp)
        per_token = kv_layers * arch.kv_bytes_per_token_per_layer(tp, kv_dtype_bytes)
        budget = kv_budget(weights)
        # A stage without layers holds no KV cache (and is refused: see _limit_problems).
        stages.append(
            StageCapacity(
                index,
                layers,
                weights,
                per_token,
                budget,
                max(0, budget) // (per_token * block_size) if per_token else 0,
            )
        )
        first_layer += layers
    return tuple(stages)


def _limit_problems(arch: Architecture, settings: EngineSettings, max_len: int) -> list[Problem]:
    """The model's own limits: no more pipeline stages than layers, no context longer than its positions."""
    pp = settings.pipeline_parallel_size
    problems = []
    if pp > arch.num_layers:
        problems.append(
            Problem(
                "pipelineParallelSize",
                f"more pipeline stages than {arch.name}'s {arch.num_layers} layers, so some stage "
                "would hold none and vLLM refuses to start",
                f"{pp}",
                f"{arch.num_layers} or less",
            )
        )
    if max_len > arch.max_positions:
        problems.append(
            Problem(
                "maxModelLen",
                f"longer than {arch.name}'s max_position_embeddings"
                + (
                    " (allowed only because VLLM_ALLOW_LONG_MAX_MODEL_LEN=1; outputs past it are likely garbage)"
                    if settings.allow_long_max_model_len
                    else ", so vLLM refuses to start"
                ),
                f"{max_len}",
                f"{arch.max_positions} or less",
                warning=settings.allow_long_max_model_len,
            )
        )
    return problems


def _shape_problems(arch: Architecture, tp: int, pp: int) -> list[Problem]:
    problems = []
    if arch.num_heads % tp:
        divisors = [str(n) for n in range(1, arch.num_heads + 1) if arch.num_heads % n == 0 and n <= 16]
        problems.append(
            Problem(
                "tensorParallelSize",
                f"vLLM needs the {arch.num_heads} attention heads of {arch.name} to divide evenly over the TP ranks",
                f"{tp}",
                ", ".join(divisors),
            )
        )
    elif arch.attention == "gqa" and arch.num_kv_heads % tp and tp % arch.num_kv_heads:
        problems.append(
            Problem(
                "tensorParallelSize",
                f"the {arch.num_kv_heads} KV heads of {arch.name} can be "
                "neither split nor replicated evenly over the TP ranks",
                f"{tp}",
                f"a divisor or a multiple of {arch.num_kv_heads}",
            )
        )
    if pp > arch.num_layers:
        problems.append(
            Problem(
                "pipelineParallelSize",
                f"more stages than {arch.name}'s {arch.num_layers} layers",
                f"{pp}",
                f"1..{arch.num_layers}",
            )
        )
    return problems


def _gib(value: int) -> str:
    return f"{value / GIB:.1f} GiB"


def _stage_suffix(index: int, pp: int) -> str:
    """Which stage a message is about, when there is more than one."""
    return "" if pp == 1 else f" (pipeline stage {index + 1} of {pp})"


def _memory_problems(report: CapacityReport, cuda_total: int, suggest: bool) -> list[Problem]:
    arch, settings, gpu = report.architecture, report.settings, report.gpu
    tp, pp = settings.tensor_parallel_size, settings.pipeline_parallel_size
    heaviest = max(report.stages, key=lambda stage: stage.weight_bytes)
    topology = f"tensorParallelSize={tp}, pipelineParallelSize={pp}"
    fixed = heaviest.weight_bytes + report.overhead_bytes
    if fixed > cuda_total:
        key, hint = _more_gpus_hint(report, suggest)
        return [
            Problem(
                key,
                f"{arch.name}'s weights need {_gib(heaviest.weight_bytes)} per GPU"
                f"{_stage_suffix(heaviest.index, pp)} plus ≈{_gib(report.overhead_bytes)} of engine overhead, "
                "more than the "
                f"{_gib(cuda_total)} a {gpu.gke_accelerator} has",
                topology,
                hint,
            )
        ]
    if settings.kv_cache_memory_bytes is None and fixed >= report.requested_bytes:
        return [
            Problem(
                "gpuMemoryUtilization",
                f"leaves no KV cache: {_gib(heaviest.weight_bytes)} of weights per GPU"
                f"{_stage_suffix(heaviest.index, pp)} plus ≈{_gib(report.overhead_bytes)} overhead exceed "
                f"{report.gpu_memory_utilization} x {_gib(cuda_total)} = {_gib(report.requested_bytes)}",
                f"{report.gpu_memory_utilization} with {topology}",
                f"a higher value (at most 0.95 is sensible), or {_more_gpus_hint(report, suggest)[1]}",
            )
        ]
    if report.blocks < report.blocks_per_sequence:
        fits = report.kv_capacity_tokens
        return [
            Problem(
                "maxModelLen",
                f"the KV cache holds {fits} tokens per replica ("
                f"{_gib(report.stages[report.binding_stage].kv_budget_bytes)} per GPU "
                f"at {report.stages[report.binding_stage].kv_bytes_per_token} B per token"
                f"{_stage_suffix(report.binding_stage, pp)}), less than one "
                f"full-context sequence, so vLLM refuses to start",
                f"{report.max_model_len}" + ("" if settings.max_model_len else " (unset: the model's maximum)"),
                f"{fits} or less, or raise gpuMemoryUtilization, use kvCacheDtype fp8 or more GPUs per replica",
            )
        ]
    # maxNumSeqs above the concurrency at full context is not a problem: vLLM runs that many sequences while they
    # are shorter and queues or preempts the rest. The plan's summary notes it (infra/cli/capacity.py model_lines).
    return []


def _more_gpus_hint(report: CapacityReport, suggest: bool) -> tuple[str, str]:
    """(key, allowed): the smallest pipeline depth (same TP) that leaves room for one sequence, if any."""
    settings = report.settings
    deeper = range(settings.pipeline_parallel_size + 1, min(report.architecture.num_layers, 16) + 1)
    for pp in deeper if suggest else ():
        trial = replace(settings, pipeline_parallel_size=pp, pp_layer_partition=None, max_num_seqs=None)
        candidate = plan_capacity(report.architecture, report.gpu, trial, suggest=False)
        if not candidate.errors:
            return (
                "pipelineParallelSize",
                f"tensorParallelSize x pipelineParallelSize >= {settings.tensor_parallel_size * pp} "
                f"(e.g. pipelineParallelSize {pp}), or GPUs with more memory",
            )
    return (
        "tensorParallelSize",
        "more GPUs per replica (tensorParallelSize x pipelineParallelSize), GPUs with more memory, or a "
        "quantized checkpoint",
    )
