"""`python -m infra usage <stack>`: what each tenant used, per model, from the ingress's usage metrics.

Two sources (standard library only):

* `--prometheus-url URL` (with `--window`, default 1h): a Prometheus-compatible query API; each figure is one
  instant query (`/api/v1/query`) of `increase(...[window])`, summed by tenant and model, restricted to the stack's
  namespace (`llmserve:servingNamespace`) and, with `--cluster`, its GKE cluster. Google Cloud Managed Service for
  Prometheus serves that API at `https://monitoring.googleapis.com/v1/projects/PROJECT_ID/location/global/prometheus`
  (its `projects.location.prometheus.api.v1.query` method) and wants an OAuth token:
  `--token "$(gcloud auth print-access-token)"` or `LLMSERVE_PROMETHEUS_TOKEN`.
* `--metrics-url URL`: one Prometheus text exposition (a Ray node's metrics port, the local server's `metrics_url`):
  the totals since the process started; no window.

Columns: requests (answered and refused), refused (429 and 503), prompt and completion tokens, mean and p95
latency in seconds (p95 interpolated within the latency histogram's buckets, as PromQL's `histogram_quantile`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path

PREFIX = "ray_llmserve_tenant_"
COUNTERS = {
    "requests": "requests_total",
    "refused": "rejected_requests_total",
    "prompt_tokens": "prompt_tokens_total",
    "completion_tokens": "completion_tokens_total",
}
LATENCY = f"{PREFIX}request_latency_seconds"
Row = dict[str, float | str]
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack", help="stack name, as in Pulumi.<stack>.yaml")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prometheus-url", help="a Prometheus-compatible query API (see the module docstring)")
    source.add_argument("--metrics-url", help="a Prometheus text exposition: totals since its process started")
    parser.add_argument("--window", default="1h", help="PromQL duration of the window (default 1h)")
    parser.add_argument("--cluster", default="", help="only series of this GKE cluster (Managed Prometheus label)")
    parser.add_argument("--token", default=None, help="bearer token (default: $LLMSERVE_PROMETHEUS_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print {window, rows} as JSON")


def _get(url: str, token: str | None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as response:
        text: str = response.read().decode("utf-8")
        return text


def _labels(text: str | None) -> dict[str, str]:
    return {name: value.replace('\\"', '"').replace("\\\\", "\\") for name, value in _LABEL.findall(text or "")}


def rows_from_exposition(text: str) -> list[Row]:
    """Per (tenant, model) totals from a text exposition."""
    totals: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    buckets: dict[tuple[str, str], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or not match.group(1).startswith(PREFIX):
            continue
        name, labels, value = match.group(1), _labels(match.group(2)), float(match.group(3))
        group = (labels.get("tenant", ""), labels.get("model", ""))
        for column, suffix in COUNTERS.items():
            if name == PREFIX + suffix:
                totals[group][column] += value
        if name == f"{LATENCY}_bucket":
            buckets[group][float(labels["le"])] += value
        elif name in (f"{LATENCY}_sum", f"{LATENCY}_count"):
            totals[group][name.rsplit("_", 1)[1]] += value
    return [_row(group, totals[group], buckets.get(group, {})) for group in sorted(totals)]


def _row(group: tuple[str, str], totals: Mapping[str, float], buckets: Mapping[float, float]) -> Row:
    count = totals.get("count", 0.0)
    row: Row = {"tenant": group[0], "model": group[1]}
    row.update({column: totals.get(column, 0.0) for column in COUNTERS})
    row["mean_latency_s"] = totals.get("sum", 0.0) / count if count else math.nan
    row["p95_latency_s"] = histogram_quantile(0.95, buckets)
    return row


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """PromQL's `histogram_quantile` over cumulative buckets (upper bound -> count); NaN without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return math.nan
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(buckets[bound] - below, 1e-12)
        lower, below = bound, buckets[bound]
    return lower


def rows_from_prometheus(query: Callable[[str], list[dict]], selector: str, window: str) -> list[Row]:
    """Per (tenant, model) figures over `window`, one instant query each; `query(promql)` returns its result."""
    rows: dict[tuple[str, str], Row] = {}

    def fill(column: str, promql: str) -> None:
        for sample in query(promql):
            metric = sample.get("metric", {})
            group = (metric.get("tenant", ""), metric.get("model", ""))
            row = rows.setdefault(group, {"tenant": group[0], "model": group[1]})
            row[column] = float(sample["value"][1])

    for column, suffix in COUNTERS.items():
        fill(column, f"sum by (tenant, model) (increase({PREFIX}{suffix}{selector}[{window}]))")
    fill(
        "mean_latency_s",
        f"sum by (tenant, model) (increase({LATENCY}_sum{selector}[{window}])) / "
        f"sum by (tenant, model) (increase({LATENCY}_count{selector}[{window}]))",
    )
    fill(
        "p95_latency_s",
        f"histogram_quantile(0.95, sum by (le, tenant, model) (increase({LATENCY}_bucket{selector}[{window}])))",
    )
    for row in rows.values():
        for column in (*COUNTERS, "mean_latency_s", "p95_latency_s"):
            row.setdefault(column, 0.0 if column in COUNTERS else math.nan)
    return [rows[group] for group in sorted(rows)]


def _prometheus_query(base_url: str, token: str | None) -> Callable[[str], list[dict]]:
    def query(promql: str) -> list[dict]:
        url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        answer = json.loads(_get(url, token))
        if answer.get("status") != "success":
            raise RuntimeError(f"the query API refused {promql!r}: {answer.get('error', answer)}")
        result: list[dict] = answer["data"]["result"]
        return result

    return query


def format_table(rows: list[Row]) -> str:
    header: tuple[str, ...] = (
        "tenant",
        "model",
        "requests",
        "refused",
        "prompt tok",
        "completion tok",
        "mean s",
        "p95 s",
    )
    lines = [header]
    for row in rows:
        lines.append(
            (
                str(row["tenant"]),
                str(row["model"]),
                *(f"{float(row[column]):.0f}" for column in COUNTERS),
                *(_seconds(float(row[column])) for column in ("mean_latency_s", "p95_latency_s")),
            )
        )
    widths = [max(len(line[index]) for line in lines) for index in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)


def _seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _namespace(stack: str, root: Path) -> str:
    from infra.config.keys import CONFIG_KEYS_BY_NAME
    from infra.config.stackfiles import PROJECT, stack_config

    values, _ = stack_config(stack, root)
    namespace: str = values.get(f"{PROJECT}:servingNamespace") or CONFIG_KEYS_BY_NAME["servingNamespace"].default
    return namespace


def run(args: argparse.Namespace, root: Path) -> int:
    try:
        if args.metrics_url:
            rows, window = rows_from_exposition(_get(args.metrics_url, args.token)), "since the process started"
        else:
            labels = [f'namespace="{_namespace(args.stack, root)}"']
            if args.cluster:
                labels.insert(0, f'cluster="{args.cluster}"')
            token = args.token or os.environ.get("LLMSERVE_PROMETHEUS_TOKEN")
            query = _prometheus_query(args.prometheus_url, token)
            rows, window = rows_from_prometheus(query, "{" + ",".join(labels) + "}", args.window), args.window
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        print(f"error: usage for stack '{args.stack}': {error}", file=sys.stderr)
        return 1
    if args.json:
        print(_json(window, rows))
    else:
        print(f"llmserve {args.stack}: usage per tenant and model, {window}")
        print(format_table(rows) if rows else "(no usage recorded)")
    return 0


def _json(window: str, rows: list[Row]) -> str:
    clean = [
        {key: (None if isinstance(value, float) and math.isnan(value) else value) for key, value in row.items()}
        for row in rows
    ]
    return json.dumps({"window": window, "rows": clean})
