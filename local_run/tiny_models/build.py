"""Build a tiny model and keep it in a cache that other processes (Ray workers) read.

torch, transformers and tokenizers are imported inside the functions that build, so importing this module
needs only the standard library.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from local_run.tiny_models.families import ARCHITECTURES, UnsupportedModelError, architecture_for
from local_run.tiny_models.specs import SEED, SPECS, TinySpec
from local_run.tiny_models.tokenizer import build_tokenizer

if TYPE_CHECKING:  # imported where a model is built: only the heavy local environment has transformers
    from transformers import PreTrainedTokenizerFast

BUILD_VERSION = 1
"""Part of the cache key: bump it whenever what `build_tiny_model` writes changes, so old caches are ignored."""

CACHE_ENV_VAR = "LLMSERVE_CACHE_DIR"
MANIFEST = "tiny_model.json"
"""Written last into a build; its presence marks a complete cache entry."""

_STALE_PARTIAL_S = 3600
"""A temporary build dir older than this was left by a killed build, not one still running."""

# R1's and its distills' recommended sampling defaults (their generation_config.json); vLLM applies them
# to requests that do not set temperature / top_p.
_GENERATION_DEFAULTS: Mapping[str, Any] = MappingProxyType({"do_sample": True, "temperature": 0.6, "top_p": 0.95})


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


def build_tiny_model(architecture: str, cache_dir: Path | None = None) -> Path:
    """Build (once) the tiny model of `architecture` under `cache_dir` and return its directory.

    The directory, ``<cache_dir>/<architecture>-v<BUILD_VERSION>``, holds config.json,
    model.safetensors (bf16), generation_config.json, tokenizer.json, tokenizer_config.json, the chat
    template and `MANIFEST`. It is built in a temporary sibling and renamed into place, so a killed build
    leaves no partial cache entry, and concurrent builds of the same model are safe (the first rename
    wins). `cache_dir` defaults to `default_cache_dir()`.
    """
    if architecture not in SPECS:
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
    spec = SPECS[architecture]
    tokenizer = build_tokenizer(model_max_length=spec.config["max_position_embeddings"])
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


def _build_model(spec: TinySpec, tokenizer: PreTrainedTokenizerFast, directory: Path) -> int:
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
