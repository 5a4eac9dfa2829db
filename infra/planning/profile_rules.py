"""The rules of the performance settings that need the model's architecture: what vLLM 0.29 refuses at engine start
for the model's shape, each problem naming the key, the value and the vLLM file and lines of the rule.

The rules that need only the model's keys (DCP divides TP, options refused under pipeline parallelism) are in
serve_app/spec/perf_rules.py. Paths are of the vllm package of vLLM 0.29.0 (vllm-project/vllm at tag v0.29.0).
"""

from __future__ import annotations

from infra.planning.architectures import Architecture
from infra.planning.capacity import EngineSettings, Problem

# The MLA attention backends vLLM 0.29 tries on Hopper, with the KV cache types each accepts: FLASH_ATTN_MLA
# (vllm/v1/attention/backends/mla/flashattn_mla.py lines 45-49), FLASHMLA (flashmla.py lines 48-54) and TRITON_MLA
# (triton_mla.py lines 132-138); FLASHINFER_MLA accepts the same as FLASHMLA but runs on Blackwell only
# (flashinfer_mla.py lines 153-159, 178-179). A type none of them accepts leaves no backend, and vLLM refuses to
# start ("kv_cache_dtype not supported", vllm/v1/attention/backend.py lines 289-290).
MLA_KV_CACHE_DTYPES: tuple[str, ...] = ("auto", "bfloat16", "float16", "fp8", "fp8_e4m3")


def profile_problems(arch: Architecture, settings: EngineSettings) -> list[Problem]:
    """The problems of one model's performance settings with its architecture (errors, and warnings)."""
    return [
        *_kv_cache_problems(arch, settings),
        *_mtp_problems(arch, settings),
        *_expert_parallel_problems(arch, settings),
        *_dcp_problems(arch, settings),
    ]


def _kv_cache_problems(arch: Architecture, settings: EngineSettings) -> list[Problem]:
    dtype = settings.kv_cache_dtype
    if arch.attention != "mla" or dtype in MLA_KV_CACHE_DTYPES:
        return []
    return [
        Problem(
            "kvCacheDtype",
            f"no MLA attention backend of vLLM 0.29 accepts it for {arch.name}, so vLLM refuses to start "
            "(vllm/v1/attention/backends/mla/flashmla.py lines 48-54, triton_mla.py lines 132-138)",
            dtype,
            ", ".join(dtype for dtype in MLA_KV_CACHE_DTYPES if dtype != "float16"),
        )
    ]


def _mtp_problems(arch: Architecture, settings: EngineSettings) -> list[Problem]:
    tokens = settings.mtp_speculative_tokens
    if not tokens:
        return []
    if not arch.mtp_layers:
        return [
            Problem(
                "mtpSpeculativeTokens",
                f"{arch.name} has no multi-token-prediction layer (config.json num_nextn_predict_layers), so vLLM "
                "has no MTP draft for it and refuses method mtp (\"Unsupported speculative method: 'mtp'\", "
                "vllm/config/speculative.py lines 1305-1328)",
                f"{tokens}",
                "unset (off); MTP needs DeepSeek-V3/R1 or another checkpoint with MTP layers",
            )
        ]
    if tokens > arch.mtp_layers:
        return [
            Problem(
                "mtpSpeculativeTokens",
                f"{arch.name} has {arch.mtp_layers} MTP layer, which vLLM runs again for each further draft token and "
                'warns "may result in lower acceptance rate" (vllm/config/speculative.py lines 1313-1321); '
                "measure before keeping it",
                f"{tokens}",
                f"{arch.mtp_layers} (one forward of each MTP layer), or more once a benchmark shows the gain",
                warning=True,
            )
        ]
    return []


def _expert_parallel_problems(arch: Architecture, settings: EngineSettings) -> list[Problem]:
    if not settings.expert_parallel or arch.n_routed_experts:
        return []
    return [
        Problem(
            "expertParallel",
            f"{arch.name} is not a mixture-of-experts model, and vLLM refuses expert parallelism for it ('Number of "
            "experts in the model must be greater than 0 when expert parallelism is enabled.', "
            "vllm/config/model.py lines 1360-1365, 1420-1421)",
            "true",
            "false or unset",
        )
    ]


def _dcp_problems(arch: Architecture, settings: EngineSettings) -> list[Problem]:
    """Decode context parallelism for GQA models (MLA has no rule beyond dividing TP): vllm/config/model.py lines
    1432-1461."""
    dcp, tp = settings.decode_context_parallel_size, settings.tensor_parallel_size
    if dcp == 1 or arch.attention == "mla":
        return []
    kv_heads = arch.num_kv_heads
    largest = tp // kv_heads
    if tp > kv_heads and dcp <= largest and (arch.num_heads // kv_heads) % dcp == 0:
        return []
    allowed = [str(n) for n in range(2, largest + 1) if (arch.num_heads // kv_heads) % n == 0 and tp % n == 0]
    return [
        Problem(
            "decodeContextParallelSize",
            f"for a GQA model vLLM needs tensorParallelSize above the {kv_heads} KV heads of {arch.name}, "
            f"decodeContextParallelSize at most tensorParallelSize / {kv_heads} and dividing its "
            f"{arch.num_heads // kv_heads} query heads per KV head, or refuses to start "
            "(vllm/config/model.py lines 1432-1461)",
            f"decodeContextParallelSize={dcp}, tensorParallelSize={tp}",
            ", ".join(allowed) + " or 1" if allowed else "1 (unset) at this tensorParallelSize",
        )
    ]
