"""The model replica that leaves as soon as its vLLM engine dies (see `serve_app.engine_health`).

Runs on the cluster only: Ray Serve LLM's `LLMServer` needs vLLM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from ray.serve.llm.deployment import LLMServer

from serve_app.engine_health import EXIT_DELAY_S, WATCH_PERIOD_S
from serve_app.engine_watch import clear_record, store_record

logger = logging.getLogger("ray.serve")


def engine_dead(engine: Any) -> bool:
    """vLLM's own verdict: `AsyncLLM.errored` (engine core dead, or its output loop ended)."""
    client = getattr(engine, "_engine_client", None)
    return bool(client is not None and getattr(client, "errored", False))


class WatchedLLMServer(LLMServer):
    """Ray Serve LLM's `LLMServer` that exits its actor as soon as its vLLM engine is dead.

    Serve marks a replica whose actor died unhealthy at its next health check and starts a replacement,
    instead of waiting for three failed checks (see `serve_app.engine_health`). Before exiting, the replica
    stores when its engine died, so that every ingress answers 503 meanwhile; a replica whose engine started
    removes the record. It then shuts vLLM's client down (`AsyncLLM.shutdown`, vllm/v1/engine/async_llm.py:
    stops what is left of the engine core and its workers, which could otherwise hold GPU memory the
    replacement needs) and leaves with `os._exit`: the engine is gone, there is nothing to drain.
    """

    async def start(self) -> None:
        await super().start()
        model_id = self._llm_config.model_id
        await asyncio.get_running_loop().run_in_executor(None, clear_record, model_id)
        self._engine_watch = asyncio.get_running_loop().create_task(self._watch_engine(model_id))

    async def _watch_engine(self, model_id: str) -> None:
        while not engine_dead(self.engine):
            await asyncio.sleep(WATCH_PERIOD_S)
        logger.error("llmserve: the vLLM engine of %s died; exiting this replica so Serve replaces it", model_id)
        try:
            await asyncio.get_running_loop().run_in_executor(None, store_record, model_id, time.time())
        except Exception:  # the GCS may be down too; leaving is still right
            logger.exception("llmserve: could not record the engine death of %s", model_id)
        await asyncio.sleep(EXIT_DELAY_S)
        try:
            await asyncio.get_running_loop().run_in_executor(None, _shutdown_engine, self.engine)
        finally:
            os._exit(1)


def _shutdown_engine(engine: Any) -> None:
    client = getattr(engine, "_engine_client", None)
    if client is not None:
        client.shutdown(timeout=5.0)
