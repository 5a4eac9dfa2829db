"""Admission control for the OpenAI ingress: per-tenant quotas and a per-model overload bound.

Pure and standard-library only (shipped to the cluster, see `serve_app.bundle`); every decision takes the time
from an injected clock, so the unit tests drive it through clock edges without sleeping.

What a tenant's limits mean (each None is unlimited):

* ``requests_per_minute``: a token bucket that refills at rpm/60 per second and holds at most
  `BURST_SECONDS` worth of requests (at least 1). OpenAI documents the same quantisation: a per-minute limit
  "may be enforced over shorter periods" (platform.openai.com/docs/guides/rate-limits). So a tenant at 60 rpm
  may send 10 at once, then one a second; over any window of T seconds it is admitted at most
  ``burst + rpm * T / 60`` requests.
* ``tokens_per_minute``: prompt + completion tokens, known only when the answer ends (its ``usage``), so a
  request is admitted while the tenant's token bucket is above zero and its tokens are charged when it
  finishes; the bucket may go into debt, and the next request waits until the debt is repaid.
* ``max_concurrent``: requests of the tenant in flight at once.
* ``priority``: ``high``, ``normal`` or ``low``: the order in which requests waiting for a model's capacity
  are admitted (first come, first served within a priority).

Over a quota, `Admission.admit` refuses at once with the seconds after which a retry can succeed (HTTP 429).
Per model, at most ``capacity`` requests are in flight; a request beyond that waits up to ``wait_s`` seconds
for a slot, in priority order, and is refused (HTTP 503) when the wait runs out or ``max_waiting`` requests
already wait: overload fails fast instead of queueing for minutes in the engine.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

PRIORITIES: Mapping[str, int] = {"high": 0, "normal": 1, "low": 2}  # lower is admitted first
DEFAULT_PRIORITY = "normal"
DEFAULT_TENANT = "default"  # the keys of the plain API-key file: no limits
BURST_SECONDS = 10.0  # a per-minute bucket holds this many seconds of its rate


@dataclass(frozen=True)
class TenantLimits:
    """One tenant's limits (see the module docstring); None: unlimited."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_concurrent: int | None = None
    priority: str = DEFAULT_PRIORITY

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute", "max_concurrent"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name} must be a positive number or None; found {value!r}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}; found {self.priority!r}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> TenantLimits:
        """From the ingress's ``user_config`` (snake_case keys, as `limits_dict` writes them)."""
        unknown = set(raw) - {"requests_per_minute", "tokens_per_minute", "max_concurrent", "priority"}
        if unknown:
            raise ValueError(f"unknown tenant limit(s) {sorted(unknown)}")
        return cls(**raw)  # type: ignore[arg-type]  # checked in __post_init__


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the HTTP status (429 quota, 503 overload), which limit, and when to retry."""

    status: int
    limit: str  # "requests", "tokens", "concurrency" or "overload"
    retry_after_s: float
    message: str


class TokenBucket:
    """Holds up to `capacity` units and refills at `rate_per_s`. A clock that steps back refills nothing."""

    def __init__(self, per_minute: float, now: float, burst_s: float = BURST_SECONDS):
        self.rate_per_s = per_minute / 60.0
        self.capacity = max(1.0, self.rate_per_s * burst_s)
        self.level = self.capacity
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self.level = min(self.capacity, self.level + (now - self._at) * self.rate_per_s)
            self._at = now

    def wait_s(self, now: float, need: float) -> float:
        """Seconds until `need` units are there (0: now)."""
        self._refill(now)
        missing = need - self.level
        return 0.0 if missing <= 1e-9 else missing / self.rate_per_s

    def take(self, now: float, amount: float) -> None:
        """Remove `amount` (the level may go below zero: a debt repaid by the refill)."""
        self._refill(now)
        self.level -= amount


@dataclass
class _TenantState:
    limits: TenantLimits
    requests: TokenBucket | None
    tokens: TokenBucket | None
    in_flight: int = 0


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future = field(compare=False)


@dataclass
class Ticket:
    """An admitted request; hand it back to `Admission.release` exactly once."""

    tenant: str
    model: str
    released: bool = False


class Admission:
    """Per-tenant quotas and per-model capacity for one ingress replica (see the module docstring).

    `capacity`: model id -> requests in flight at once (models not listed, and a capacity of 0, are unbounded).
    Single event loop: the ingress replica's; no locks needed, no await between a check and its update.
    """

    def __init__(
        self,
        tenants: Mapping[str, TenantLimits],
        capacity: Mapping[str, int] | None = None,
        *,
        wait_s: float = 2.0,
        max_waiting: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._clock = clock
        self._tenants: dict[str, _TenantState] = {}
        self.capacity: dict[str, int] = {}
        self.wait_s = wait_s
        self.max_waiting = max_waiting
        self._in_flight: dict[str, int] = {}
        self._waiting: dict[str, list[_Waiter]] = {}
        self._seq = itertools.count()
        self.configure(tenants, capacity or {})

    def configure(self, tenants: Mapping[str, TenantLimits], capacity: Mapping[str, int]) -> None:
        """New limits; a tenant whose limits did not change keeps its buckets and its requests in flight."""
        now = self._clock()
        states = {}
        for name, limits in {DEFAULT_TENANT: TenantLimits(), **tenants}.items():
            old = self._tenants.get(name)
            if old is not None and old.limits == limits:
                states[name] = old
                continue
            states[name] = _TenantState(
                limits,
                None if limits.requests_per_minute is None else TokenBucket(limits.requests_per_minute, now),
                None if limits.tokens_per_minute is None else TokenBucket(limits.tokens_per_minute, now),
                old.in_flight if old is not None else 0,
            )
        self._tenants = states
        self.capacity = {model: int(slots) for model, slots in capacity.items() if slots}

    def tenant_limits(self, tenant: str) -> TenantLimits | None:
        state = self._tenants.get(tenant)
        return None if state is None else state.limits

    def check_quota(self, tenant: str) -> Refusal | None:
        """The tenant's quotas alone (no change); None when within them. An unknown tenant has no limits."""
        state = self._tenants.get(tenant)
        if state is None:
            return None
        now, limits = self._clock(), state.limits
        if limits.max_concurrent is not None and state.in_flight >= limits.max_concurrent:
            return Refusal(
                429,
                "concurrency",
                1.0,
                f"Rate limit reached for tenant {tenant} on concurrent "
                f"requests: limit {limits.max_concurrent}, in flight {state.in_flight}.",
            )
        if state.requests is not None:
            wait = state.requests.wait_s(now, 1.0)
            if wait > 0:
                return Refusal(
                    429,
                    "requests",
                    wait,
                    f"Rate limit reached for tenant {tenant} on requests per "
                    f"minute: limit {limits.requests_per_minute:g}.",
                )
        if state.tokens is not None:
            wait = state.tokens.wait_s(now, 1e-6)
            if wait > 0:
                return Refusal(
                    429,
                    "tokens",
                    wait,
                    f"Rate limit reached for tenant {tenant} on tokens per minute: limit {limits.tokens_per_minute:g}.",
                )
        return None

    def _start(self, tenant: str, model: str) -> Ticket:
        state = self._tenants.get(tenant)
        if state is not None:
            state.in_flight += 1
            if state.requests is not None:
                state.requests.take(self._clock(), 1.0)
        self._in_flight[model] = self._in_flight.get(model, 0) + 1
        return Ticket(tenant, model)

    def _has_slot(self, model: str) -> bool:
        slots = self.capacity.get(model)
        return slots is None or self._in_flight.get(model, 0) < slots

    def try_admit(self, tenant: str, model: str) -> Ticket | Refusal | None:
        """Admit now (a Ticket), refuse (a Refusal), or None: within quota but the model is at capacity."""
        refusal = self.check_quota(tenant)
        if refusal is not None:
            return refusal
        if self._has_slot(model) and not self._waiting.get(model):
            return self._start(tenant, model)
        return None

    async def admit(self, tenant: str, model: str) -> Ticket | Refusal:
        """`try_admit`, waiting for a slot of the model in priority order up to `wait_s` when it is full."""
        decided = self.try_admit(tenant, model)
        if decided is not None:
            return decided
        queue = self._waiting.setdefault(model, [])
        if (self.max_waiting is not None and len(queue) >= self.max_waiting) or self.wait_s <= 0:
            return self._overload(model)
        limits = self.tenant_limits(tenant) or TenantLimits()
        waiter = _Waiter(PRIORITIES[limits.priority], next(self._seq), asyncio.get_running_loop().create_future())
        heapq.heappush(queue, waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self.wait_s)
        except asyncio.CancelledError:  # the client went away while waiting: give back a slot granted meanwhile
            if waiter.future.done():
                self._in_flight[model] -= 1
                self._wake(model)
            elif waiter in queue:
                queue.remove(waiter)
                heapq.heapify(queue)
            raise
        except TimeoutError:
            if waiter.future.done():  # granted in the same instant the wait ran out: keep the slot
                return self._granted(tenant, model)
            queue.remove(waiter)
            heapq.heapify(queue)
            return self._overload(model)
        return self._granted(tenant, model)

    def _granted(self, tenant: str, model: str) -> Ticket:
        # `_wake` already counted the model's slot; count the tenant's side now.
        self._in_flight[model] -= 1
        return self._start(tenant, model)

    def _overload(self, model: str) -> Refusal:
        slots = self.capacity.get(model, 0)
        return Refusal(
            503,
            "overload",
            max(1.0, self.wait_s),
            f"Model {model} is overloaded ({slots} requests in flight and more waiting); retry later.",
        )

    def release(self, ticket: Ticket, tokens: int = 0) -> None:
        """The request ended: free its slots, charge its tokens, and admit the highest-priority waiter."""
        if ticket.released:
            return
        ticket.released = True
        state = self._tenants.get(ticket.tenant)
        if state is not None:
            state.in_flight = max(0, state.in_flight - 1)
            if state.tokens is not None and tokens > 0:
                state.tokens.take(self._clock(), float(tokens))
        self._in_flight[ticket.model] = max(0, self._in_flight.get(ticket.model, 0) - 1)
        self._wake(ticket.model)

    def _wake(self, model: str) -> None:
        queue = self._waiting.get(model) or []
        while queue and self._has_slot(model):
            waiter = heapq.heappop(queue)
            if not waiter.future.done():
                self._in_flight[model] = self._in_flight.get(model, 0) + 1  # reserved for the waiter
                waiter.future.set_result(None)

    def in_flight(self, model: str) -> int:
        return self._in_flight.get(model, 0)

    def waiting(self, model: str) -> int:
        return len(self._waiting.get(model) or [])


def retry_after_header(seconds: float) -> str:
    """RFC 9110 delay-seconds: a whole number, rounded up so a client never retries too early (at least 1)."""
    return str(max(1, math.ceil(seconds)))


def admission_from_entry(entry: Mapping[str, object]) -> tuple[dict[str, TenantLimits], dict[str, int], float]:
    """The tenants' limits, the per-model capacity and the wait from the ingress user_config's ``admission``
    entry (`serve_app.admission_config.admission_entry` writes it)."""
    tenants_raw = entry.get("tenants") or {}
    capacity_raw = entry.get("capacity") or {}
    if not isinstance(tenants_raw, Mapping) or not isinstance(capacity_raw, Mapping):
        raise ValueError("admission.tenants and admission.capacity must be maps")
    tenants = {str(name): TenantLimits.from_dict(limits) for name, limits in tenants_raw.items()}
    capacity = {str(model): int(slots) for model, slots in capacity_raw.items()}
    wait_s = entry.get("wait_s", 0.0)
    if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)) or wait_s < 0:
        raise ValueError(f"admission.wait_s must be a number of seconds >= 0; found {wait_s!r}")
    return tenants, capacity, float(wait_s)
