"""`pipelines`: multi-model pipelines over the stack's models, parsed and checked by `serve_app.pipeline_spec`
(the ingress reads its ``user_config`` with the same parser, so the deploy-time check and the cluster agree).

Each rule's problem names the key path (``llmserve:pipelines[0].steps[1].model``), the value found and what is
allowed: an unknown model, a pipeline id equal to a model id or to another pipeline's, no steps or no step that
answers, a guard without a verdict rule (or with neither a model nor patterns), a bad regular expression, a
template with an unknown placeholder or a ``{previous}`` with nothing before it, an output guard with no answer
to check.
"""

from __future__ import annotations

import dataclasses

from infra.config.settings import ServingConfig
from infra.config.stackfiles import PROJECT
from infra.config.values import ValueReader
from serve_app.pipeline_spec import Pipeline, parse_pipelines


def read_pipelines(read: ValueReader, model_ids: tuple[str, ...] | None) -> tuple[Pipeline, ...] | None:
    """The pipelines (none when unset), or None after recording their problems. `model_ids` None: the models
    are bad and already reported, so the references to them are not checked."""
    raw = read.get("pipelines")
    start = len(read.problems)
    pipelines, problems = parse_pipelines(raw, model_ids, key=f"{PROJECT}:pipelines")
    read.problems.extend(problems)
    return pipelines if len(read.problems) == start else None


def with_pipelines(read: ValueReader, serving: ServingConfig | None) -> ServingConfig | None:
    """`serving` with its pipelines; the pipelines are read (and checked) even when `serving` is bad."""
    pipelines = read_pipelines(read, tuple(model.model_id for model in serving.models) if serving else None)
    if serving is None or not pipelines:
        return serving
    return dataclasses.replace(serving, pipelines=pipelines)
