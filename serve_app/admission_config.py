"""The ingress's admission settings as the deploy-time builder writes them (standard library; not shipped).

`serve_app.builder` puts `admission_entry(...)` in the ingress deployment's ``user_config`` (Serve hands it to the
running replica's `reconfigure`, so a changed limit needs no restart) and `stamp_serve_config` fills in each
model's capacity from its application (`model_capacity`). What the ingress does with it: `serve_app.admission`.

Why the bound is the ingress's own: Ray 2.60 Serve's ``max_queued_requests`` counts requests a handle holds
while every replica is at ``max_ongoing_requests`` (`ray/serve/_private/router.py`, ``wrap_request_assignment``,
lines 224-262; the proxy then answers ``backpressure_config.status_code`` with ``Retry-After``,
`ray/serve/_private/http_util.py` lines 937-945), but Ray Serve LLM deploys each model's LLMServer with
``max_ongoing_requests`` 1e9 (`ray/llm/_internal/serve/core/server/builder.py` line 28,
`ray/llm/_internal/serve/constants.py` lines 42-44), so that queue never forms: every request goes straight to
vLLM's waiting queue, where it may wait minutes. The ingress therefore bounds each model's requests in flight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from serve_app.admission import TenantLimits

# vLLM 0.29 picks max_num_seqs by device when it is not set, at most 1024 (vllm/engine/arg_utils.py,
# `get_batch_defaults`, lines 2700-2716: 1024 on H100/H200/B200-class GPUs, 256 on others): a model without
# maxNumSeqs is bounded as if it ran 1024, so the bound never cuts into a running batch.
VLLM_LARGEST_DEFAULT_MAX_NUM_SEQS = 1024
DEFAULT_IN_FLIGHT_PER_SEQ = 2.0  # requests in flight per engine sequence slot: a full batch and as many waiting
DEFAULT_WAIT_S = 5.0  # how long a request waits for a slot of a full model before a 503


@dataclass(frozen=True)
class AdmissionSettings:
    """Tenants (name -> limits), and the overload bound: per model, `in_flight_per_seq` x maxReplicas x
    max_num_seqs requests in flight (0: no bound), a request beyond it waiting up to `wait_s` seconds."""

    tenants: Mapping[str, TenantLimits] = field(default_factory=dict)
    in_flight_per_seq: float = DEFAULT_IN_FLIGHT_PER_SEQ
    wait_s: float = DEFAULT_WAIT_S


def limits_dict(limits: TenantLimits) -> dict[str, Any]:
    """A tenant's limits for the user_config: the limits set, and its priority."""
    raw: dict[str, Any] = {"priority": limits.priority}
    for name in ("requests_per_minute", "tokens_per_minute", "max_concurrent"):
        value = getattr(limits, name)
        if value is not None:
            raw[name] = value
    return raw


def admission_entry(settings: AdmissionSettings) -> dict[str, Any]:
    """The ``admission`` entry of the ingress user_config, before `model_capacity` adds the capacity."""
    return {
        "in_flight_per_seq": settings.in_flight_per_seq,
        "tenants": {name: limits_dict(limits) for name, limits in sorted(settings.tenants.items())},
        "wait_s": settings.wait_s,
    }


def model_capacity(entry: Mapping[str, Any], model_apps: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Model id -> requests in flight at once through one ingress replica, from each model application's
    LLMConfig: ceil(in_flight_per_seq x max_replicas x max_num_seqs); nothing when the factor is 0."""
    factor = float(entry.get("in_flight_per_seq", 0))
    if factor <= 0:
        return {}
    capacity = {}
    for app in model_apps:
        llm = app["args"]
        seqs = llm.get("engine_kwargs", {}).get("max_num_seqs") or VLLM_LARGEST_DEFAULT_MAX_NUM_SEQS
        replicas = llm["deployment_config"]["autoscaling_config"]["max_replicas"]
        capacity[llm["model_loading_config"]["model_id"]] = math.ceil(factor * replicas * seqs)
    return capacity
