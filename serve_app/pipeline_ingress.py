"""The ingress side of pipelines: `PipelineIngressMixin`, mixed into `serve_app.ingress.ConfiguredOpenAiIngress`.

Why in the ingress deployment and not a deployment of its own (read from the Ray 2.60.0 source):

* The pipelines travel in the ingress deployment's ``user_config`` next to the models (``pipelines``, written by
  `serve_app.builder`). A ``user_config`` change is a lightweight update: Serve calls ``reconfigure`` on the
  running replicas and starts none: `ray/serve/_private/version.py` ``requires_actor_restart`` (line 70) looks at
  the code version and actor options only, ``requires_actor_reconfigure`` (line 84) at the ``user_config`` hash,
  and `deployment_state.py` (line 1280) then reconfigures the running replica. So adding or editing a pipeline
  restarts no model and not even the ingress.
* The ingress already holds a `DeploymentHandle` per model (``reconfigure`` in `serve_app.ingress`) and calls it
  in `OpenAiIngress._get_response` (`ray/llm/_internal/serve/core/ingress/ingress.py`); a pipeline step goes
  through that same method, so it is routed, autoscaled and woken from zero replicas exactly as a direct request
  to that model is (a handle request to a deployment with no replica is queued and pushed to the controller's
  autoscaler at once, `ray/serve/_private/router.py` ``wrap_queued_request``, line 267), with no extra network hop
  and no extra deployment to size.
* The pipeline runs behind the same ASGI app, so behind the same API-key middleware (`serve_app.auth`), and
  scales with the ingress's own autoscaling.

What a step does, the verdict and template rules, usage and the extension field: `serve_app.pipelines`.
Metrics (`PipelineMetrics`, Ray's `ray.util.metrics`, exported with the ``ray_`` prefix; counters end in
``_total``): per pipeline ``llmserve_pipeline_requests`` and ``llmserve_pipeline_latency_seconds`` (tag
``outcome``: answered, denied, error); per step (tags ``pipeline``, ``step``, ``kind``, ``model``)
``llmserve_pipeline_step_requests``, ``llmserve_pipeline_step_latency_seconds``, ``llmserve_pipeline_step_tokens``
(tag ``type``: prompt, completion) and ``llmserve_pipeline_guard_denials`` (tag ``reason``: pattern, verdict,
unparseable).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType
from typing import Any

from fastapi import HTTPException, Request, status
from ray.llm._internal.serve.constants import DEFAULT_LLM_ROUTER_HTTP_TIMEOUT
from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    OpenAIHTTPException,
)
from ray.llm._internal.serve.core.ingress.utils import _sanitize_chat_completion_request
from ray.util import metrics
from starlette.responses import JSONResponse, Response, StreamingResponse

from serve_app.pipeline_spec import PIPELINES_KEY, Pipeline, parse_pipelines
from serve_app.pipelines import PipelineRequestError, PipelineRun, StepRecord

LATENCY_BOUNDARIES_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
STEP_TAGS = ("pipeline", "step", "kind", "model")


class PipelineMetrics:
    """Ray metrics per pipeline and step (names in the module docstring)."""

    def __init__(self) -> None:
        self.requests = metrics.Counter(
            "llmserve_pipeline_requests", "Pipeline requests by outcome.", tag_keys=("pipeline", "outcome")
        )
        self.latency = metrics.Histogram(
            "llmserve_pipeline_latency_seconds",
            "Pipeline request latency.",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=("pipeline", "outcome"),
        )
        self.steps = metrics.Counter("llmserve_pipeline_step_requests", "Pipeline steps run.", tag_keys=STEP_TAGS)
        self.step_latency = metrics.Histogram(
            "llmserve_pipeline_step_latency_seconds",
            "Pipeline step latency.",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=STEP_TAGS,
        )
        self.tokens = metrics.Counter(
            "llmserve_pipeline_step_tokens", "Tokens of pipeline steps.", tag_keys=(*STEP_TAGS, "type")
        )
        self.denials = metrics.Counter(
            "llmserve_pipeline_guard_denials",
            "Requests a pipeline guard denied.",
            tag_keys=("pipeline", "step", "reason"),
        )

    def step(self, pipeline: str, record: StepRecord, seconds: float) -> None:
        tags = {"pipeline": pipeline, "step": str(record.step), "kind": record.kind, "model": record.model or "rule"}
        self.steps.inc(1, tags)
        self.step_latency.observe(seconds, tags)
        for kind in ("prompt", "completion"):
            count = (record.usage or {}).get(f"{kind}_tokens") or 0
            if count:
                self.tokens.inc(count, {**tags, "type": kind})
        if record.kind == "guard" and record.decision in ("deny", "unparseable"):
            reason = "pattern" if record.model is None else ("verdict" if record.decision == "deny" else "unparseable")
            self.denials.inc(1, {"pipeline": pipeline, "step": str(record.step), "reason": reason})

    def request(self, pipeline: str, outcome: str, seconds: float) -> None:
        self.requests.inc(1, {"pipeline": pipeline, "outcome": outcome})
        self.latency.observe(seconds, {"pipeline": pipeline, "outcome": outcome})


_metrics: list[PipelineMetrics] = []


def pipeline_metrics() -> PipelineMetrics:
    """One set per process (Ray registers a metric name once)."""
    if not _metrics:
        _metrics.append(PipelineMetrics())
    return _metrics[0]


def pipeline_card(pipeline: Pipeline) -> ModelCard:
    """The pipeline's entry in ``/v1/models``: the models it uses and its steps' kinds in ``metadata``."""
    metadata = {"llmserve_pipeline": {"models": list(pipeline.models()), "steps": [s.kind for s in pipeline.steps]}}
    return ModelCard(
        id=pipeline.pipeline_id, object="model", owned_by="llmserve-pipeline", permission=[], metadata=metadata
    )


class PipelineIngressMixin:
    """Serves the pipelines of the ``user_config`` on ``/v1/chat/completions`` and lists them in ``/v1/models``.

    Mixed in before Ray's `OpenAiIngress`, whose methods it extends through ``super()``."""

    _pipelines: Mapping[str, Pipeline] = MappingProxyType({})

    def _configure_pipelines(self, raw: Any, model_ids: set[str]) -> None:
        pipelines, problems = parse_pipelines(raw, model_ids, key=f"user_config.{PIPELINES_KEY}")
        if problems:  # the builder renders only checked pipelines; refuse rather than half-serve
            raise ValueError("; ".join(problems))
        self._pipelines = MappingProxyType({pipeline.pipeline_id: pipeline for pipeline in pipelines})

    async def models(self) -> ModelList:
        listed: ModelList = await super().models()  # type: ignore[misc]
        return ModelList(data=[*listed.data, *(pipeline_card(p) for p in self._pipelines.values())])

    async def model(self, model_id: str) -> ModelCard | None:
        pipeline = self._pipelines.get(model_id)
        if pipeline is not None:
            return pipeline_card(pipeline)
        card: ModelCard | None = await super().model(model_id)  # type: ignore[misc]
        return card

    async def _get_model_id(self, model: str | None) -> str:
        if model in self._pipelines:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f'"{model}" is a pipeline; pipelines answer /v1/chat/completions only.'
            )
        model_id: str = await super()._get_model_id(model)  # type: ignore[misc]
        return model_id

    async def chat(self, body: ChatCompletionRequest, request: Request) -> Response:
        pipeline = self._pipelines.get(body.model) if body.model else None
        if pipeline is None:
            response: Response = await super().chat(body, request)  # type: ignore[misc]
            return response
        return await self._run_pipeline(pipeline, body, request)

    def _chat_items(self, sub: dict[str, Any], request: Request) -> Any:
        """A model's answer to one step's request, through Ray's own `_get_response` (handle, session, sanitizing)."""
        get_response = self._get_response  # type: ignore[attr-defined]  # OpenAiIngress's, after this mixin
        return get_response(body=ChatCompletionRequest(**sub), call_method="chat", raw_request=request)

    async def _run_pipeline(self, pipeline: Pipeline, body: ChatCompletionRequest, request: Request) -> Response:
        from ray.llm._internal.serve.core.ingress.ingress import router_request_timeout

        plain = _sanitize_chat_completion_request(body).model_dump(exclude_unset=True)

        async def call(model: str, sub: dict[str, Any]) -> dict[str, Any]:
            self._raise_if_engine_down(model)
            items = self._chat_items(sub, request)
            first = await items.__anext__()
            await items.aclose()
            first = first[0] if isinstance(first, list) else first
            _raise_error(first)
            answer: dict[str, Any] = first.model_dump()
            return answer

        async def stream(model: str, sub: dict[str, Any]) -> AsyncIterator[str]:
            self._raise_if_engine_down(model)
            items = self._chat_items(sub, request)
            first = True
            async for item in items:
                for part in item if isinstance(item, list) else [item]:
                    if first:
                        _raise_error(part)
                        first = False
                    yield _sse(part)

        async with router_request_timeout(DEFAULT_LLM_ROUTER_HTTP_TIMEOUT):
            try:
                result = await PipelineRun(pipeline, plain, call, stream, pipeline_metrics()).run()
                if isinstance(result, dict):
                    return JSONResponse(content=result)
                events = await _started(result)  # an error before the first chunk is still an HTTP error
            except PipelineRequestError as error:
                raise OpenAIHTTPException(status.HTTP_400_BAD_REQUEST, str(error), type="BadRequestError") from None
            except EngineDown as down:  # a step's model has a dead engine: 503 + Retry-After, as for the model
                return self._unavailable(down.model_id, down.retry_after_s)  # type: ignore[attr-defined, no-any-return]
        return StreamingResponse(events, media_type="text/event-stream")

    def _raise_if_engine_down(self, model_id: str) -> None:
        """Before a step calls `model_id`: `EngineDown` when the ingress's engine gate (`serve_app.engine_watch`,
        mixed in after this class) knows its engine is dead, so the step is not left waiting for a new replica."""
        engine_gate = getattr(self, "engine_gate", None)
        wait = engine_gate().retry_after(model_id) if engine_gate is not None else None
        if wait is not None:
            raise EngineDown(model_id, wait)


class EngineDown(Exception):
    """A pipeline step's model has a dead engine; the pipeline answers 503 with ``Retry-After``."""

    def __init__(self, model_id: str, retry_after_s: int):
        super().__init__(model_id)
        self.model_id, self.retry_after_s = model_id, retry_after_s


async def _started(events: AsyncIterator[str]) -> AsyncIterator[str]:
    """`events` with its first item already produced (what Ray's `_peek_at_generator` does for a model)."""
    first = await events.__anext__()

    async def chained() -> AsyncIterator[str]:
        yield first
        async for event in events:
            yield event

    return chained()


def _raise_error(item: Any) -> None:
    if isinstance(item, ErrorResponse):
        raise OpenAIHTTPException(message=item.error.message, status_code=item.error.code, type=item.error.type)


def _sse(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, ErrorResponse):
        return f"data: {json.dumps({'error': part.error.model_dump()})}\n\n"
    return f"data: {part.model_dump_json()}\n\n"
