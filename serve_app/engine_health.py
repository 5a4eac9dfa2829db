"""What the OpenAI ingress does while a model's vLLM engine is dead: answer 503 with ``Retry-After`` at once.

Standard library only (the unit tests run it without Ray or vLLM); the Ray side is `serve_app.engine_watch`.

Why (read from the Ray 2.60.0 and vLLM 0.29.0 sources):

* When vLLM's engine core process dies, the front end only sets a flag: `MPClient`'s monitor thread sets
  ``resources.engine_dead`` (vllm/v1/engine/core_client.py, ``monitor_engine_cores``), after which
  `AsyncLLM.errored` is true and `AsyncLLM.check_health` raises `EngineDeadError`
  (vllm/v1/engine/async_llm.py, ``check_health`` and ``errored``). Every request then fails with that error,
  which Ray's ingress answers with HTTP 500 (ray/llm/_internal/serve/utils/server_utils.py
  ``get_response_for_error``: an exception without a known status is a 500), a status clients do not retry.
* Serve replaces the replica only after `check_health` failed ``REPLICA_HEALTH_CHECK_UNHEALTHY_THRESHOLD`` (3)
  times in a row, one check every ``health_check_period_s`` (10 s for Serve LLM deployments:
  ray/llm/_internal/serve/constants.py ``DEFAULT_HEALTH_CHECK_PERIOD_S``), so about 30 s of 500s; a replica
  whose *actor* died is marked unhealthy at the next check, without the threshold
  (ray/serve/_private/deployment_state.py ``ActorReplicaWrapper.check_health``, ``ACTOR_CRASHED``).
* A request sent to a replica whose actor died is retried on another replica by Serve's router
  (ray/serve/_private/router.py ``_handle_actor_died_error``); with none left it waits for the new one, a
  whole engine start: the "hang" the caller sees.

So the model's replica watches its engine and, once it is dead, records the death in the GCS and exits its
actor (`serve_app.engine_watch.WatchedLLMServer`); the ingress reads those records (`EngineGate`) and answers
requests to that model, and requests still waiting for their first chunk, with 503 and ``Retry-After``: the
model's recovery estimate (from the ingress's ``user_config``) minus the time already spent, never below
`MIN_RETRY_AFTER_S`. The record is removed by the next replica of the model whose engine started.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

# Where the records live: GCS internal KV, this namespace, one key per model id.
ENGINE_DOWN_NAMESPACE = "llmserve-engine-down"
# The ingress's user_config: model id -> seconds a replacement replica takes to serve (an estimate).
RECOVERY_KEY = "recovery_s"
DEFAULT_RECOVERY_S = 60
MIN_RETRY_AFTER_S = 5
# How often the replica looks at its engine, how long it waits for the ingresses to read its record before
# exiting, and how often an ingress reads the records.
WATCH_PERIOD_S = 0.25
EXIT_DELAY_S = 1.0
GATE_POLL_S = 0.5
# What says "the engine is dead" in an error that reached the ingress: vLLM's EngineDeadError (its message,
# vllm/v1/engine/exceptions.py) and Ray's errors for a dead replica actor.
DEAD_ENGINE_MARKERS = ("EngineDeadError", "EngineCore encountered an issue")
DEAD_ACTOR_ERRORS = frozenset({"EngineDeadError", "RayActorError", "ActorDiedError", "ActorUnavailableError"})


def down_record(since: float) -> bytes:
    """The value a dying replica stores under its model id."""
    return json.dumps({"since": since}).encode()


def read_down_record(value: bytes | None) -> float | None:
    """When the engine died, from a stored record; None for a missing or unreadable one."""
    try:
        since = json.loads(value or b"")["since"]
    except (ValueError, TypeError, KeyError):
        return None
    return float(since) if isinstance(since, (int, float)) and not isinstance(since, bool) else None


def is_engine_death(error: BaseException) -> bool:
    """True for an error that means the model's engine or replica actor is gone (not the request's fault)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & DEAD_ACTOR_ERRORS:
        return True
    text = " ".join(str(part) for part in (error, getattr(error, "message", ""), getattr(error, "type", "")))
    return any(marker in text for marker in DEAD_ENGINE_MARKERS)


def unavailable_body(model_id: str, retry_after_s: int) -> dict[str, Any]:
    """The 503's body, in the OpenAI error shape Ray's ingress answers with (``{"error": {...}}``)."""
    return {
        "error": {
            "message": f"model {model_id!r} is recovering from an engine failure; retry after {retry_after_s} s",
            "type": "ServiceUnavailable",
            "code": 503,
        }
    }


class EngineGate:
    """Which models have a dead engine, since when, and how long their recovery is expected to take."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._down: dict[str, float] = {}  # model id -> when its engine died (epoch seconds)
        self._recorded: frozenset[str] = frozenset()  # the models of the last records read
        self._recovery: dict[str, float] = {}
        self._events: dict[str, asyncio.Event] = {}

    def set_recovery(self, recovery_s: Mapping[str, float]) -> None:
        self._recovery = {model_id: float(seconds) for model_id, seconds in recovery_s.items()}

    def update(self, down: Mapping[str, float]) -> list[str]:
        """Replace the dead set by the stored records; returns the model ids newly recorded (each death once, also
        one a failed request reported first)."""
        new = [model_id for model_id in down if model_id not in self._recorded]
        self._recorded = frozenset(down)
        for model_id in set(self._down) - set(down):
            self._event(model_id).clear()
        self._down = dict(down)
        for model_id in down:
            self._event(model_id).set()
        return sorted(new)

    def mark_down(self, model_id: str) -> None:
        """A request saw the engine die before any record did (the next `update` keeps it only if stored)."""
        self._down.setdefault(model_id, self._clock())
        self._event(model_id).set()

    def retry_after(self, model_id: str) -> int | None:
        """Seconds a client should wait before retrying `model_id`; None while its engine is not known dead."""
        since = self._down.get(model_id)
        if since is None:
            return None
        left = self._recovery.get(model_id, DEFAULT_RECOVERY_S) - (self._clock() - since)
        return max(MIN_RETRY_AFTER_S, round(left))

    async def wait_down(self, model_id: str) -> None:
        await self._event(model_id).wait()

    def _event(self, model_id: str) -> asyncio.Event:
        return self._events.setdefault(model_id, asyncio.Event())


async def guarded(
    gate: EngineGate, model_id: str, request: Awaitable[Any], unavailable: Callable[[str, int], Any]
) -> Any:
    """`request`'s answer, or ``unavailable(model_id, retry_after_s)`` when the model's engine is dead: already
    when the request arrives, found dead while it waits for its first chunk, or failing it with a dead-engine
    error. Other errors propagate unchanged."""
    wait = gate.retry_after(model_id)
    if wait is not None:
        if asyncio.iscoroutine(request):
            request.close()
        return unavailable(model_id, wait)
    task = asyncio.ensure_future(request)
    down = asyncio.ensure_future(gate.wait_down(model_id))
    try:
        await asyncio.wait({task, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        down.cancel()
    if not task.done():
        task.cancel()
        return unavailable(model_id, gate.retry_after(model_id) or MIN_RETRY_AFTER_S)
    error = task.exception()
    if error is None:
        return task.result()
    if is_engine_death(error):
        gate.mark_down(model_id)
        return unavailable(model_id, gate.retry_after(model_id) or MIN_RETRY_AFTER_S)
    raise error
