"""Per-model defaults that a stack gets without writing them, keyed by the model's weights.

A preset only fills fields the stack config leaves unset; anything written in the config wins. The DeepSeek-R1
values follow Ray's "Deploy a large-size LLM" / "Serve DeepSeek" tutorials (ray-project/ray,
doc/source/serve/tutorials/serve-deepseek.md) and vLLM 0.29's engine arguments: TP8 × PP2 on 2 × 8 H100-80GB,
FP8 weights (≈690 GB), MLA KV cache; docs/capacity-and-cost.md shows the arithmetic behind them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Preset:
    """Defaults for one family of models.

    `fields` maps `ModelSpec` attribute names to values; `env_vars` are merged under the model's own
    `envVars`; `min_gpus_per_replica` turns a topology that cannot hold the weights into a config error
    instead of an out-of-memory crash an hour into a deployment.
    """

    name: str
    description: str
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    env_vars: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    min_gpus_per_replica: int = 1


DEEPSEEK_R1 = Preset(
    name="deepseek-r1",
    description="DeepSeek-R1 (671B MoE, FP8): reference engine settings, long start-up timeouts",
    fields=MappingProxyType(
        {
            # 32k covers R1's long reasoning traces; ≈29 concurrent full-length requests fit in the KV
            # budget of 16 × H100 (vLLM's "Maximum concurrency" log in Ray's tutorial; the capacity planner
            # reproduces it, tests/planning/test_capacity.py).
            "max_model_len": 32768,
            "max_num_seqs": 64,
            # Set explicitly: vLLM picks H100 defaults only when the process that builds the engine
            # config sees the GPU (vllm/engine/arg_utils.py, the usage-context defaults), and the Serve
            # replica actor holds none.
            "max_num_batched_tokens": 8192,
            "gpu_memory_utilization": 0.92,
            "enable_chunked_prefill": True,
            "enable_prefix_caching": True,
            # Without it `<think>` stays inside `content` (ray-project/ray#53324). `enable_reasoning` no
            # longer exists in vLLM 0.29.
            "reasoning_parser": "deepseek_r1",
            # Serve LLM's 10 s / 10 s restarts a replica whose reload costs tens of minutes.
            "health_check_period_s": 30,
            "health_check_timeout_s": 60,
        }
    ),
    env_vars=MappingProxyType(
        {
            # Download (≈690 GB per node) + engine init; Ray's default is 3600
            # (ray/llm/_internal/serve/constants.py).
            "RAYLLM_ENGINE_START_TIMEOUT_S": "7200",
            # 163 shards load for longer than vLLM's 600 s default (vllm/envs.py; vllm-project/vllm#35547).
            "VLLM_ENGINE_READY_TIMEOUT_S": "5400",
            # Xet's high-performance mode for the Hub download (huggingface_hub >= 1.x; the old
            # HF_HUB_ENABLE_HF_TRANSFER only prints a deprecation warning there).
            "HF_XET_HIGH_PERFORMANCE": "1",
        }
    ),
    # ≈690 GB of weights: 8 × H200-141GB is the smallest single-node fit, 16 × H100-80GB the usual one.
    min_gpus_per_replica=8,
)

DEEPSEEK_R1_DISTILL = Preset(
    name="deepseek-r1-distill",
    description="DeepSeek-R1 distills (Qwen/Llama based): the R1 reasoning parser",
    fields=MappingProxyType({"reasoning_parser": "deepseek_r1"}),
)

PRESETS: Mapping[str, Preset] = MappingProxyType({preset.name: preset for preset in (DEEPSEEK_R1, DEEPSEEK_R1_DISTILL)})
# The values of the `preset` key: "auto" picks by `source`, "none" applies nothing.
PRESET_CHOICES: tuple[str, ...] = ("auto", "none", *PRESETS)

# Hugging Face ids (compared case-insensitively) that "auto" recognises. R1-0528 is the same architecture
# and size as R1 and uses the same reasoning parser.
_R1_SOURCES = frozenset({"deepseek-ai/deepseek-r1", "deepseek-ai/deepseek-r1-0528"})
_R1_DISTILL_PREFIX = "deepseek-ai/deepseek-r1-distill-"


def detect_preset(model_source: str) -> Preset | None:
    """The preset that "auto" picks for a weight source, or None.

    Only Hugging Face ids are recognised: a bucket or a local path says nothing reliable about what it
    holds, so mirrored weights name their preset explicitly (``preset: deepseek-r1``).
    """
    source = model_source.strip().rstrip("/").lower()
    if source in _R1_SOURCES:
        return DEEPSEEK_R1
    if source.startswith(_R1_DISTILL_PREFIX):
        return DEEPSEEK_R1_DISTILL
    return None


def resolve_preset(choice: str, model_source: str) -> Preset | None:
    """The preset for a `preset` key value ("auto", "none" or a preset name) and a source."""
    if choice == "auto":
        return detect_preset(model_source)
    if choice == "none":
        return None
    return PRESETS[choice]
