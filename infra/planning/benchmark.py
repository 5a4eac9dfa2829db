"""What a benchmark sweep measured, in the units a buyer asks about: pure arithmetic, no I/O.

A sweep is a list of points (a prompt shape at a concurrency, a bounded number of requests); vLLM's own
benchmark (`vllm bench serve`) measures each point and saves a result JSON. This module reads the fields of that
JSON, turns them into output tokens/s per GPU and per replica and into $ per million output tokens at the
stack's hourly price, finds the knee of each shape (where latency climbs), and compares what the engine reported
about its KV cache with what the capacity planner predicted (`capacity.json`).

The field names are vLLM 0.29's (`vllm/benchmarks/serve.py`): `benchmark()` returns "completed", "failed",
"duration", "total_output_tokens" and "output_throughput" (output tokens/s over the whole run), and its
`process_one_metric` adds f"median_{metric}_ms" and, per `--metric-percentiles` value p, f"p{p}_{metric}_ms"
for the metrics `--percentile-metrics` selects ("ttft", "tpot", ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

K = 1024  # "1k" in a shape is 1024 tokens, as the published sweeps (InferenceX's 1k/1k) count them
DEFAULT_SHAPES = "1k/1k,8k/1k,1k/8k"
DEFAULT_CONCURRENCIES = (1, 4, 16, 64)
PROMPTS_PER_CONCURRENCY = 4  # each point sends this many requests per concurrent slot...
MIN_PROMPTS = 8  # ...but never fewer than this...
MAX_PROMPTS = 256  # ...nor more than this: every point is bounded in requests
KNEE_FACTOR = 2.0  # latency "climbs" once the median TTFT is more than twice the lowest concurrency's
PERCENTILES = (50, 99)


class SweepError(ValueError):
    """A sweep option that cannot be run; the message names the option, the value and what is allowed."""


@dataclass(frozen=True)
class Shape:
    input_tokens: int
    output_tokens: int

    @property
    def name(self) -> str:
        return f"{_tokens(self.input_tokens)}/{_tokens(self.output_tokens)}"

    @property
    def slug(self) -> str:  # for file names
        return f"{_tokens(self.input_tokens)}-{_tokens(self.output_tokens)}"


def _tokens(count: int) -> str:
    return f"{count // K}k" if count % K == 0 else str(count)


def _parse_tokens(text: str) -> int:
    match = re.fullmatch(r"(\d+)(k?)", text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(text)
    return int(match.group(1)) * (K if match.group(2) else 1)


def parse_shapes(text: str) -> tuple[Shape, ...]:
    """`--shapes "1k/1k,8k/1k,64/16"`: input/output token counts, `k` meaning 1024."""
    shapes = []
    for item in text.split(","):
        try:
            given, wanted = item.split("/")
            shapes.append(Shape(_parse_tokens(given), _parse_tokens(wanted)))
        except ValueError:
            raise SweepError(
                f"--shapes: {item.strip()!r} is not INPUT/OUTPUT tokens; write e.g. 1k/1k,8k/1k,1k/8k or 64/16 "
                f"(positive counts, k = {K})"
            ) from None
    return tuple(shapes)


def parse_concurrencies(text: str) -> tuple[int, ...]:
    """`--concurrency "1,4,16"`: rising maximum numbers of requests in flight."""
    try:
        values = tuple(int(item) for item in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1 or list(values) != sorted(set(values)):
        raise SweepError(f"--concurrency: {text!r} is not a rising list of positive integers, e.g. 1,4,16,64")
    return values


def prompts_for(concurrency: int, max_prompts: int = MAX_PROMPTS) -> int:
    """Requests sent at one point: enough to keep `concurrency` slots busy for a while, bounded both ways."""
    return min(max_prompts, max(MIN_PROMPTS, concurrency * PROMPTS_PER_CONCURRENCY))


@dataclass(frozen=True)
class SweepPoint:
    shape: Shape
    concurrency: int
    num_prompts: int

    @property
    def name(self) -> str:  # the result file's stem
        return f"{self.shape.slug}-c{self.concurrency}"


def sweep(
    shapes: tuple[Shape, ...], concurrencies: tuple[int, ...], max_prompts: int = MAX_PROMPTS
) -> list[SweepPoint]:
    """Every shape at every concurrency, shape by shape, concurrency rising."""
    return [SweepPoint(shape, c, prompts_for(c, max_prompts)) for shape in shapes for c in concurrencies]


# --- one measured point ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One point as vLLM's benchmark measured it (times in ms, throughput in output tokens/s)."""

    point: SweepPoint
    completed: int
    failed: int
    duration_s: float
    output_tokens: int
    output_tok_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float


def measured_from_result(point: SweepPoint, result: dict) -> Measured:
    """A point from vLLM 0.29's result JSON (run with `--percentile-metrics ttft,tpot,...` and
    `--metric-percentiles 50,99`); KeyError names the field when the file is not such a result."""
    return Measured(
        point=point,
        completed=int(result["completed"]),
        failed=int(result["failed"]),
        duration_s=float(result["duration"]),
        output_tokens=int(result["total_output_tokens"]),
        output_tok_s=float(result["output_throughput"]),
        ttft_p50_ms=float(result["median_ttft_ms"]),
        ttft_p99_ms=float(result["p99_ttft_ms"]),
        tpot_p50_ms=float(result["median_tpot_ms"]),
        tpot_p99_ms=float(result["p99_tpot_ms"]),
    )


@dataclass(frozen=True)
class Pricing:
    """What serves the measured traffic and what it costs: the replicas and GPUs behind the endpoint, and the
    stack's hourly price with what that price covers."""

    replicas: int
    gpus_per_replica: int | None  # None: the planner does not know this model
    hourly_usd: float | None  # None: no price known for the stack's machine
    price_basis: str

    def per_replica(self, tok_s: float) -> float:
        return tok_s / self.replicas

    def per_gpu(self, tok_s: float) -> float | None:
        return None if not self.gpus_per_replica else tok_s / (self.replicas * self.gpus_per_replica)

    def usd_per_million_output_tokens(self, tok_s: float) -> float | None:
        """The hourly price divided by the output tokens one hour at this throughput makes, per million."""
        if self.hourly_usd is None or tok_s <= 0:
            return None
        return self.hourly_usd / (tok_s * 3600) * 1_000_000


# Which of capacity.json's `cost.hourly_usd` prices a capacity mode pays (infra/planning/costs.py): flex-start
# VMs are priced at the on-demand list price there, with a note on the DWS discount.
PRICE_OF_MODE = {"on-demand": "on_demand", "flex-start": "on_demand", "spot": "spot", "reservation": "reservation"}


def stack_hourly_usd(cost: dict) -> tuple[float | None, str]:
    """The stack's hourly price with every GPU node up (what it costs while it serves at full scale), from
    capacity.json's `cost`, and a sentence saying so."""
    mode = cost["capacity_mode"]
    prices = cost["hourly_usd"].get(PRICE_OF_MODE.get(mode, "on_demand")) or {}
    hourly = prices.get("max")
    nodes = cost["gpu_nodes"]["max"]
    basis = (
        f"the stack's {mode} list price with all {nodes} GPU node(s) of {cost['gpu_machine']} up, "
        f"prices as of {cost['prices']['as_of']}"
    )
    return hourly, basis


# --- the knee --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Knee:
    """The highest concurrency whose median TTFT stays within KNEE_FACTOR of the lowest concurrency's; `climbed`
    is False when no point of the sweep went past it (the knee is at or above the last point)."""

    point: Measured
    climbed: bool
    first_over: Measured | None


def knee(points: list[Measured], factor: float = KNEE_FACTOR) -> Knee | None:
    """The knee of one shape's points; None without a point that completed a request."""
    usable = sorted((m for m in points if m.completed > 0), key=lambda m: m.point.concurrency)
    if not usable:
        return None
    baseline = usable[0].ttft_p50_ms
    last_within = usable[0]
    for measured in usable[1:]:
        if measured.ttft_p50_ms > factor * baseline:
            return Knee(last_within, True, measured)
        last_within = measured
    return Knee(last_within, False, None)


# --- what the engine reported against what was planned ---------------------------------------------------------


@dataclass(frozen=True)
class EngineCapacity:
    """The KV cache one engine reported: its token capacity and the concurrency that gives at max_model_len."""

    kv_tokens: int
    max_concurrency: float
    max_model_len: int | None
    blocks: int | None
    block_size: int | None
    source: str


# vLLM 0.29 logs this once at start-up (vllm/v1/core/kv_cache_utils.py, update_kv_cache_capacity):
# "GPU KV cache size: %s tokens, Maximum concurrency for %s tokens per request: %.2fx", counts with commas.
LOG_LINE = re.compile(
    r"GPU KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x"
)
# ... and exports the same figures as labels of an info gauge, `vllm:cache_config_info` (vllm/v1/metrics/
# loggers.py, log_metrics_info: every CacheConfig field as a label, vllm/config/cache.py metrics_info), which
# Ray's exporter renames `ray_vllm_cache_config_info` (':' becomes '_', vllm/v1/metrics/ray_wrappers.py).
INFO_METRICS = ("ray_vllm_cache_config_info", "vllm:cache_config_info")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# The engine's config line before it (vllm/v1/engine/core.py: "Initializing a V1 LLM engine (v...) with config:
# ..., served_model_name=<id>, ...") says which model the figures that follow belong to.
SERVED_MODEL = re.compile(r"served_model_name=([^,\s]+)")


def engine_from_log(text: str) -> EngineCapacity | None:
    engines = engines_from_log(text)
    return engines[0][1] if engines else None


def engines_from_log(text: str) -> list[tuple[str | None, EngineCapacity]]:
    """Every KV cache line of a log, with the served model named last before it (None if none was)."""
    found: list[tuple[str | None, EngineCapacity]] = []
    model = None
    for line in text.splitlines():
        named = SERVED_MODEL.search(line)
        if named:
            model = named.group(1)
        match = LOG_LINE.search(line)
        if match is None:
            continue
        engine = EngineCapacity(
            kv_tokens=int(match.group(1).replace(",", "")),
            max_concurrency=float(match.group(3)),
            max_model_len=int(match.group(2).replace(",", "")),
            blocks=None,
            block_size=None,
            source="the engine's start-up log",
        )
        found.append((model, engine))
    return found


def engines_of_model(logs: list[str], model: str) -> list[EngineCapacity]:
    """The distinct KV caches the engines of `model` logged across `logs` (several files of one server, say);
    the lines of no named model count only when no line names `model`."""
    pairs = [pair for text in logs for pair in engines_from_log(text)]
    named = [engine for served, engine in pairs if served == model]
    chosen = named or [engine for served, engine in pairs if served is None]
    return list(dict.fromkeys(chosen))


def _number(labels: dict[str, str], name: str) -> float | None:
    try:
        return float(labels[name])
    except (KeyError, ValueError):
        return None  # absent, or "None" before the engine sized its cache


def _workers_of(text: str, model: str) -> set[str]:
    """The Ray workers that export a vLLM metric labelled with `model` (vLLM labels its request metrics with
    `model_name`; Ray adds `WorkerId` to every metric a worker exports)."""
    workers = set()
    for line in text.splitlines():
        if line.startswith(("ray_vllm_", "vllm:")):
            labels = dict(LABEL.findall(line))
            if labels.get("model_name") == model and "WorkerId" in labels:
                workers.add(labels["WorkerId"])
    return workers


def engines_from_metrics(text: str, model: str | None = None) -> list[EngineCapacity]:
    """Every engine's KV cache from a Prometheus scrape, in the order listed (distinct figures only); with
    `model`, only the engines of the workers that serve it, when the scrape says which those are (the info gauge
    itself has no model label: its labels are the CacheConfig fields)."""
    workers = _workers_of(text, model) if model else set()
    found: list[EngineCapacity] = []
    for line in text.splitlines():
        if not line.startswith(tuple(name + "{" for name in INFO_METRICS)):
            continue
        labels = dict(LABEL.findall(line))
        if workers and labels.get("WorkerId") not in workers:
            continue
        tokens, concurrency = _number(labels, "kv_cache_size_tokens"), _number(labels, "kv_cache_max_concurrency")
        if tokens is None or concurrency is None:
            continue
        blocks, block_size = _number(labels, "num_gpu_blocks"), _number(labels, "block_size")
        engine = EngineCapacity(
            kv_tokens=int(tokens),
            max_concurrency=concurrency,
            max_model_len=round(tokens / concurrency) if concurrency else None,
            blocks=None if blocks is None else int(blocks),
            block_size=None if block_size is None else int(block_size),
            source="the engine's metrics (cache_config_info)",
        )
        if engine not in found:
            found.append(engine)
    return found


@dataclass(frozen=True)
class Difference:
    what: str
    measured: float
    planned: float | None

    @property
    def percent(self) -> float | None:
        """(measured - planned) / planned, in percent; None without a planned figure."""
        if not self.planned:
            return None
        return (self.measured - self.planned) / self.planned * 100


def versus_planned(engine: EngineCapacity, planned: dict | None) -> list[Difference]:
    """The engine's figures next to the planner's for one replica (capacity.json's `models[].capacity`)."""
    plan = planned or {}
    rows = [
        Difference("KV cache tokens", engine.kv_tokens, plan.get("kv_tokens")),
        Difference("sequences at full context", engine.max_concurrency, plan.get("concurrency_at_full_context")),
    ]
    if engine.blocks is not None:
        rows.append(Difference("KV cache blocks", engine.blocks, plan.get("kv_cache_blocks")))
    return rows
