"""Tiny random-weight stand-ins for the served models, so a stack's real Serve config runs on a laptop CPU.

What it builds: for a model source such as ``deepseek-ai/DeepSeek-R1``, a Hugging Face model directory of
the SAME architecture (``DeepseekV3ForCausalLM``, ``Qwen2ForCausalLM`` or ``LlamaForCausalLM``) but about
0.4-1.2 million random bf16 parameters: hidden size 128, 2 layers, a 512-token byte-level BPE vocabulary
trained here on a generated corpus, a chat template, and the ``<think>`` / ``</think>`` tokens that
vLLM's ``deepseek_r1`` reasoning parser requires. Nothing is downloaded: the build works offline
(``HF_HUB_OFFLINE=1``).

Why the same architecture: vLLM picks its code paths from ``config.json``, so a tiny DeepSeek-V3 model
exercises what DeepSeek-R1 does in production (MLA attention with the 512 + 64 latent KV cache, MoE with
sigmoid scoring, grouped ``noaux_tc`` top-k, a shared expert and a dense first layer, YaRN rope), and a
tiny Qwen2 / Llama model what the R1 distills do. The output is random text; what is tested is that the
stack's engine settings, the reasoning parser, the chat template and the OpenAI API path all work.

How long: about 4 s for the first model in a fresh process on 2 cores, of which ~3.5 s is importing torch
and transformers; each further architecture in the same process takes well under a second. The result
(0.9-2.3 MB) is cached under `default_cache_dir()` by architecture and `BUILD_VERSION`, so later calls
return at once. The same seed gives byte-identical files on every build.

Deploy-time importable: torch, transformers and tokenizers are imported inside the functions that build,
so `architecture_for` works where only the standard library is installed. Example::

    from local_run.tiny_models import default_cache_dir, tiny_model_for

    path = tiny_model_for("deepseek-ai/DeepSeek-R1", default_cache_dir())
    # vllm.LLM(model=str(path), dtype="bfloat16", max_model_len=256, enforce_eager=True)
"""

from __future__ import annotations

import fnmatch
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "ARCHITECTURES",
    "BUILD_VERSION",
    "SUPPORTED",
    "ModelFamily",
    "UnsupportedModelError",
    "architecture_for",
    "build_tiny_model",
    "default_cache_dir",
    "tiny_model_for",
]

BUILD_VERSION = 1
"""Part of the cache key: bump it whenever what `build_tiny_model` writes changes, so old caches are ignored."""

SEED = 0
"""Seed of the weights and of the tokenizer corpus: the same inputs give byte-identical files."""

CACHE_ENV_VAR = "LLMSERVE_CACHE_DIR"
MANIFEST = "tiny_model.json"
"""Written last into a build; its presence marks a complete cache entry."""


class UnsupportedModelError(ValueError):
    """No tiny stand-in exists for a model source (its architecture is not in `SUPPORTED`)."""


@dataclass(frozen=True)
class ModelFamily:
    """Model sources that share one tiny architecture.

    `patterns` and `excluded` are shell-style patterns (`fnmatch`) over the lower-cased Hugging Face id
    ``org/name``; a source belongs to the family when it matches a pattern and no exclusion.
    """

    name: str
    architecture: str
    patterns: tuple[str, ...]
    excluded: tuple[str, ...] = ()

    def matches(self, hf_id: str) -> bool:
        return any(fnmatch.fnmatchcase(hf_id, p) for p in self.patterns) and not any(
            fnmatch.fnmatchcase(hf_id, p) for p in self.excluded
        )


SUPPORTED: tuple[ModelFamily, ...] = (
    ModelFamily(
        "DeepSeek-R1/V3",
        "deepseek_v3",
        ("deepseek-ai/deepseek-r1", "deepseek-ai/deepseek-r1-0528", "deepseek-ai/deepseek-v3*"),
    ),
    ModelFamily(
        "DeepSeek-R1-Distill-Qwen, Qwen2/Qwen2.5",
        "qwen2",
        ("deepseek-ai/deepseek-r1-distill-qwen-*", "qwen/qwen2-*", "qwen/qwen2.5-*"),
        # Same name prefix, other architectures: vision/audio/omni models and the Qwen2 MoE (57B-A14B).
        excluded=("*-vl*", "*-audio*", "*-omni*", "*-a14b*"),
    ),
    ModelFamily(
        "DeepSeek-R1-Distill-Llama, Llama 3",
        "llama",
        ("deepseek-ai/deepseek-r1-distill-llama-*", "meta-llama/*llama-3*"),
        # Llama 3.2 Vision is MllamaForConditionalGeneration.
        excluded=("*vision*",),
    ),
)
"""Which model sources get which tiny architecture, first match wins."""

ARCHITECTURES: tuple[str, ...] = tuple(dict.fromkeys(family.architecture for family in SUPPORTED))


def _supported_summary() -> str:
    return ", ".join(f"{family.name} ({family.architecture})" for family in SUPPORTED)


def _hf_id(model_source: str) -> str:
    """The last two path parts, lower-cased: the HF id of a hub id, a local path or a mirror URI."""
    parts = [part for part in model_source.strip().rstrip("/").split("/") if part]
    return "/".join(parts[-2:]).lower()


def architecture_for(model_source: str) -> str:
    """The tiny architecture (one of `ARCHITECTURES`) standing in for `model_source`.

    Matches the Hugging Face id, i.e. the last two path parts of the source, case-insensitively, so a
    mirror that keeps the id (``gs://bucket/deepseek-ai/DeepSeek-R1``) is recognised too. Raises
    `UnsupportedModelError` naming the source and the supported families.
    """
    hf_id = _hf_id(model_source)
    for family in SUPPORTED:
        if family.matches(hf_id):
            return family.architecture
    raise UnsupportedModelError(
        f"cannot build a tiny stand-in for {model_source!r}: its Hugging Face id {hf_id!r} is not a "
        f"supported model family; supported: {_supported_summary()}. "
        "Name the weights by their Hugging Face id (org/name), or keep that id as the last two path parts "
        "of a mirror."
    )


def default_cache_dir() -> Path:
    """``$LLMSERVE_CACHE_DIR``, or ``~/.cache/llmserve/tiny-models``."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "llmserve" / "tiny-models"


def tiny_model_for(model_source: str, cache_dir: Path | None = None) -> Path:
    """The tiny model directory standing in for `model_source`, built on first use.

    Raises `UnsupportedModelError` when no architecture fits (before importing anything heavy).
    """
    return build_tiny_model(architecture_for(model_source), cache_dir)


# --------------------------------------------------------------------------------------------------
# What is built


@dataclass(frozen=True)
class _TinySpec:
    """How one architecture is built: the transformers config class, its sizes and vLLM's class name."""

    config_class: str
    hf_architecture: str
    config: Mapping[str, Any]


_COMMON: Mapping[str, Any] = MappingProxyType(
    {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "tie_word_embeddings": False}
)

_SPECS: Mapping[str, _TinySpec] = MappingProxyType(
    {
        "deepseek_v3": _TinySpec(
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
        "qwen2": _TinySpec(
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
        "llama": _TinySpec(
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

# Special tokens, in id order: the trainer puts them first, so their ids are stable.
BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
ROLE_TOKENS: Mapping[str, str] = MappingProxyType(
    {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
)
# Plain (not special) added tokens, as in R1's tokenizer: decoding with skip_special_tokens keeps them in
# the text, where the reasoning parser looks for them.
THINK_START, THINK_END = "<think>", "</think>"
VOCAB_SIZE = 512
"""Target vocabulary, special and think tokens included (the trained BPE may come out slightly smaller)."""

# R1's format: BOS, system prompt, user turns, assistant turns closed by EOS; the generation prompt opens
# the reasoning block with "<think>\n" (R1 and its distills force it). Reasoning in earlier assistant
# turns is dropped, as R1's template does. Every stand-in uses it: they stand in for R1 and its distills.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- set content = message['content'] if message['content'] is string else '' -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{- '<|system|>' + content -}}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '<|user|>' + content -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{%- if '</think>' in content -%}{%- set content = content.split('</think>')[-1].lstrip() -%}{%- endif -%}"
    "{{- '<|assistant|>' + content + eos_token -}}"
    "{%- else -%}"
    "{{- raise_exception('the tiny chat template supports the roles system, user and assistant; got '"
    " + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|><think>\\n' -}}{%- endif -%}"
)

# R1's and its distills' recommended sampling defaults (their generation_config.json); vLLM applies them
# to requests that do not set temperature / top_p.
_GENERATION_DEFAULTS: Mapping[str, Any] = MappingProxyType({"do_sample": True, "temperature": 0.6, "top_p": 0.95})

_STALE_PARTIAL_S = 3600


def build_tiny_model(architecture: str, cache_dir: Path | None = None) -> Path:
    """Build (once) the tiny model of `architecture` under `cache_dir` and return its directory.

    The directory, ``<cache_dir>/<architecture>-v<BUILD_VERSION>``, holds config.json,
    model.safetensors (bf16), generation_config.json, tokenizer.json, tokenizer_config.json, the chat
    template and `MANIFEST`. It is built in a temporary sibling and renamed into place, so a killed build
    leaves no partial cache entry, and concurrent builds of the same model are safe (the first rename
    wins). `cache_dir` defaults to `default_cache_dir()`.
    """
    if architecture not in _SPECS:
        raise UnsupportedModelError(
            f"unknown tiny architecture {architecture!r}; supported: {', '.join(ARCHITECTURES)}"
        )
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / f"{architecture}-v{BUILD_VERSION}"
    if (target / MANIFEST).is_file():
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(cache_dir, target.name)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=cache_dir))
    try:
        _build_into(architecture, partial)
        # mkdtemp and safetensors create private files; the cache is read by other processes (Ray workers).
        partial.chmod(0o755)
        for path in partial.iterdir():
            path.chmod(0o644)
        if target.exists() and not (target / MANIFEST).is_file():
            # Not ours to keep: a complete build always has the manifest (it is renamed in whole).
            shutil.rmtree(target)
        try:
            partial.rename(target)
        except OSError:
            if (target / MANIFEST).is_file():  # a concurrent build finished first
                return target
            raise
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return target


def _remove_stale_partials(cache_dir: Path, name: str) -> None:
    """Delete temporary build dirs of `name` left by killed builds (old enough not to be running)."""
    cutoff = time.time() - _STALE_PARTIAL_S
    for leftover in cache_dir.glob(f".{name}.*.partial"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def _build_into(architecture: str, directory: Path) -> None:
    spec = _SPECS[architecture]
    tokenizer = _build_tokenizer(model_max_length=spec.config["max_position_embeddings"])
    tokenizer.save_pretrained(directory)
    # transformers 5 loads a qwen2 model's tokenizer as Qwen2Tokenizer whatever tokenizer_config.json says,
    # and that class adds an "<|endoftext|>" unknown token unless the config sets none (R1's distills set
    # null too): one token more than the model's vocabulary.
    tokenizer_config_path = directory / "tokenizer_config.json"
    tokenizer_config = json.loads(tokenizer_config_path.read_text(encoding="utf-8"))
    _write_json(tokenizer_config_path, {**tokenizer_config, "unk_token": None})
    parameters = _build_model(spec, tokenizer, directory)
    _write_json(
        directory / "generation_config.json",
        {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            **_GENERATION_DEFAULTS,
        },
    )
    _write_json(
        directory / MANIFEST,
        {
            "architecture": architecture,
            "hf_architecture": spec.hf_architecture,
            "build_version": BUILD_VERSION,
            "seed": SEED,
            "parameters": parameters,
            "vocab_size": len(tokenizer),
            "note": "random weights; generated by local_run.tiny_models for local end-to-end runs",
        },
    )


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _build_model(spec: _TinySpec, tokenizer: Any, directory: Path) -> int:
    """Random-init the model (fixed seed, bf16) and save config.json + model.safetensors; its size."""
    import torch
    import transformers

    config = getattr(transformers, spec.config_class)(
        **spec.config,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        architectures=[spec.hf_architecture],
        dtype="bfloat16",
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(SEED)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    progress_bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # "Writing model shards" for one 2 MB file
    try:
        model.save_pretrained(directory)
    finally:
        if progress_bars:
            transformers.utils.logging.enable_progress_bar()
    # save_pretrained also derived a generation_config.json; _build_into replaces it with R1's defaults.
    return sum(parameter.numel() for parameter in model.parameters())


def _build_tokenizer(model_max_length: int) -> Any:
    """A byte-level BPE tokenizer trained on `_corpus()`, as a transformers PreTrainedTokenizerFast."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [BOS, EOS, PAD, *ROLE_TOKENS.values()]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - 2,  # room for the think tokens
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    backend.add_tokens([AddedToken(token, special=False, normalized=False) for token in (THINK_START, THINK_END)])
    # Like Llama 3's and R1's tokenizers: plain encodes (/v1/completions) start with BOS; chat prompts
    # carry it in the template and are encoded without special tokens.
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, backend.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=list(ROLE_TOKENS.values()),
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


_WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "on",
    "for",
    "with",
    "and",
    "or",
    "but",
    "not",
    "is",
    "are",
    "was",
    "be",
    "been",
    "it",
    "this",
    "that",
    "these",
    "those",
    "model",
    "token",
    "tokens",
    "serve",
    "serving",
    "request",
    "response",
    "reply",
    "answer",
    "question",
    "reason",
    "reasoning",
    "think",
    "step",
    "first",
    "then",
    "next",
    "finally",
    "because",
    "therefore",
    "so",
    "if",
    "else",
    "when",
    "while",
    "cluster",
    "node",
    "nodes",
    "gpu",
    "gpus",
    "memory",
    "cache",
    "latency",
    "throughput",
    "batch",
    "prompt",
    "completion",
    "chat",
    "user",
    "assistant",
    "system",
    "message",
    "hello",
    "world",
    "please",
    "thanks",
    "yes",
    "no",
    "maybe",
    "number",
    "sum",
    "total",
    "count",
    "value",
    "result",
    "check",
    "test",
    "tests",
    "error",
    "retry",
    "deploy",
    "stack",
    "config",
    "replica",
    "replicas",
    "expert",
    "experts",
    "layer",
    "layers",
    "attention",
    "head",
    "heads",
    "weight",
    "weights",
    "small",
    "large",
    "fast",
    "slow",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "hundred",
    "thousand",
    "time",
    "minute",
    "second",
    "day",
    "what",
    "why",
    "how",
    "which",
    "where",
    "who",
    "can",
    "could",
    "should",
    "would",
    "will",
    "may",
    "must",
    "do",
    "does",
    "did",
    "make",
    "made",
    "run",
    "runs",
    "python",
    "json",
    "yaml",
    "http",
    "api",
    "key",
    "keys",
    "list",
    "map",
    "string",
    "integer",
    "float",
    "true",
    "false",
    "null",
    "none",
]
_PUNCTUATION = (".", ",", "?", "!", ":", ";", " -", "...")
_SNIPPETS = (
    '{"role": "user", "content": "%s"}',
    "def %s(x):\n    return x + 1\n",
    "- %s\n",
    "**%s**",
    "`%s`",
    "(%s)",
    "# %s\n",
    "1. %s\n2. %s\n",
)


def _corpus(size: int = 40_000) -> list[str]:
    """About `size` characters of generated text (seeded, so always the same): words, numbers, code-ish
    snippets and every printable ASCII character, so that no common input falls back to raw bytes only."""
    rng = random.Random(SEED)
    lines: list[str] = ["".join(chr(code) for code in range(32, 127))]
    total = 0
    while total < size:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 10_000)))
        sentence = " ".join(words).capitalize() + rng.choice(_PUNCTUATION)
        if rng.random() < 0.2:
            snippet = rng.choice(_SNIPPETS)
            sentence += " " + snippet % ((rng.choice(_WORDS),) * snippet.count("%s"))
        lines.append(sentence)
        total += len(sentence) + 1
    return lines
