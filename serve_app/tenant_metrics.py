"""Usage per tenant and model as Ray metrics (shipped; imports Ray, so it runs on the cluster only).

Ray exports an application metric with the prefix ``ray_`` on each Ray pod's metrics port (8080), a counter
with the suffix ``_total`` and a histogram as ``_bucket``/``_sum``/``_count``; the names are listed with their
meaning in `infra/render/metrics.py`. Labels: ``tenant`` (the tenant's name, "default" for the plain keys; never
a key), ``model`` (the request's ``model``), and per series ``status``, ``limit`` or ``counted``.
"""

from __future__ import annotations

from ray.util import metrics

from serve_app.admission import Refusal

LATENCY_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]


class RayUsageSink:
    """`serve_app.usage.UsageSink` that records Ray metrics."""

    def __init__(self) -> None:
        self.requests = metrics.Counter(
            "llmserve_tenant_requests",
            "Generation requests answered, by tenant, model and HTTP status.",
            tag_keys=("tenant", "model", "status"),
        )
        self.rejected = metrics.Counter(
            "llmserve_tenant_rejected_requests",
            "Requests refused before any engine work (429 quota, 503 overload), by tenant, model and the limit hit.",
            tag_keys=("tenant", "model", "status", "limit"),
        )
        self.prompt_tokens = metrics.Counter(
            "llmserve_tenant_prompt_tokens",
            "Prompt tokens, from each answer's usage (counted=usage) or "
            "estimated for a stream without one (counted=estimate).",
            tag_keys=("tenant", "model", "counted"),
        )
        self.completion_tokens = metrics.Counter(
            "llmserve_tenant_completion_tokens",
            "Completion tokens, as prompt tokens are counted.",
            tag_keys=("tenant", "model", "counted"),
        )
        self.latency = metrics.Histogram(
            "llmserve_tenant_request_latency_seconds",
            "Seconds from a request's arrival at the ingress to the end of its answer.",
            boundaries=LATENCY_BOUNDARIES,
            tag_keys=("tenant", "model"),
        )

    def finished(
        self,
        tenant: str,
        model: str,
        status: int,
        prompt_tokens: int,
        completion_tokens: int,
        seconds: float,
        estimated: bool,
    ) -> None:
        self.requests.inc(1, {"tenant": tenant, "model": model, "status": str(status)})
        counted = {"tenant": tenant, "model": model, "counted": "estimate" if estimated else "usage"}
        if prompt_tokens:
            self.prompt_tokens.inc(prompt_tokens, counted)
        if completion_tokens:
            self.completion_tokens.inc(completion_tokens, counted)
        self.latency.observe(seconds, {"tenant": tenant, "model": model})

    def refused(self, tenant: str, model: str, refusal: Refusal) -> None:
        tags = {"tenant": tenant, "model": model, "status": str(refusal.status), "limit": refusal.limit}
        self.rejected.inc(1, tags)
        self.requests.inc(1, {"tenant": tenant, "model": model, "status": str(refusal.status)})
