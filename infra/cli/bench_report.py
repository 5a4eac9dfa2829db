"""The folder a benchmark run leaves: `report.md`, `sweep.json` and the throughput-against-latency plot.

The arithmetic is infra/planning/benchmark.py's; this module lays it out. The plot needs matplotlib, which the
environment that runs vLLM's benchmark has (requirements/local.txt); without it the report says so and the
rest is written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from infra.planning.benchmark import KNEE_FACTOR, EngineCapacity, Measured, Pricing, Shape, knee, versus_planned

PLOT_FILE = "throughput-vs-latency.png"
REPORT_FILE = "report.md"
SWEEP_FILE = "sweep.json"


@dataclass
class Run:
    """What one run measured and everything needed to read it."""

    stack: str
    model: str
    base_url: str
    api: str
    tokenizer: str
    started: str  # UTC, ISO 8601
    pricing: Pricing
    planned: dict | None  # capacity.json's models[].capacity for the model
    note: str = ""
    measured: list[Measured] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (point name, why)
    engine: EngineCapacity | None = None
    engine_why: str = ""  # why there is no engine figure

    def shapes(self) -> list[Shape]:
        return list(dict.fromkeys(m.point.shape for m in self.measured))

    def of_shape(self, shape: Shape) -> list[Measured]:
        return sorted((m for m in self.measured if m.point.shape == shape), key=lambda m: m.point.concurrency)


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def shape_table(run: Run, shape: Shape) -> list[str]:
    rows = [
        "| concurrency | requests ok / failed | output tok/s | per GPU | per replica | TTFT p50 / p99 ms "
        "| TPOT p50 / p99 ms | $ per 1M output tokens |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in run.of_shape(shape):
        tok_s = m.output_tok_s
        rows.append(
            f"| {m.point.concurrency} | {m.completed} / {m.failed} | {_num(tok_s)} "
            f"| {_num(run.pricing.per_gpu(tok_s))} | {_num(run.pricing.per_replica(tok_s))} "
            f"| {_num(m.ttft_p50_ms, 0)} / {_num(m.ttft_p99_ms, 0)} | {_num(m.tpot_p50_ms)} / {_num(m.tpot_p99_ms)} "
            f"| {_usd(run.pricing.usd_per_million_output_tokens(tok_s))} |"
        )
    return rows


def knee_line(points: list[Measured]) -> str:
    found = knee(points)
    if found is None:
        return "Knee: none (no point completed a request)."
    at = found.point
    if not found.climbed:
        return (
            f"Knee: not reached; median TTFT stayed within {KNEE_FACTOR:g}x of the lowest concurrency's up to "
            f"concurrency {at.point.concurrency} ({_num(at.output_tok_s)} output tok/s): it lies above the sweep."
        )
    over = found.first_over
    assert over is not None  # set whenever latency climbed
    return (
        f"Knee: concurrency {at.point.concurrency} ({_num(at.output_tok_s)} output tok/s, TTFT p50 "
        f"{_num(at.ttft_p50_ms, 0)} ms); at {over.point.concurrency} the median TTFT is "
        f"{over.ttft_p50_ms / points[0].ttft_p50_ms:.1f}x the lowest concurrency's ({_num(over.ttft_p50_ms, 0)} ms)."
    )


def engine_lines(run: Run) -> list[str]:
    lines = ["## Measured against planned", ""]
    if run.engine is None:
        return [*lines, f"Not measured: {run.engine_why}", ""]
    engine = run.engine
    context = f" at {engine.max_model_len:,} tokens" if engine.max_model_len else ""
    planned_len = (run.planned or {}).get("max_model_len")
    lines += [
        f"From {engine.source}{context}, one engine (one replica), against `capacity.json` "
        f"(planned max_model_len {planned_len if planned_len is not None else 'n/a'}):",
        "",
        "| | engine | planned | difference |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in versus_planned(engine, run.planned):
        digits = 0 if row.what != "sequences at full context" else 2
        percent = row.percent
        difference = "n/a" if percent is None else f"{percent:+.1f}%"
        lines.append(f"| {row.what} | {_num(row.measured, digits)} | {_num(row.planned, digits)} | {difference} |")
    return [*lines, ""]


def report_markdown(run: Run, plot: str | None, plot_why: str = "") -> str:
    gpus = run.pricing.gpus_per_replica
    lines = [
        f"# Benchmark: {run.model} on stack {run.stack}",
        "",
        *([f"**{run.note}**", ""] if run.note else []),
        f"{run.started}, {run.base_url}, vLLM's `vllm bench serve` (random prompts of exact length, "
        f"`--ignore-eos`, {run.api} API), tokenizer `{run.tokenizer}`. "
        f"{run.pricing.replicas} replica(s) of {gpus if gpus else 'an unknown number of'} GPU(s); priced at "
        f"{_usd(run.pricing.hourly_usd)}/h ({run.pricing.price_basis}).",
        "",
    ]
    for shape in run.shapes():
        points = run.of_shape(shape)
        lines += [
            f"## {shape.name} ({shape.input_tokens} input, {shape.output_tokens} output tokens)",
            "",
            *shape_table(run, shape),
            "",
            knee_line(points),
            "",
        ]
    if run.failures:
        lines += ["## Points without a result", ""]
        lines += [f"- {name}: {why}" for name, why in run.failures]
        lines.append("")
    lines += engine_lines(run)
    lines += [f"![output tokens/s per GPU against latency]({plot})" if plot else f"No plot: {plot_why}", ""]
    return "\n".join(lines)


def write_plot(run: Run, path: Path) -> None:
    """Output tokens/s per GPU (per replica when the GPUs are unknown) against median TTFT and median TPOT, one
    line per shape, each point labelled with its concurrency."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    per_gpu = bool(run.pricing.gpus_per_replica)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for shape in run.shapes():
        points = [m for m in run.of_shape(shape) if m.completed > 0]
        ys = [(run.pricing.per_gpu if per_gpu else run.pricing.per_replica)(m.output_tok_s) for m in points]
        for axis, xs in zip(axes, ([m.ttft_p50_ms for m in points], [m.tpot_p50_ms for m in points]), strict=True):
            axis.plot(xs, ys, marker="o", label=shape.name)
            for x, y, m in zip(xs, ys, points, strict=True):
                axis.annotate(f"c{m.point.concurrency}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for axis, latency in zip(axes, ("median TTFT (ms)", "median TPOT (ms)"), strict=True):
        axis.set_xlabel(latency)
        axis.set_ylabel(f"output tokens/s per {'GPU' if per_gpu else 'replica'}")
        axis.grid(True, alpha=0.3)
        axis.legend(title="input/output")
    figure.suptitle(f"{run.model} on {run.stack}" + (f" ({run.note})" if run.note else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_run(run: Run, folder: Path) -> Path:
    """report.md, sweep.json and the plot into `folder`; the report's path."""
    plot: str | None = PLOT_FILE
    why = ""
    try:
        if not run.measured:
            raise RuntimeError("no point was measured")
        write_plot(run, folder / PLOT_FILE)
    except ImportError:
        plot, why = None, "matplotlib is not installed here (it is in requirements/local.txt)"
    except RuntimeError as error:
        plot, why = None, str(error)
    (folder / SWEEP_FILE).write_text(json.dumps(asdict(run), indent=1, sort_keys=True) + "\n")
    report = folder / REPORT_FILE
    report.write_text(report_markdown(run, plot, why))
    return report
