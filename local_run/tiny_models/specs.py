"""The tiny model of each architecture (its transformers config class, its config and vLLM's class name),
and the seed of every build."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

SEED = 0
"""Seed of the weights and of the tokenizer corpus: the same inputs give byte-identical files."""


@dataclass(frozen=True)
class TinySpec:
    """How one architecture is built: the transformers config class, its sizes and vLLM's class name."""

    config_class: str
    hf_architecture: str
    config: Mapping[str, Any]


_COMMON: Mapping[str, Any] = MappingProxyType(
    {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "tie_word_embeddings": False}
)

SPECS: Mapping[str, TinySpec] = MappingProxyType(
    {
        "deepseek_v3": TinySpec(
            "DeepseekV3Config",
            "DeepseekV3ForCausalLM",
            MappingProxyType(
                {
                    **_COMMON,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 2,
                    # Layer 0 dense, layer 1 MoE: both of R1's MLP kinds.
                    "first_k_dense_replace": 1,
                    "moe_intermediate_size": 64,
                    "n_routed_experts": 4,
                    "n_shared_experts": 1,
                    "num_experts_per_tok": 2,
                    # Two groups of two experts, one group picked: R1's grouped routing (8 groups, top 4).
                    "n_group": 2,
                    "topk_group": 1,
                    "routed_scaling_factor": 2.5,
                    "norm_topk_prob": True,
                    # transformers 5 does not write these by default; without "noaux_tc" vLLM creates no
                    # e_score_correction_bias and the load fails with a KeyError.
                    "topk_method": "noaux_tc",
                    "scoring_func": "sigmoid",
                    # vLLM's CPU MLA backend supports only R1's latent sizes (512 + 64).
                    "q_lora_rank": 64,
                    "kv_lora_rank": 512,
                    "qk_rope_head_dim": 64,
                    "qk_nope_head_dim": 128,
                    "v_head_dim": 128,
                    # R1's context and YaRN rope (mscale changes MLA's softmax scale).
                    "max_position_embeddings": 163840,
                    "rope_parameters": {
                        "rope_type": "yarn",
                        "rope_theta": 10000.0,
                        "factor": 40.0,
                        "original_max_position_embeddings": 4096,
                        "beta_fast": 32,
                        "beta_slow": 1,
                        "mscale": 1.0,
                        "mscale_all_dim": 1.0,
                    },
                    # No multi-token-prediction layer: R1's MTP weights are only used for speculative
                    # decoding, which the stacks do not configure.
                    "num_mtp_layers": 0,
                }
            ),
        ),
        "qwen2": TinySpec(
            "Qwen2Config",
            "Qwen2ForCausalLM",
            MappingProxyType(
                {
                    **_COMMON,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 1,
                    "max_position_embeddings": 131072,
                    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
                    "use_sliding_window": False,
                }
            ),
        ),
        "llama": TinySpec(
            "LlamaConfig",
            "LlamaForCausalLM",
            MappingProxyType(
                {
                    **_COMMON,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 1,
                    "head_dim": 64,
                    "max_position_embeddings": 131072,
                    # Llama 3.1's frequency-dependent rope scaling.
                    "rope_parameters": {
                        "rope_type": "llama3",
                        "rope_theta": 500000.0,
                        "factor": 8.0,
                        "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192,
                    },
                }
            ),
        ),
    }
)
