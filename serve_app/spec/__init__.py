"""What is served: one `ModelSpec` per model, parsed and validated from the `models` stack config.

Deploy-time package: standard library only (no Ray, no Pulumi), so that `pulumi preview` can validate a
stack on a machine that has nothing but Pulumi.

The stack config is a list of objects with camelCase keys; `KEYS` declares each one, and the reference
(docs/configuration.md) is generated from it. Example, for Pulumi.<stack>.yaml::

    config:
      llmserve:models:
        - id: deepseek-r1
          source: deepseek-ai/DeepSeek-R1
          acceleratorType: H100
          tensorParallelSize: 8
          pipelineParallelSize: 2
          minReplicas: 1
          maxReplicas: 1

`parse_models` validates in two stages and reports every problem at once in one `ModelConfigError`:

1. shape (`shape`, with the engine-argument checks of `engine`): unknown or missing keys, types, ranges,
   enums, engine options and environment variables, each key on its own;
2. rules (`rules`) on the models that passed stage 1: replica bounds, duplicate ids, prefix-cache routing,
   vLLM's batching invariants, presets' minimum GPU counts.

Each problem reads ``<key>[<i>].<field>: <what is wrong>; found <value>; allowed <...>``. The modules: `model`
(ModelSpec, with_preset), `keys` (the key table), `engine`, `shape`, `rules` and `parse` (the entry points).
"""

from __future__ import annotations

from configkit import ConfigKey
from serve_app.errors import ModelConfigError
from serve_app.spec.engine import (
    OWNED_ENGINE_ARGS,
    RAY_OWNED_ENGINE_ARGS,
    REFUSED_ENGINE_ARGS,
    REFUSED_ENV_VARS,
    REMOVED_ENGINE_ARGS,
    engine_kwargs_problems,
    env_var_problems,
)
from serve_app.spec.keys import KEYS, KEYS_BY_NAME, WEIGHT_SOURCES, keys_markdown
from serve_app.spec.model import ModelSpec, with_preset, with_profile
from serve_app.spec.parse import parse_models, validate_models
from serve_app.spec.rules import llm_server_deployment, serve_deployment_name

__all__ = [
    "KEYS",
    "KEYS_BY_NAME",
    "OWNED_ENGINE_ARGS",
    "RAY_OWNED_ENGINE_ARGS",
    "REFUSED_ENGINE_ARGS",
    "REFUSED_ENV_VARS",
    "REMOVED_ENGINE_ARGS",
    "WEIGHT_SOURCES",
    "ConfigKey",
    "ModelConfigError",
    "ModelSpec",
    "engine_kwargs_problems",
    "env_var_problems",
    "keys_markdown",
    "llm_server_deployment",
    "parse_models",
    "serve_deployment_name",
    "validate_models",
    "with_preset",
    "with_profile",
]
