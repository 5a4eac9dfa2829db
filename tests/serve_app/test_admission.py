"""Tenants' quotas and the per-model overload bound (serve_app/admission.py), on an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.admission import Admission, Refusal, TenantLimits, Ticket, TokenBucket, admission_from_entry
from serve_app.admission_config import AdmissionSettings, admission_entry, model_capacity


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def admitted(admission: Admission, tenant: str, model: str = "m") -> Ticket | Refusal | None:
    return admission.try_admit(tenant, model)


def test_requests_per_minute_allow_ten_seconds_of_burst_then_the_rate():
    """60 rpm: 10 at once (10 s of the rate), then one a second; the 11th gets 429 with the wait to the next."""
    clock = Clock()
    admission = Admission({"a": TenantLimits(requests_per_minute=60)}, clock=clock)
    results = [admitted(admission, "a") for _ in range(11)]
    assert all(isinstance(result, Ticket) for result in results[:10])
    refusal = results[10]
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.limit) == (429, "requests")
    assert refusal.retry_after_s == pytest.approx(1.0)
    clock.now += 0.999
    assert isinstance(admitted(admission, "a"), Refusal), "one millisecond before the token is back"
    clock.now += 0.001
    assert isinstance(admitted(admission, "a"), Ticket), "exactly when it is back"
    assert isinstance(admitted(admission, "a"), Refusal)


def test_a_quota_is_per_tenant_and_the_default_tenant_is_unlimited():
    clock = Clock()
    admission = Admission(
        {"a": TenantLimits(requests_per_minute=6), "b": TenantLimits(requests_per_minute=6)}, clock=clock
    )
    assert isinstance(admitted(admission, "a"), Ticket)  # 6 rpm: a bucket of 1
    assert isinstance(admitted(admission, "a"), Refusal)
    assert isinstance(admitted(admission, "b"), Ticket)
    assert all(isinstance(admitted(admission, "default"), Ticket) for _ in range(1000))


def test_accepted_requests_over_a_window_match_burst_plus_rate():
    """Over-quota load for 60 s at 20 requests/s against 120 rpm: admitted = 20 (burst) + 120 (rate), exactly."""
    clock = Clock()
    admission = Admission({"a": TenantLimits(requests_per_minute=120)}, clock=clock)
    accepted = 0
    for step in range(1200):
        clock.now = 1000.0 + step * 0.05
        ticket = admitted(admission, "a")
        if isinstance(ticket, Ticket):
            accepted += 1
            admission.release(ticket)
    assert accepted == 20 + 120 - 1  # the last refill lands at t=60.0, after the last request at t=59.95


def test_a_clock_that_steps_back_refills_nothing():
    clock = Clock()
    bucket = TokenBucket(60, clock.now)
    bucket.take(clock.now, 10)
    clock.now -= 100
    assert bucket.wait_s(clock.now, 1) == pytest.approx(1.0)
    clock.now += 100.5  # back where it was, and half a second later: half a token
    assert bucket.wait_s(clock.now, 1) == pytest.approx(0.5)


def test_tokens_per_minute_are_charged_at_the_end_and_a_debt_blocks_until_repaid():
    clock = Clock()
    admission = Admission({"a": TenantLimits(tokens_per_minute=600)}, clock=clock)  # 10/s, bucket of 100
    ticket = admitted(admission, "a")
    assert isinstance(ticket, Ticket)
    assert isinstance(admitted(admission, "a"), Ticket), "tokens are charged when answers end, not on arrival"
    admission.release(ticket, tokens=350)  # 100 - 350 = -250: 25 s of debt
    refusal = admitted(admission, "a")
    assert isinstance(refusal, Refusal) and refusal.limit == "tokens"
    assert refusal.retry_after_s == pytest.approx(25.0, abs=1e-3)
    clock.now += 25.01
    assert isinstance(admitted(admission, "a"), Ticket)


def test_concurrency_limit_counts_requests_in_flight_and_frees_on_release():
    admission = Admission({"a": TenantLimits(max_concurrent=2)}, clock=Clock())
    first, second = admitted(admission, "a"), admitted(admission, "a")
    third = admitted(admission, "a")
    assert isinstance(third, Refusal) and (third.status, third.limit) == (429, "concurrency")
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    admission.release(first)
    admission.release(first)  # twice is once
    assert isinstance(admitted(admission, "a"), Ticket)
    assert isinstance(admitted(admission, "a"), Refusal)


def test_reconfigure_keeps_the_state_of_unchanged_tenants():
    clock = Clock()
    admission = Admission({"a": TenantLimits(requests_per_minute=6), "b": TenantLimits(max_concurrent=1)}, clock=clock)
    assert isinstance(admitted(admission, "a"), Ticket)
    assert isinstance(admitted(admission, "b"), Ticket)
    admission.configure({"a": TenantLimits(requests_per_minute=6), "b": TenantLimits(max_concurrent=1)}, {})
    assert isinstance(admitted(admission, "a"), Refusal), "a reconfigure must not hand out a fresh bucket"
    assert isinstance(admitted(admission, "b"), Refusal), "nor forget requests in flight"


def test_a_full_model_refuses_with_503_at_once_without_a_wait(run_async):
    admission = Admission({}, {"m": 2}, wait_s=0, clock=Clock())
    tickets = [run_async(admission.admit("default", "m")) for _ in range(2)]
    refusal = run_async(admission.admit("default", "m"))
    assert all(isinstance(ticket, Ticket) for ticket in tickets)
    assert isinstance(refusal, Refusal) and (refusal.status, refusal.limit) == (503, "overload")
    assert isinstance(run_async(admission.admit("default", "other")), Ticket), "the bound is per model"


def test_when_a_slot_frees_the_highest_priority_waiter_goes_first(run_async):
    """Concurrent requests: the model has one slot; low, normal and high wait in that order of arrival; each
    release admits the highest priority waiting, first come first served within a priority."""
    tenants = {
        "lo": TenantLimits(priority="low"),
        "hi": TenantLimits(priority="high"),
        "hi2": TenantLimits(priority="high"),
        "mid": TenantLimits(),
    }
    order: list[str] = []

    async def scenario() -> None:
        admission = Admission(tenants, {"m": 1}, wait_s=30)
        holder = await admission.admit("mid", "m")
        assert isinstance(holder, Ticket)

        async def request(tenant: str) -> None:
            ticket = await admission.admit(tenant, "m")
            assert isinstance(ticket, Ticket)
            order.append(tenant)
            await asyncio.sleep(0)
            admission.release(ticket)

        tasks = []
        for tenant in ("lo", "mid", "hi", "hi2"):
            tasks.append(asyncio.ensure_future(request(tenant)))
            await asyncio.sleep(0)
        assert admission.waiting("m") == 4
        admission.release(holder)
        await asyncio.gather(*tasks)
        assert admission.in_flight("m") == 0 and admission.waiting("m") == 0

    run_async(scenario())
    assert order == ["hi", "hi2", "mid", "lo"]


def test_a_waiter_is_refused_when_the_wait_runs_out_and_its_place_is_given_up(run_async):
    async def scenario() -> tuple[object, int]:
        admission = Admission({}, {"m": 1}, wait_s=0.01)
        await admission.admit("default", "m")
        refused = await admission.admit("default", "m")
        return refused, admission.waiting("m")

    refused, waiting = run_async(scenario())
    assert isinstance(refused, Refusal) and refused.status == 503 and waiting == 0


def test_a_cancelled_waiter_gives_its_slot_back(run_async):
    async def scenario() -> Admission:
        admission = Admission({}, {"m": 1}, wait_s=30)
        holder = await admission.admit("default", "m")
        assert isinstance(holder, Ticket)
        waiter = asyncio.ensure_future(admission.admit("default", "m"))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        admission.release(holder)
        return admission

    admission = run_async(scenario())
    assert admission.in_flight("m") == 0 and admission.waiting("m") == 0


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"requests_per_minute": -1}, "requests_per_minute must be a positive number"),
        ({"max_concurrent": 0}, "max_concurrent must be a positive number"),
        ({"priority": "urgent"}, "priority must be one of high, normal, low; found 'urgent'"),
    ],
)
def test_bad_limits_are_refused(limits, message):
    with pytest.raises(ValueError, match=message):
        TenantLimits(**limits)


def test_the_user_config_entry_round_trips_with_capacity_from_the_model_applications():
    settings = AdmissionSettings({"a": TenantLimits(requests_per_minute=30, priority="high")}, 2.0, 3.0)
    entry = admission_entry(settings)
    assert entry == {
        "in_flight_per_seq": 2.0,
        "tenants": {"a": {"priority": "high", "requests_per_minute": 30}},
        "wait_s": 3.0,
    }
    app = {
        "args": {
            "model_loading_config": {"model_id": "m"},
            "engine_kwargs": {"max_num_seqs": 16},
            "deployment_config": {"autoscaling_config": {"max_replicas": 2}},
        }
    }
    entry["capacity"] = model_capacity(entry, [app])
    assert entry["capacity"] == {"m": 64}
    tenants, capacity, wait_s = admission_from_entry(entry)
    assert tenants == {"a": TenantLimits(requests_per_minute=30, priority="high")}
    assert (capacity, wait_s) == ({"m": 64}, 3.0)
    assert model_capacity({**entry, "in_flight_per_seq": 0}, [app]) == {}


def test_the_ingress_runs_one_replica_so_a_tenants_limit_is_its_limit_on_the_endpoint():
    """The quotas live in the ingress replica (docs/tenants.md): the builder leaves the ingress's max_replicas to
    Ray, whose AutoscalingConfig default is 1 (ray/serve/config.py, Ray 2.60). A second replica would double every
    tenant's quota."""
    from ray.serve.config import AutoscalingConfig

    from serve_app.builder import build_serve_config
    from serve_app.spec import parse_models

    config = build_serve_config(parse_models([{"id": "m", "source": "org/m", "acceleratorType": "L4"}]))
    (ingress,) = [app for app in config["applications"] if app["route_prefix"] == "/"]
    autoscaling = ingress["deployments"][0]["autoscaling_config"]
    assert "max_replicas" not in autoscaling and "num_replicas" not in ingress["deployments"][0]
    assert AutoscalingConfig(**autoscaling).max_replicas == 1
