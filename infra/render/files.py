"""Code shipped to pods as files: a ConfigMap named after its content, and the volume that lays the files out.

A ConfigMap under a running pod is never re-read by the Python that imported it, so new code must mean a new
ConfigMap name, and so a new pod template: the name carries a digest of every path and text.
ConfigMap keys cannot contain "/": `files` maps a key (the path with "/" as ".") to (path, text).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

Files = Mapping[str, tuple[str, str]]  # ConfigMap key -> (relative path, text)


def keyed_files(texts: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Relative path -> text, as ConfigMap keys -> (path, text)."""
    return {path.replace("/", "."): (path, text) for path, text in texts.items()}


def content_name(prefix: str, files: Files) -> str:
    digest = hashlib.sha256()
    for _key, (path, text) in sorted(files.items()):
        digest.update(path.encode() + b"\0" + text.encode() + b"\0")
    return f"{prefix}-{digest.hexdigest()[:10]}"


def files_configmap(name: str, namespace: str, files: Files, labels: Mapping[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "immutable": True,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "data": {key: text for key, (_, text) in sorted(files.items())},
    }


def files_volume(volume: str, configmap: str, files: Files) -> dict:
    return {
        "name": volume,
        "configMap": {
            "name": configmap,
            "items": [{"key": key, "path": path} for key, (path, _) in sorted(files.items())],
        },
    }
