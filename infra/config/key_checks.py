"""Checks on the keys themselves, before any value is read: unknown keys and namespaces, secrets stored in plain
text, encrypted values where none belongs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from configkit import closest, did_you_mean
from infra.config.keys import CONFIG_KEYS_BY_NAME, SECRET_KEY_NAMES
from infra.config.stackfiles import CONFIG_NAMESPACES, PROJECT
from infra.config.values import ValueReader

# Provider keys that carry credentials: like the project's secret keys, they must be stored encrypted.
PROVIDER_SECRET_KEYS = ("gcp:accessToken", "gcp:credentials")


def check_keys(
    read: ValueReader, values: Mapping[str, Any], other_keys: Mapping[str, bool], encrypted: set[str]
) -> None:
    """Record a problem for each unknown project key, plain-text secret (the project's or a provider's), key in
    an unknown namespace, and encrypted part of `models`. `other_keys` maps each key outside the project's
    namespace to whether it is stored encrypted; `encrypted` names the project keys stored encrypted."""
    for name in sorted(set(values) - set(CONFIG_KEYS_BY_NAME)):
        read.problem(
            f"{PROJECT}:{name}: unknown config key{did_you_mean(closest(name, CONFIG_KEYS_BY_NAME))}; "
            f"known keys: {', '.join(sorted(CONFIG_KEYS_BY_NAME))}"
        )
    for name in sorted(set(values) & SECRET_KEY_NAMES):
        read.problem(_plain_secret_problem(f"{PROJECT}:{name}"))
    read.problems.extend(_namespace_problems(other_keys))
    for name in PROVIDER_SECRET_KEYS:
        if name in other_keys and not other_keys[name]:
            read.problem(_plain_secret_problem(name))
    if "models" in encrypted:
        read.problem(
            f"{PROJECT}:models: holds an encrypted value, but the models end up in the Serve config, "
            f"which the RayService stores in plain text; allowed: no secrets in models (the Hugging "
            f"Face token goes in {PROJECT}:hfToken, set with `pulumi config set --secret`)"
        )
        read.reported.add("models")


def _namespace_problems(other_keys: Iterable[str]) -> list[str]:
    """Keys outside this project's namespace that no one reads (a misspelt `llmserv:`, a bare `gpuNodeCount`)."""
    problems = []
    allowed = ", ".join(f"{namespace}:" for namespace in CONFIG_NAMESPACES)
    for name in sorted(other_keys):
        namespace, colon, rest = name.partition(":")
        if not colon:
            problems.append(
                f"{name}: config key without a namespace; allowed: {PROJECT}:{name} for this "
                f"project's key, or a key in one of the namespaces {allowed}"
            )
        elif namespace not in CONFIG_NAMESPACES:
            hint = closest(namespace, CONFIG_NAMESPACES)
            problems.append(
                f"{name}: namespace {namespace!r} is read by neither this project nor its providers, "
                f"so `pulumi up` would ignore the key{did_you_mean(f'{hint}:{rest}' if hint else None)}; "
                f"allowed namespaces: {allowed}"
            )
    return problems


def _plain_secret_problem(full_name: str) -> str:
    return (
        f"{full_name}: must be stored encrypted; found a plain value; set it with "
        f"`pulumi config set --secret {full_name} <value>`"
    )
