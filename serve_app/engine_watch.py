"""The Ray side of `serve_app.engine_health`: the records a model replica leaves when its engine dies
(`serve_app.engine_replica`), and the ingress's reader of them (`EngineGatedIngress`).

Runs on the cluster (and imports without vLLM, for the unit tests of the ingress). The records are in the
GCS's internal key-value store (``ray.experimental.internal_kv``, the store Serve itself keeps its checkpoints
in), namespace `ENGINE_DOWN_NAMESPACE`, key the model id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray.experimental import internal_kv
from ray.util import metrics

from serve_app.engine_health import (
    ENGINE_DOWN_NAMESPACE,
    GATE_POLL_S,
    EngineGate,
    down_record,
    guarded,
    read_down_record,
    unavailable_body,
)

logger = logging.getLogger("ray.serve")


def store_record(model_id: str, since: float) -> None:
    internal_kv._internal_kv_put(model_id, down_record(since), overwrite=True, namespace=ENGINE_DOWN_NAMESPACE)


def clear_record(model_id: str) -> None:
    internal_kv._internal_kv_del(model_id, namespace=ENGINE_DOWN_NAMESPACE)


def _read_records() -> dict[str, float]:
    down = {}
    for key in internal_kv._internal_kv_list("", namespace=ENGINE_DOWN_NAMESPACE):
        since = read_down_record(internal_kv._internal_kv_get(key, namespace=ENGINE_DOWN_NAMESPACE))
        if since is not None:
            down[key.decode() if isinstance(key, bytes) else str(key)] = since
    return down


class GateMetrics:
    """The ingress's counters (Ray's metrics, exported with the ``ray_`` prefix and ``_total``)."""

    def __init__(self) -> None:
        self.deaths = metrics.Counter(
            "llmserve_engine_deaths", description="vLLM engine deaths seen by the ingress", tag_keys=("model",)
        )
        self.unavailable = metrics.Counter(
            "llmserve_engine_unavailable_responses",
            description="503 answers while a model's engine was dead",
            tag_keys=("model",),
        )


async def poll_engine_records(gate: EngineGate, gate_metrics: GateMetrics) -> None:
    """Forever: read the records every `GATE_POLL_S` seconds into `gate`; count each newly dead engine."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            for model_id in gate.update(await loop.run_in_executor(None, _read_records)):
                logger.warning("llmserve: the engine of %s is dead; answering 503 until it is replaced", model_id)
                gate_metrics.deaths.inc(tags={"model": model_id})
        except Exception:  # a GCS hiccup must not end the loop
            logger.exception("llmserve: could not read the engine records")
        await asyncio.sleep(GATE_POLL_S)


class EngineGatedIngress:
    """Mixed into the OpenAI ingress before Ray's `OpenAiIngress`: completions and chat (both go through
    `_process_llm_request`, ray/llm/_internal/serve/core/ingress/ingress.py) are `guarded` by the gate.

    An ``HTTPException`` with headers would lose them: Ray's exception middleware answers with the error's
    status and body only (ray/llm/_internal/serve/core/ingress/middleware.py), hence a response of our own."""

    _engine_gate: EngineGate | None = None

    def engine_gate(self) -> EngineGate:
        if self._engine_gate is None:
            self._engine_gate, self._gate_metrics = EngineGate(), GateMetrics()
            self._engine_poll = asyncio.get_running_loop().create_task(
                poll_engine_records(self._engine_gate, self._gate_metrics)
            )
        return self._engine_gate

    def set_recovery_estimates(self, recovery_s: dict[str, float]) -> None:
        self._recovery_s = dict(recovery_s)
        if self._engine_gate is not None:
            self._engine_gate.set_recovery(self._recovery_s)

    async def _process_llm_request(self, body: Any, call_method: str, raw_request: Any = None) -> Any:
        gate = self.engine_gate()
        gate.set_recovery(getattr(self, "_recovery_s", {}))
        model_id = _base_model_id(body.model) if body.model else _only_model(self)
        request = super()._process_llm_request(body, call_method, raw_request)  # type: ignore[misc]
        return await guarded(gate, model_id, request, self._unavailable)

    def _unavailable(self, model_id: str, retry_after_s: int) -> Any:
        from starlette.responses import JSONResponse

        self._gate_metrics.unavailable.inc(tags={"model": model_id})
        headers = {"Retry-After": str(retry_after_s)}
        return JSONResponse(unavailable_body(model_id, retry_after_s), status_code=503, headers=headers)


def _base_model_id(model: str) -> str:
    from ray.llm._internal.common.utils.lora_utils import get_base_model_id

    return str(get_base_model_id(model))


def _only_model(ingress: Any) -> str:
    cards = getattr(ingress, "_model_cards", {})
    return next(iter(cards)) if len(cards) == 1 else ""
