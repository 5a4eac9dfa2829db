"""Performance profiles: named sets of the engine settings that trade memory, latency and accuracy for
DeepSeek-R1 on H100/H200 (the `profile` key of a model).

A profile only fills the keys a model leaves unset, like a preset; anything written in the config wins, and the
rules of `serve_app/spec/perf_rules.py` and the capacity planner (`infra/planning/profile_rules.py`) check the
result as if it had been written by hand. The default is `none`: the engine runs as vLLM's defaults have it, until
a GPU run shows the gain (docs/capacity-and-cost.md#performance-profiles has the trade-offs and their sources).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Profile:
    """`fields` maps `ModelSpec` attribute names to the values the profile sets."""

    name: str
    description: str
    fields: Mapping[str, Any]


PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        profile.name: profile
        for profile in (
            Profile(
                "fp8-kv",
                "FP8 KV cache: half the bytes per token, so about twice the KV tokens (FlashMLA on Hopper)",
                MappingProxyType({"kv_cache_dtype": "fp8"}),
            ),
            Profile(
                "mtp",
                "DeepSeek's multi-token-prediction layer drafts one token per step (speculative decoding)",
                MappingProxyType({"mtp_speculative_tokens": 1}),
            ),
            Profile(
                "fp8-kv-mtp",
                "both: the FP8 KV cache pays for the MTP layer's weights and draft KV",
                MappingProxyType({"kv_cache_dtype": "fp8", "mtp_speculative_tokens": 1}),
            ),
        )
    }
)
# The values of the `profile` key: "none" applies nothing.
PROFILE_CHOICES: tuple[str, ...] = ("none", *PROFILES)
