"""A stack's config as the Pulumi CLI would hand it to the program, read from the YAML files alone.

`Pulumi.yaml` supplies the declared defaults and `Pulumi.<stack>.yaml` the stack's values. No Pulumi import:
the offline plan uses this, and so does the local runner (`python -m serve_app.local`), whose environment has
Ray and vLLM but not Pulumi.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

PROJECT = "llmserve"  # the project name in Pulumi.yaml, and so the namespace of its config keys
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET = "[secret]"


class StackFileError(Exception):
    """A stack that cannot be read: no `Pulumi.<stack>.yaml`, or YAML that does not parse."""


def known_stacks(root: Path = PROJECT_ROOT) -> list[str]:
    return sorted(path.name[len("Pulumi."):-len(".yaml")] for path in root.glob("Pulumi.*.yaml"))


def stack_config(stack: str, root: Path = PROJECT_ROOT) -> tuple[dict[str, str], list[str]]:
    """The config map for `stack`, `{"namespace:key": "value"}` with every value a string (structured values as
    JSON, as the engine passes them), plus the secret keys. Encrypted values cannot be read offline and become
    "[secret]"."""
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise StackFileError(f"no stack file {stack_file.name}; known stacks: "
                             f"{', '.join(known_stacks(root)) or 'none'}")
    project = _load_yaml(root / "Pulumi.yaml")
    values: dict[str, Any] = {}
    for name, declaration in (project.get("config") or {}).items():
        full_name = name if ":" in name else f"{PROJECT}:{name}"
        if isinstance(declaration, dict):
            if "default" in declaration:
                values[full_name] = declaration["default"]
            elif "value" in declaration:
                values[full_name] = declaration["value"]
        else:
            values[full_name] = declaration
    values.update(_load_yaml(stack_file).get("config") or {})

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for name, value in values.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[name] = SECRET
            secret_keys.append(name)
        else:
            config[name] = value if isinstance(value, str) else json.dumps(value)
    return config, secret_keys


def _load_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise StackFileError(f"{path.name}: not valid YAML: {error}") from error
