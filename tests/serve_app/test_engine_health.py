"""A dead engine: the ingress answers 503 with Retry-After at once (never 500, never a wait for the replacement),
and the Serve config gives a stopping replica time for its streams.

The gate is plain asyncio (serve_app/engine_health.py); the ingress mixin (serve_app/engine_watch.py) is run on a
stand-in of Ray's OpenAiIngress, and what it relies on in Ray's ingress is read from Ray 2.60's source. The real
engine death, on the real server, is in tests/e2e/test_engine_recovery.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from serve_app.builder import build_serve_config, model_llm_configs
from serve_app.engine_health import (
    MIN_RETRY_AFTER_S,
    EngineGate,
    down_record,
    guarded,
    is_engine_death,
    read_down_record,
)
from serve_app.engine_watch import EngineGatedIngress
from serve_app.spec import parse_models

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import ray

RAY_INGRESS = Path(ray.__file__).parent / "llm/_internal/serve/core/ingress/ingress.py"
SMALL = {"id": "small", "source": "Qwen/Qwen2.5-0.5B-Instruct", "acceleratorType": "L4"}
R1 = {"id": "r1", "source": "deepseek-ai/DeepSeek-R1", "acceleratorType": "H100", "tensorParallelSize": 8}
R1["pipelineParallelSize"] = 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unavailable(model_id: str, seconds: int) -> tuple[int, str, int]:
    return (503, model_id, seconds)


# --- the gate ---------------------------------------------------------------------------------------------------


def test_retry_after_counts_down_from_the_models_recovery_estimate_to_a_floor() -> None:
    clock = Clock()
    gate = EngineGate(clock)
    gate.set_recovery({"small": 40})
    assert gate.retry_after("small") is None
    assert gate.update({"small": 1000.0}) == ["small"]
    assert gate.retry_after("small") == 40
    clock.now += 25
    assert gate.retry_after("small") == 15
    clock.now += 100
    assert gate.retry_after("small") == MIN_RETRY_AFTER_S == 5
    assert gate.update({"small": 1000.0}) == [], "a model already down is not new again"
    assert gate.update({}) == [] and gate.retry_after("small") is None, "the record removed: the model is back"


def test_a_death_a_failed_request_reported_first_is_still_counted_once_when_recorded() -> None:
    gate = EngineGate(Clock())
    gate.mark_down("small")
    assert gate.update({"small": 1000.0}) == ["small"]
    assert gate.update({"small": 1000.0}) == []
    assert gate.update({}) == [] and gate.update({"small": 1010.0}) == ["small"], "a second death counts again"


def test_a_model_without_an_estimate_gets_the_default_of_60_s() -> None:
    gate = EngineGate(Clock())
    gate.update({"other": 1000.0})
    assert gate.retry_after("other") == 60


def test_records_round_trip_and_garbage_reads_as_no_record() -> None:
    assert read_down_record(down_record(1234.5)) == 1234.5
    for value in (None, b"", b"not json", b"[]", b'{"since": "x"}', b'{"since": true}'):
        assert read_down_record(value) is None, value


# --- which errors mean a dead engine ----------------------------------------------------------------------------


class EngineDeadError(Exception):
    """Named as vLLM 0.29's (vllm/v1/engine/exceptions.py)."""


class ActorDiedError(Exception):
    """Named as Ray's (ray/exceptions.py)."""


class OpenAIHTTPException(Exception):
    def __init__(self, message: str, status_code: int, type: str) -> None:
        super().__init__(message)
        self.message, self.status_code, self.type = message, status_code, type


def test_dead_engine_errors_are_recognised_and_others_are_not() -> None:
    # vLLM 0.29's EngineDeadError message (vllm/v1/engine/exceptions.py), as Ray's ingress raises it for the
    # ErrorResponse LLMServer returns (ray/llm/_internal/serve/core/ingress/ingress.py _process_llm_request).
    message = "EngineCore encountered an issue. See stack trace (above) for the root cause."
    assert is_engine_death(OpenAIHTTPException(message, 500, "InternalServerError"))
    assert is_engine_death(EngineDeadError())
    assert is_engine_death(ActorDiedError("The actor died unexpectedly"))
    assert not is_engine_death(OpenAIHTTPException("max_tokens is too large", 400, "BadRequestError"))
    assert not is_engine_death(ValueError("boom"))


# --- guarded: what a request gets -------------------------------------------------------------------------------


def test_a_request_to_a_dead_model_gets_503_at_once_and_is_never_sent(run_async) -> None:
    gate = EngineGate(Clock())
    gate.set_recovery({"small": 30})
    gate.update({"small": 1000.0})
    sent = []

    async def request() -> str:
        sent.append(1)
        return "answer"

    assert run_async(guarded(gate, "small", request(), unavailable)) == (503, "small", 30)
    assert not sent


def test_a_request_waiting_for_its_first_chunk_gets_503_when_the_engine_is_found_dead(run_async) -> None:
    async def scenario() -> Any:
        gate = EngineGate(Clock())
        gate.set_recovery({"small": 30})
        never = asyncio.get_running_loop().create_future()  # waits for a replica that is not there yet

        async def kill_soon() -> None:
            await asyncio.sleep(0.05)
            gate.update({"small": 1000.0})

        killer = asyncio.ensure_future(kill_soon())
        answer = await asyncio.wait_for(guarded(gate, "small", never, unavailable), timeout=5)
        await killer
        return answer, never.cancelled()

    assert run_async(scenario()) == ((503, "small", 30), True)


def test_a_dead_engine_error_becomes_503_and_marks_the_model_down(run_async) -> None:
    gate = EngineGate(Clock())

    async def failing() -> str:
        raise OpenAIHTTPException("EngineCore encountered an issue.", 500, "InternalServerError")

    assert run_async(guarded(gate, "small", failing(), unavailable)) == (503, "small", 60)
    assert gate.retry_after("small") == 60


def test_other_errors_and_answers_pass_through_unchanged(run_async) -> None:
    gate = EngineGate(Clock())

    async def bad_request() -> str:
        raise OpenAIHTTPException("max_tokens is too large", 400, "BadRequestError")

    async def fine() -> str:
        return "answer"

    with pytest.raises(OpenAIHTTPException):
        run_async(guarded(gate, "small", bad_request(), unavailable))
    assert run_async(guarded(gate, "small", fine(), unavailable)) == "answer"
    assert gate.retry_after("small") is None


# --- the ingress mixin on a stand-in of Ray's OpenAiIngress -----------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def inc(self, tags: dict[str, str]) -> None:
        self.counts[tags["model"]] = self.counts.get(tags["model"], 0) + 1


class _StandInIngress:
    async def _process_llm_request(self, body: Any, call_method: str, raw_request: Any = None) -> Any:
        raise OpenAIHTTPException("EngineCore encountered an issue.", 500, "InternalServerError")


class _Gated(EngineGatedIngress, _StandInIngress):
    pass


class _Body:
    model = "small"


def test_the_ingress_answers_503_with_retry_after_and_counts_it(run_async) -> None:
    ingress = _Gated()
    ingress._engine_gate = EngineGate(Clock())  # no poll task: the records are not read here
    ingress._gate_metrics = type("M", (), {"unavailable": _Counter(), "deaths": _Counter()})()
    ingress.set_recovery_estimates({"small": 45})
    response = run_async(ingress._process_llm_request(_Body(), "chat", None))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "45"
    body = json.loads(response.body)
    assert body["error"]["code"] == 503 and "small" in body["error"]["message"]
    assert ingress._gate_metrics.unavailable.counts == {"small": 1}


def test_rays_chat_and_completions_go_through_the_hooked_method() -> None:
    """The mixin hooks `_process_llm_request`: Ray 2.60's chat and completions routes must call it."""
    source = RAY_INGRESS.read_text()
    for route in ("completions", "chat"):
        match = re.search(rf"    async def {route}\(self, body.*?\n(?=    (async )?def )", source, re.S)
        assert match and "return await self._process_llm_request(" in match.group(0), route


# --- the Serve config --------------------------------------------------------------------------------------------


def test_model_replicas_are_health_checked_every_2_s_unless_the_model_says_otherwise() -> None:
    config = build_serve_config(parse_models([SMALL, R1]))
    periods = {c["model_loading_config"]["model_id"]: c["deployment_config"] for c in model_llm_configs(config)}
    assert periods["small"]["health_check_period_s"] == 2.0
    assert periods["r1"]["health_check_period_s"] == 30, "deepseek-r1's preset keeps its own period"


def test_stopping_replicas_get_the_stream_drain_time_models_and_ingress() -> None:
    config = build_serve_config(parse_models([SMALL]), stream_drain_s=1200)
    (llm,) = model_llm_configs(config)
    assert llm["deployment_config"]["graceful_shutdown_timeout_s"] == 1200
    ingress = next(app for app in config["applications"] if app["name"] == "llm")["deployments"][0]
    assert ingress["graceful_shutdown_timeout_s"] == 1200
    default = build_serve_config(parse_models([SMALL]))
    assert model_llm_configs(default)[0]["deployment_config"]["graceful_shutdown_timeout_s"] == 900


def test_recovery_estimates_reach_the_ingress_and_follow_the_models() -> None:
    config = build_serve_config(parse_models([SMALL, R1]), recovery_s={"small": 40, "r1": 900, "gone": 5})
    ingress = next(app for app in config["applications"] if app["name"] == "llm")["deployments"][0]
    assert ingress["user_config"]["recovery_s"] == {"r1": 900, "small": 40}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stream_drain_s": 0}, "stream_drain_s must be an integer of seconds in 1..3600; found 0"),
        ({"stream_drain_s": 7200}, "found 7200"),
        ({"recovery_s": {"small": 0}}, "recovery_s['small'] must be a positive integer of seconds; found 0"),
    ],
)
def test_bad_drain_or_recovery_values_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_serve_config(parse_models([SMALL]), **kwargs)
