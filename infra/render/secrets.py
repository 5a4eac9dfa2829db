"""The stack's Secrets as plain data: one Opaque Secret renderer, and the Hugging Face token Secret that the
GPU workers (infra/render/rayservice.py) and the staging Jobs (infra/render/weight_staging.py) both read."""

from __future__ import annotations

from typing import Any

from infra.catalog import PART_OF_LABEL
from serve_app.auth import parse_api_keys

HF_TOKEN_SECRET_KEY = "token"  # the key of the HF token Secret


def render_secret(name: str, namespace: str, string_data: dict[str, Any]) -> dict:
    """An Opaque Secret; values may be Pulumi secret outputs, which stay secret."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF_LABEL)},
        "stringData": string_data,
    }


def hf_token_secret_name(name: str) -> str:
    """The Secret with the Hugging Face token, read by the GPU workers and the staging Jobs alike."""
    return f"{name}-hf-token"


def current_api_key(keys: str | None) -> str | None:
    """The one key a client sends, from the accepted keys (`llmserve:apiKey`): during a rotation, "OLD,NEW",
    the last one listed; None when there is none."""
    parsed = parse_api_keys(keys or "")
    return parsed[-1] if parsed else None
