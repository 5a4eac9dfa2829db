"""How the performance options change vLLM 0.29's memory per GPU, for the capacity planner (capacity.py).

- FP8 KV cache: one byte per element instead of two (capacity.py's KV_CACHE_DTYPE_BYTES), so half the bytes per
  token and about twice the tokens.
- MTP speculative decoding (DeepSeek-V3/R1's multi-token-prediction layer): vLLM puts the whole draft model on the
  last pipeline stage (vllm/v1/worker/gpu/model_runner.py lines 259-261; the V1 runner likewise,
  vllm/v1/worker/gpu_model_runner.py lines 628-632). Its weights there (`mtp_weight_bytes`): one decoder layer like
  the model's MoE layers (`mtp_block`), `eh_proj`, a plain `nn.Linear(2 x hidden, hidden)` kept in BF16 on every
  rank, three RMSNorms (vllm/model_executor/models/deepseek_mtp.py lines 77-100), and its own `embed_tokens` under
  pipeline parallelism, where vLLM does not share the target's (vllm/v1/worker/gpu/spec_decode/eagle/utils.py
  lines 62-81); its head is replaced by the target's `lm_head` (same file, lines 83-98). Its attention layer keeps
  one more MLA latent per token on that stage (`mtp_kv_layers`), in the same KV cache group as the target's.
- Decode context parallelism (DCP): each of `dcp` tensor-parallel ranks keeps every dcp-th token of a sequence, so
  MLA's latent cache, otherwise replicated on every TP rank, is divided among them: a block of `block_size` slots
  per rank holds `block_size x dcp` tokens, and a sequence of max_model_len tokens needs
  ceil(ceil(max_model_len / dcp) / block_size) blocks (vllm/v1/kv_cache_interface.py lines 464-469,
  vllm/v1/core/kv_cache_utils.py lines 651-658).
- Expert parallelism: the routed experts are placed whole, as evenly as possible, the first ranks taking one more
  when they do not divide (vllm/model_executor/layers/fused_moe/expert_map_manager.py lines 66-69), over the EP
  group of TP x DP ranks (DP is 1 here); the shared expert stays tensor-parallel (DeepseekV2MLP in
  vllm/model_executor/models/deepseek_v2.py lines 240-273). For R1 at TP 8 (256 experts) the bytes per GPU do not
  change; what changes is the traffic (all-to-all instead of all-reduce).
"""

from __future__ import annotations

import math

from infra.planning.architectures import WEIGHT_FORMAT_BYTES, Architecture


def layer_bytes_per_gpu(arch: Architecture, layer: int, tp: int, expert_parallel: bool) -> int:
    """Weights of one layer on the heaviest GPU of its tensor-parallel group, with or without expert parallelism."""
    base = arch.layer_bytes_per_gpu(layer, tp)
    if not expert_parallel or not arch.n_routed_experts or layer < arch.first_k_dense_replace:
        return base
    expert = 3 * arch.hidden_size * arch.moe_intermediate_size
    tp_split = -(-(arch.n_routed_experts + arch.n_shared_experts) * expert // tp)
    whole = -(-arch.n_routed_experts // tp) * expert + -(-arch.n_shared_experts * expert // tp)
    return base + (whole - tp_split) * WEIGHT_FORMAT_BYTES[arch.weight_format]


def mtp_weight_bytes(arch: Architecture, tp: int, pp: int, expert_parallel: bool) -> int:
    """Weights per GPU of the MTP draft model on the last pipeline stage (0 for a model without MTP layers)."""
    if not arch.mtp_layers:
        return 0
    hidden = arch.hidden_size
    per_layer = layer_bytes_per_gpu(arch, arch.num_layers, tp, expert_parallel)  # mtp_block: a MoE decoder layer
    per_layer += 2 * hidden * hidden * 2  # eh_proj, BF16 and replicated
    per_layer += 3 * hidden * 2  # enorm, hnorm, shared_head.norm
    own_embedding = arch.embedding_bytes_per_gpu(tp) if pp > 1 else 0
    return arch.mtp_layers * per_layer + own_embedding


def mtp_kv_layers(arch: Architecture, mtp_speculative_tokens: int) -> int:
    """Attention layers the MTP draft adds to the last stage's KV cache: its own layers, reused for every draft
    token beyond them (vllm/model_executor/models/deepseek_mtp.py lines 210-211)."""
    return arch.mtp_layers if mtp_speculative_tokens else 0


def blocks_per_sequence(max_model_len: int, block_size: int, dcp: int) -> int:
    """Blocks one full-context sequence takes on each GPU: its tokens are split over the `dcp` ranks."""
    tokens_per_rank = math.ceil(max_model_len / dcp) if dcp > 1 else max_model_len
    return -(-tokens_per_rank // block_size)
