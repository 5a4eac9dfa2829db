"""Rewrite Pulumi.yaml's config declarations from infra/config/stack.py CONFIG_KEYS: `python scripts/sync_pulumi_yaml.py`.

CONFIG_KEYS is the source of truth; tests/test_config.py fails when Pulumi.yaml drifts from it. Keys that
Pulumi.yaml cannot type (the model list, optional secrets) are written as comments, with the model keys'
table from serve_app/spec.py.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.config.keys import CONFIG_KEYS, declared_in_pulumi_yaml  # noqa: E402
from serve_app.spec import KEYS as MODEL_KEYS  # noqa: E402

HEADER = """\
name: llmserve
description: >-
  One `pulumi up` to a production LLM endpoint on GKE: VPC and GPU NIC networks, a GKE cluster with A3 High/Mega
  H100 pools in compact placement and GPUDirect-TCPX/TCPXO, KubeRay, and a RayService serving DeepSeek-R1 on vLLM.
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: .venv
# Every key is read once by infra/config/stack.py (CONFIG_KEYS), which holds the same defaults and descriptions;
# scripts/sync_pulumi_yaml.py writes this file from it and tests/test_config.py fails if the two drift apart.
# Keys under `config:` without a default are required.
#
# Provider keys (Pulumi types only keys of this project's own namespace):
#   gcp:project  (required) the Google Cloud project id: `pulumi config set gcp:project my-project`
#   gcp:region   (required) the region of the cluster and of the GPU capacity, e.g. us-east4
#
# Keys Pulumi.yaml cannot declare with a type:
"""


def comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, width=112, initial_indent=indent, subsequent_indent=indent + "  ")


def main() -> None:
    lines = [HEADER.rstrip("\n")]
    for key in CONFIG_KEYS:
        if declared_in_pulumi_yaml(key):
            continue
        kind = "secret, optional" if key.secret else "required, a list of objects"
        lines += comment(f"{key.name} ({kind}) {key.description}", "#   ")
        if key.name == "models":
            for model_key in MODEL_KEYS:
                lines += comment(f"{model_key.name} ({model_key.type}, default {model_key.default_words}): "
                                 f"{model_key.description}", "#       ")
    lines.append("config:")
    for key in CONFIG_KEYS:
        if not declared_in_pulumi_yaml(key):
            continue
        lines += [f"  {key.name}:", f"    type: {key.type}"]
        if key.type == "array":
            lines += ["    items:", "      type: string"]
        lines.append(f"    description: {json.dumps(key.description)}")
        if key.default is not None:
            lines.append(f"    default: {json.dumps(key.default)}")
    (ROOT / "Pulumi.yaml").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
