"""`python -m infra <command>`: plan a stack offline, check or benchmark a running endpoint, size a model, show
tenants' usage.

Each command lives in its own module and is imported only when chosen: `smoke` and `capacity` run with the
standard library alone (where Pulumi is not installed), `plan` needs the deploy-time environment, and `bench`
runs vLLM's benchmark, so it needs the local environment (or `--in-cluster`, kubectl).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from infra.config.stackfiles import PROJECT_ROOT


def main(argv: list[str] | None = None, root: Path = PROJECT_ROOT) -> int:
    from infra.cli import bench, capacity, plan, smoke, usage

    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan.add_arguments(commands.add_parser("plan", help="plan a stack offline under Pulumi mocks"))
    smoke.add_arguments(commands.add_parser("smoke", help="check a running endpoint; the exit code says pass/fail"))
    bench.add_arguments(
        commands.add_parser("bench", help="benchmark an endpoint: throughput, latency, $ per 1M tokens")
    )
    capacity.add_arguments(commands.add_parser("capacity", help="size a model on a machine (weights, KV cache, cost)"))
    usage.add_arguments(commands.add_parser("usage", help="usage per tenant and model, from the metrics"))
    args = parser.parse_args(argv)
    if args.command == "smoke":
        return smoke.run(args, root)
    if args.command == "bench":
        return bench.run(args, root)
    if args.command == "capacity":
        return capacity.run(args)
    if args.command == "usage":
        return usage.run(args, root)
    return plan.run(args, root)
