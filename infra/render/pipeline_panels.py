"""The dashboard's pipeline charts (`serve_app/pipeline_ingress.py` records the metrics), as plain tuples that
`infra/render/monitoring.py` turns into its panels: per pipeline, requests by outcome and latency; per step,
steps run, latency, tokens and guard denials. Every name goes through `metric()`."""

from __future__ import annotations

from infra.render.metrics import metric

# (title, ((PromQL, legend), ...), unit)
PanelSpec = tuple[str, tuple[tuple[str, str], ...], str]
_STEP = "pipeline, step, kind, model"


def pipeline_panel_specs(selector: str) -> list[PanelSpec]:
    """The pipeline charts over the series that `selector` (``{namespace="..."}``) picks."""
    requests = metric("ray_llmserve_pipeline_requests_total")
    latency = metric("ray_llmserve_pipeline_latency_seconds")
    step_latency = metric("ray_llmserve_pipeline_step_latency_seconds")
    return [
        (
            "Pipeline requests/s by outcome",
            ((f"sum by (pipeline, outcome) (rate({requests}{selector}[5m]))", "${labels.pipeline} ${labels.outcome}"),),
            "1/s",
        ),
        (
            "Pipeline latency p50 / p95",
            tuple(
                (
                    f"histogram_quantile({q}, sum by (le, pipeline) (rate({latency}_bucket{selector}[5m])))",
                    f"p{int(q * 100)} ${{labels.pipeline}}",
                )
                for q in (0.5, 0.95)
            ),
            "s",
        ),
        (
            "Pipeline step latency p95 and steps/s",
            (
                (
                    f"histogram_quantile(0.95, sum by (le, {_STEP}) (rate({step_latency}_bucket{selector}[5m])))",
                    "p95 ${labels.pipeline}[${labels.step}] ${labels.kind} ${labels.model}",
                ),
                (
                    f"sum by ({_STEP}) (rate({metric('ray_llmserve_pipeline_step_requests_total')}{selector}[5m]))",
                    "steps/s ${labels.pipeline}[${labels.step}] ${labels.model}",
                ),
            ),
            "1",
        ),
        (
            "Pipeline tokens/s by step (prompt, completion)",
            (
                (
                    f"sum by ({_STEP}, type) (rate({metric('ray_llmserve_pipeline_step_tokens_total')}{selector}[5m]))",
                    "${labels.type} ${labels.pipeline}[${labels.step}] ${labels.model}",
                ),
            ),
            "1/s",
        ),
        (
            "Pipeline guard denials/s by reason",
            (
                (
                    "sum by (pipeline, step, reason) "
                    f"(rate({metric('ray_llmserve_pipeline_guard_denials_total')}{selector}[5m]))",
                    "${labels.pipeline}[${labels.step}] ${labels.reason}",
                ),
            ),
            "1/s",
        ),
    ]
