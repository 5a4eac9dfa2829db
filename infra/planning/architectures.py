"""Model shapes for the capacity planner: the fields of a model's config.json that decide its memory.

A built-in table of the models this project serves (their config.json values, checked against the published
parameter counts in tests/planning/test_capacity.py), a reader for any Llama, Mistral, Qwen2 or DeepSeek-V2/V3
config.json, and per-GPU byte counts as vLLM 0.29 shards them: tensor-parallel layers are divided TP ways,
replicated ones are not (DeepSeek's `q_a_proj`/`kv_a_proj_with_mqa`, the MoE router, norms); MLA keeps one
latent per token and layer on every TP rank, GQA splits the KV heads over TP. Pure Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve_app.spec import ModelSpec

VOCAB_PADDING = 64  # vocab_parallel_embedding.py pads the vocabulary to a multiple of this before splitting
# Bytes per parameter of the linear layers; embeddings, lm_head, norms and the MoE router stay 2 bytes.
WEIGHT_FORMAT_BYTES: Mapping[str, int] = {"bf16": 2, "fp16": 2, "fp8": 1}


@dataclass(frozen=True)
class Architecture:
    """The fields of a model's config.json that decide its memory, plus its checkpoint format.

    `attention` is "gqa" (Llama/Qwen2 style, K and V per kv head) or "mla" (DeepSeek-V2/V3: one compressed
    latent per token and layer). MoE fields are used by the MLA family only (DeepSeek's layout).
    """

    name: str
    attention: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    weight_format: str = "bf16"
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    moe_intermediate_size: int = 0
    first_k_dense_replace: int = 0
    checkpoint_bytes: int | None = None  # on-disk safetensors total when known; else computed
    mtp_layers: int = 0  # config.json num_nextn_predict_layers: DeepSeek's multi-token-prediction layers

    # -- parameters, for checking the table against published counts --

    def layer_parameters(self, layer: int) -> int:
        replicated, sharded, small = self._layer_parts(layer)
        return replicated + sharded + small

    def parameter_count(self) -> int:
        """Parameters of the main model (DeepSeek's MTP layer, loaded only for MTP speculative decoding, is not
        counted; infra/planning/engine_features.py sizes it)."""
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return sum(self.layer_parameters(layer) for layer in range(self.num_layers)) + embeddings + self.hidden_size

    def stored_bytes(self) -> int:
        """Bytes each node reads when it loads the checkpoint (the whole checkpoint, whatever its stage)."""
        if self.checkpoint_bytes is not None:
            return self.checkpoint_bytes
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        linear = self.parameter_count() - embeddings
        return linear * WEIGHT_FORMAT_BYTES[self.weight_format] + embeddings * 2

    def _layer_parts(self, layer: int, tp: int = 1) -> tuple[int, int, int]:
        """(replicated linear params, TP-sharded linear params per GPU, small BF16 params) of one layer."""
        hidden = self.hidden_size
        if self.attention == "mla":
            q_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            replicated = hidden * (self.kv_lora_rank + self.qk_rope_head_dim)  # kv_a_proj_with_mqa
            small = self.kv_lora_rank + 2 * hidden  # kv_a_layernorm, the two layer norms
            if self.q_lora_rank:
                replicated += hidden * self.q_lora_rank  # q_a_proj
                sharded = self.q_lora_rank * self.num_heads * q_head  # q_b_proj
                small += self.q_lora_rank  # q_a_layernorm
            else:
                sharded = hidden * self.num_heads * q_head  # q_proj
            sharded += self.kv_lora_rank * self.num_heads * (self.qk_nope_head_dim + self.v_head_dim)  # kv_b_proj
            sharded += self.num_heads * self.v_head_dim * hidden  # o_proj
            if self.n_routed_experts and layer >= self.first_k_dense_replace:
                experts = self.n_routed_experts + self.n_shared_experts
                sharded += experts * 3 * hidden * self.moe_intermediate_size
                small += self.n_routed_experts * hidden + self.n_routed_experts  # router and its bias
            else:
                sharded += 3 * hidden * self.intermediate_size
            return replicated, _split(sharded, tp), small
        q_width = self.num_heads * self.head_dim
        kv_width = _kv_heads_per_rank(self.num_kv_heads, tp) * self.head_dim
        sharded = _split(hidden * q_width + q_width * hidden + 3 * hidden * self.intermediate_size, tp)
        sharded += 2 * hidden * kv_width  # k_proj, v_proj: split over TP, replicated beyond the kv heads
        small = 2 * hidden
        if self.qkv_bias:
            small += _split(q_width, tp) + 2 * kv_width
        return 0, sharded, small

    # -- per GPU --

    def layer_bytes_per_gpu(self, layer: int, tp: int) -> int:
        replicated, sharded, small = self._layer_parts(layer, tp)
        return (replicated + sharded) * WEIGHT_FORMAT_BYTES[self.weight_format] + small * 2

    def embedding_bytes_per_gpu(self, tp: int) -> int:
        """One vocab-parallel table (embed_tokens or lm_head) on one GPU, BF16."""
        padded = -(-self.vocab_size // VOCAB_PADDING) * VOCAB_PADDING
        return -(-padded // tp) * self.hidden_size * 2

    def kv_bytes_per_token_per_layer(self, tp: int, kv_dtype_bytes: int) -> int:
        if self.attention == "mla":
            return (self.kv_lora_rank + self.qk_rope_head_dim) * kv_dtype_bytes
        return 2 * _kv_heads_per_rank(self.num_kv_heads, tp) * self.head_dim * kv_dtype_bytes


def _split(params: int, tp: int) -> int:
    return -(-params // tp)


def _kv_heads_per_rank(kv_heads: int, tp: int) -> int:
    return max(1, kv_heads // tp)


def _dense(
    name: str,
    *,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    vocab: int,
    qkv_bias: bool,
    checkpoint_bytes: int | None = None,
) -> Architecture:
    return Architecture(
        name=name,
        attention="gqa",
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=intermediate,
        vocab_size=vocab,
        max_positions=131072,
        qkv_bias=qkv_bias,
        checkpoint_bytes=checkpoint_bytes,
    )


def _deepseek_v3(name: str) -> Architecture:
    return Architecture(
        name=name,
        attention="mla",
        hidden_size=7168,
        num_layers=61,
        num_heads=128,
        num_kv_heads=128,
        head_dim=192,
        intermediate_size=18432,
        vocab_size=129280,
        max_positions=163840,
        weight_format="fp8",
        q_lora_rank=1536,
        kv_lora_rank=512,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        n_routed_experts=256,
        n_shared_experts=1,
        moe_intermediate_size=2048,
        first_k_dense_replace=3,
        # The checkpoint's index total_size (DeepSeek-V3; R1 has the same tensor layout): MTP layer included.
        checkpoint_bytes=688_586_727_753,
        mtp_layers=1,
    )


# config.json values of each repository (huggingface.co/<repo>/blob/main/config.json). The parameter counts
# they give reproduce the published safetensors counts exactly (tests/planning/test_capacity.py).
ARCHITECTURES: Mapping[str, Architecture] = {
    arch.name.lower(): arch
    for arch in (
        _deepseek_v3("deepseek-ai/DeepSeek-R1"),
        _deepseek_v3("deepseek-ai/DeepSeek-R1-0528"),
        _deepseek_v3("deepseek-ai/DeepSeek-V3"),
        _dense(
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            hidden=1536,
            layers=28,
            heads=12,
            kv_heads=2,
            intermediate=8960,
            vocab=151936,
            qkv_bias=True,
        ),
        _dense(
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
            hidden=3584,
            layers=28,
            heads=28,
            kv_heads=4,
            intermediate=18944,
            vocab=152064,
            qkv_bias=True,
        ),
        _dense(
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
            hidden=5120,
            layers=48,
            heads=40,
            kv_heads=8,
            intermediate=13824,
            vocab=152064,
            qkv_bias=True,
        ),
        _dense(
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            hidden=5120,
            layers=64,
            heads=40,
            kv_heads=8,
            intermediate=27648,
            vocab=152064,
            qkv_bias=True,
        ),
        _dense(
            "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
            hidden=4096,
            layers=32,
            heads=32,
            kv_heads=8,
            intermediate=14336,
            vocab=128256,
            qkv_bias=False,
        ),
        _dense(
            "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
            hidden=8192,
            layers=80,
            heads=64,
            kv_heads=8,
            intermediate=28672,
            vocab=128256,
            qkv_bias=False,
        ),
    )
}
# Short names for the command line: the repository name without the owner, lowercased.
ARCHITECTURE_ALIASES: Mapping[str, str] = {key.split("/", 1)[1]: key for key in ARCHITECTURES}

_DENSE_TYPES = {"llama": False, "mistral": False, "qwen2": True}
_MLA_TYPES = ("deepseek_v2", "deepseek_v3")


def architecture_from_config(config: Mapping[str, Any], name: str) -> Architecture:
    """An `Architecture` from a Hugging Face config.json (Llama, Mistral, Qwen2 or DeepSeek-V2/V3).

    Raises ValueError naming the field that is missing or the model type that is not supported.
    """
    model_type = config.get("model_type")
    quant = config.get("quantization_config") or {}
    weight_format = "fp8" if quant.get("quant_method") == "fp8" else "bf16"
    if model_type in _MLA_TYPES:
        return _mla_architecture(config, name, weight_format)
    if model_type in _DENSE_TYPES:
        return _gqa_architecture(config, name, weight_format)
    supported = ", ".join([*_DENSE_TYPES, *_MLA_TYPES])
    raise ValueError(
        f"{name}: model_type {model_type!r} is not supported by the capacity planner; supported: {supported}"
    )


def _required_fields(config: Mapping[str, Any], name: str) -> Callable[[str], Any]:
    """`need(key)`: the config's value of `key`, or a ValueError naming the model and the missing field."""

    def need(key: str) -> Any:
        if key not in config:
            raise ValueError(f"{name}: config.json has no {key!r} (model_type {config.get('model_type')!r})")
        return config[key]

    return need


def _mla_architecture(config: Mapping[str, Any], name: str, weight_format: str) -> Architecture:
    """DeepSeek-V2/V3: multi-head latent attention, and MoE layers after the first dense ones."""
    need = _required_fields(config, name)
    experts = config.get("n_routed_experts") or 0
    return Architecture(
        name=name,
        attention="mla",
        hidden_size=need("hidden_size"),
        num_layers=need("num_hidden_layers"),
        num_heads=need("num_attention_heads"),
        num_kv_heads=config.get("num_key_value_heads") or 1,
        head_dim=need("qk_nope_head_dim") + need("qk_rope_head_dim"),
        intermediate_size=need("intermediate_size"),
        vocab_size=need("vocab_size"),
        max_positions=need("max_position_embeddings"),
        weight_format=weight_format,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        q_lora_rank=config.get("q_lora_rank") or 0,
        kv_lora_rank=need("kv_lora_rank"),
        qk_nope_head_dim=need("qk_nope_head_dim"),
        qk_rope_head_dim=need("qk_rope_head_dim"),
        v_head_dim=need("v_head_dim"),
        n_routed_experts=experts,
        n_shared_experts=config.get("n_shared_experts") or 0,
        moe_intermediate_size=need("moe_intermediate_size") if experts else 0,
        first_k_dense_replace=config.get("first_k_dense_replace") or 0,
        mtp_layers=config.get("num_nextn_predict_layers") or 0,
    )


def _gqa_architecture(config: Mapping[str, Any], name: str, weight_format: str) -> Architecture:
    """Llama, Mistral, Qwen2: dense layers with grouped-query attention. A config that uses sliding-window
    attention is refused: the planner does not size it."""
    model_type = config["model_type"]
    if config.get("sliding_window") and config.get("use_sliding_window", model_type == "mistral"):
        raise ValueError(
            f"{name}: sliding-window attention (sliding_window {config['sliding_window']}) is not "
            "sized by the capacity planner"
        )
    need = _required_fields(config, name)
    heads = need("num_attention_heads")
    return Architecture(
        name=name,
        attention="gqa",
        hidden_size=need("hidden_size"),
        num_layers=need("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or need("hidden_size") // heads,
        intermediate_size=need("intermediate_size"),
        vocab_size=need("vocab_size"),
        max_positions=need("max_position_embeddings"),
        weight_format=weight_format,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        qkv_bias=bool(config.get("attention_bias", _DENSE_TYPES[model_type])),
    )


def load_architecture(path: Path) -> Architecture:
    """Read a local config.json (or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    return architecture_from_config(json.loads(path.read_text()), name=str(path.parent))


def find_architecture(name: str) -> Architecture | None:
    """A built-in architecture by Hugging Face id or short name (case-insensitive), or None."""
    key = name.strip().rstrip("/").lower()
    return ARCHITECTURES.get(key) or ARCHITECTURES.get(ARCHITECTURE_ALIASES.get(key, ""))


def architecture_for(spec: ModelSpec) -> Architecture | None:
    """The architecture of a ModelSpec: by its Hugging Face id, else by its preset (a mirrored R1 that says
    `preset: deepseek-r1`), else from a config.json in a local `source` folder; None if unknown."""
    arch = find_architecture(spec.model_source)
    if arch is None and spec.preset == "deepseek-r1":
        arch = ARCHITECTURES["deepseek-ai/deepseek-r1"]
    if arch is None and spec.model_source.startswith("/") and Path(spec.model_source, "config.json").is_file():
        arch = load_architecture(Path(spec.model_source))
    return arch
