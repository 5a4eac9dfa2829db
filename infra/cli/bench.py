"""`python -m infra bench <stack>`: measure an endpoint with vLLM's own benchmark and say what it means.

A sweep: each prompt shape (`--shapes`, default 1k/1k, 8k/1k and 1k/8k tokens) at rising concurrencies
(`--concurrency`, default 1,4,16,64), each point bounded in requests (4 per concurrent slot, 8 to
`--max-prompts`) and in time (`--point-timeout`), through the API key, with the model's real tokenizer
(`--tokenizer`, default the model's Hugging Face source; locally, the tiny model's folder the local server
prints as `model_paths`). It writes a folder per run (`--out`, default `build/<stack>/bench/<UTC time>`):
`results/<point>.json` (vLLM's result files), `runner.log`, `sweep.json`, `report.md` and
`throughput-vs-latency.png`. Prices come from the stack's plan (`capacity.json`'s cost, every GPU node up) or
`--hourly-usd`; the engine's KV cache from `--metrics-url` (Ray's metrics endpoint) or `--engine-log`.

It needs vLLM (the local environment, `.venv-local`); `--in-cluster` instead runs the sweep as a Job next to the
service and builds the report here from its log (infra/cli/bench_cluster.py). The endpoint and key come as for
`python -m infra smoke`: `--base-url`, `--api-key` or LLMSERVE_API_KEY, else the stack's outputs. Exit codes:
0 every point measured, 1 a point failed or the endpoint cannot be measured, 2 bad usage.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import sys
import urllib.request
from pathlib import Path

from infra.cli.bench_report import Run, write_run
from infra.cli.report import stack_capacity
from infra.cli.smoke import SmokeError, resolve_endpoint
from infra.config.errors import ConfigError
from infra.config.stack import config_from_map
from infra.config.stackfiles import StackFileError, stack_config
from infra.planning import benchmark as bm
from infra.render.bench_job import BACKENDS, vllm_bench_args

DEFAULT_POINT_TIMEOUT_S = 900


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack", help="stack name: its plan gives the model's GPUs, planned KV cache and price")
    parser.add_argument("--base-url", help="the OpenAI API base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", help="API key (default: $LLMSERVE_API_KEY, else the stack's api_key output)")
    parser.add_argument("--model", help="served model id (default: the stack's first model)")
    parser.add_argument("--tokenizer", help="tokenizer name or folder (default: the model's source)")
    parser.add_argument(
        "--shapes", default=bm.DEFAULT_SHAPES, help=f"INPUT/OUTPUT tokens (default {bm.DEFAULT_SHAPES})"
    )
    parser.add_argument(
        "--concurrency",
        default=",".join(str(c) for c in bm.DEFAULT_CONCURRENCIES),
        help="rising maximum numbers of requests in flight (default %(default)s)",
    )
    parser.add_argument("--max-prompts", type=int, default=bm.MAX_PROMPTS, help="requests per point at most")
    parser.add_argument(
        "--point-timeout", type=float, default=DEFAULT_POINT_TIMEOUT_S, help="seconds per point (default %(default)s)"
    )
    parser.add_argument("--api", choices=sorted(BACKENDS), default="completions", help="OpenAI API to load")
    parser.add_argument("--replicas", type=int, help="replicas serving (default: the model's maxReplicas)")
    parser.add_argument("--hourly-usd", type=float, help="price per hour (default: the stack's, all GPU nodes up)")
    parser.add_argument("--metrics-url", help="Ray's metrics endpoint, for the engine's KV cache (port 8080)")
    parser.add_argument("--engine-log", type=Path, help="a replica's log with vLLM's 'GPU KV cache size' line")
    parser.add_argument("--note", default="", help="a line the report shows under its title")
    parser.add_argument("--out", type=Path, help="the run's folder (default build/<stack>/bench/<UTC time>)")
    parser.add_argument("--in-cluster", action="store_true", help="run the sweep as a Job next to the service")


def model_entry(capacity: dict, wanted: str | None) -> dict:
    ids = [entry["id"] for entry in capacity["models"]]
    if wanted is None:
        return dict(capacity["models"][0])
    if wanted not in ids:
        raise SmokeError(f"--model {wanted!r} is not a model of stack '{capacity['stack']}'; its models: {ids}", 2)
    return dict(capacity["models"][ids.index(wanted)])


def pricing(args: argparse.Namespace, capacity: dict, entry: dict) -> bm.Pricing:
    replicas = args.replicas if args.replicas is not None else max(1, entry["replicas"]["max"])
    if replicas < 1:
        raise SmokeError(f"--replicas must be at least 1; found {replicas}", 2)
    hourly, basis = bm.stack_hourly_usd(capacity["cost"])
    if args.hourly_usd is not None:
        hourly, basis = args.hourly_usd, "--hourly-usd"
    gpus = (entry.get("capacity") or {}).get("gpus_per_replica")
    return bm.Pricing(replicas=replicas, gpus_per_replica=gpus, hourly_usd=hourly, price_basis=basis)


def check_fits(points: list[bm.SweepPoint], entry: dict) -> None:
    """A shape longer than the model's planned context would be refused by the engine: say so before running."""
    limit = (entry.get("capacity") or {}).get("max_model_len")
    too_long = sorted({p.shape.name for p in points if limit and p.shape.input_tokens + p.shape.output_tokens > limit})
    if too_long:
        raise SmokeError(f"--shapes {', '.join(too_long)}: longer than {entry['id']}'s max_model_len ({limit})", 2)


def engine_capacity(args: argparse.Namespace, folder: Path, model: str) -> tuple[bm.EngineCapacity | None, str]:
    """The engine's KV cache from `--metrics-url` (scrape kept in the folder) or `--engine-log`, and why not."""
    if args.metrics_url:
        try:
            with urllib.request.urlopen(args.metrics_url, timeout=30) as response:
                text = response.read().decode("utf-8", "replace")
        except OSError as error:
            return None, f"--metrics-url {args.metrics_url} does not answer ({error})"
        (folder / "engine-metrics.txt").write_text(text)
        engines = bm.engines_from_metrics(text, model)
        if len(engines) == 1:
            return engines[0], ""
        why = "no cache_config_info gauge" if not engines else f"{len(engines)} engines with different figures"
        return None, f"{why} at {args.metrics_url} (engine-metrics.txt); pass one replica's --engine-log instead"
    if args.engine_log:
        files = (
            sorted(p for p in args.engine_log.rglob("*") if p.is_file())
            if args.engine_log.is_dir()
            else [args.engine_log]
        )
        engines = bm.engines_of_model([path.read_text(errors="replace") for path in files], model)
        if len(engines) == 1:
            return engines[0], ""
        if not engines:
            return None, f"no 'GPU KV cache size' line of {model} in {args.engine_log}"
        return None, f"{len(engines)} engines of {model} with different figures in {args.engine_log}"
    return None, "pass --engine-log (the engines' logs, a file or a folder) or --metrics-url (Ray's metrics)."


def prepare(args: argparse.Namespace, root: Path) -> tuple[Run, list[bm.SweepPoint], Path]:
    """The run to fill, its points and its folder; SmokeError(…, 2) for bad usage."""
    try:
        points = bm.sweep(bm.parse_shapes(args.shapes), bm.parse_concurrencies(args.concurrency), args.max_prompts)
        values, encrypted = stack_config(args.stack, root)
        capacity = stack_capacity(config_from_map(args.stack, values, encrypted))
    except (bm.SweepError, StackFileError, ConfigError) as error:
        raise SmokeError(str(error), 2) from error
    entry = model_entry(capacity, args.model)
    check_fits(points, entry)
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    folder = args.out or root / "build" / args.stack / "bench" / started.strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    run = Run(
        stack=args.stack,
        model=entry["id"],
        base_url="",
        api=args.api,
        tokenizer=args.tokenizer or entry["source"],
        started=started.isoformat(),
        pricing=pricing(args, capacity, entry),
        planned=entry.get("capacity"),
        note=args.note,
    )
    return run, points, folder


def collect(run: Run, points: list[bm.SweepPoint], results: dict[str, Path], failures: dict[str, str]) -> None:
    """The measured points into `run`, in sweep order; a result file vLLM did not write as expected is a failure."""
    for point in points:
        if point.name in results:
            try:
                run.measured.append(bm.measured_from_result(point, json.loads(results[point.name].read_text())))
            except (KeyError, ValueError) as error:
                run.failures.append((point.name, f"its result file lacks {error}"))
        elif point.name in failures:
            run.failures.append((point.name, failures[point.name]))


def point_arguments(point: bm.SweepPoint, *, first: bm.SweepPoint, **settings: str) -> list[str]:
    """A point's `vllm bench serve` arguments; the sweep's first point starts with one warm-up request."""
    return vllm_bench_args(point, warmups=1 if point == first else 0, **settings)


def run(args: argparse.Namespace, root: Path) -> int:
    from infra.cli import bench_cluster, bench_sweep

    try:
        missing = None if args.in_cluster else bench_sweep.vllm_missing()
        if missing:
            raise SmokeError(missing, 2)
        base_url, api_key = ("", None) if args.in_cluster else resolve_endpoint(args, root)
        bench_run, points, folder = prepare(args, root)
        if args.in_cluster:
            results, failures = bench_cluster.run_job(args, root, bench_run, points, folder)
        else:
            bench_run.base_url = base_url
            arguments = functools.partial(
                point_arguments,
                first=points[0],
                base_url=base_url,
                model=bench_run.model,
                tokenizer=bench_run.tokenizer,
                api=args.api,
                result_dir=str(folder / "results"),
            )
            print(f"{len(points)} points against {base_url}; results in {folder}", flush=True)
            outcome = bench_sweep.run_sweep(points, arguments, api_key, folder, args.point_timeout)
            results, failures = outcome.results, outcome.failures
    except SmokeError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    collect(bench_run, points, results, failures)
    bench_run.engine, bench_run.engine_why = engine_capacity(args, folder, bench_run.model)
    report = write_run(bench_run, folder)
    print(f"report: {report}")
    return 0 if not bench_run.failures else 1
