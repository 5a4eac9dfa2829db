"""Where two plan values differ, as dotted paths (`spec.workerGroupSpecs[0].maxReplicas`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import yaml


def changed_paths(old: Any, new: Any, path: str = "") -> Iterator[str]:
    """Leaf paths where `old` and `new` differ; a YAML string that holds a mapping is compared inside."""
    old, new = structured(old), structured(new)
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            child = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                yield child
            else:
                yield from changed_paths(old[key], new[key], child)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (first, second) in enumerate(zip(old, new, strict=True)):  # lengths compared just above
            yield from changed_paths(first, second, f"{path}[{index}]")
    elif old != new:
        yield path or "(value)"


def structured(value: Any) -> Any:
    """A YAML string that holds a mapping (the RayService's serveConfigV2) as that mapping; anything else as is."""
    if isinstance(value, str) and "\n" in value and ":" in value:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, dict):
            return parsed
    return value


def under(path: str, prefixes: Iterable[str]) -> bool:
    """Whether the dotted `path` (as `changed_paths` writes it) is one of `prefixes` or lies below one."""
    return any(path == prefix or path.startswith((prefix + ".", prefix + "[")) for prefix in prefixes)
