"""Which tiny architecture stands in for which model source, by the source's Hugging Face id.

Standard library only: the runner's argument checks and deploy-time code call `architecture_for` where
torch is not installed.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


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
