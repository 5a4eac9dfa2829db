"""`python -m infra bench <stack> --in-cluster`: the sweep as a Job next to the service, its results from its log.

One command launches and fetches: it applies the Job that infra/render/bench_job.py renders (an earlier bench
Job of the same name is deleted first), polls it until it has ended, reads its log with `kubectl logs` (which
works after the pod has ended, unlike `kubectl cp`), and writes each point's result JSON, decoded from the
log's marker lines, into the run's folder, where infra/cli/bench.py builds the report. It needs `kubectl` with
the cluster's credentials (the stack's `get_credentials_command` output), not vLLM.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from infra.cli.bench_report import Run
from infra.cli.smoke import SmokeError
from infra.config.stack import config_from_map
from infra.config.stackfiles import stack_config
from infra.planning.benchmark import SweepPoint
from infra.render.bench_job import BENCH_JOB_NAME, FAILED_MARKER, RESULT_MARKER, render_bench_job

POLL_S = 10.0
Kubectl = Callable[[list[str], str | None], str]  # arguments and stdin -> stdout; SmokeError on failure


def kubectl(arguments: list[str], stdin: str | None = None) -> str:
    binary = shutil.which("kubectl")
    if binary is None:
        raise SmokeError("--in-cluster needs kubectl with the cluster's credentials (get_credentials_command)", 2)
    result = subprocess.run([binary, *arguments], input=stdin, capture_output=True, text=True, timeout=300)
    if result.returncode:
        raise SmokeError(f"`kubectl {' '.join(arguments[:3])}` failed: {result.stderr.strip()}")
    return result.stdout


def results_from_log(log: str, points: list[SweepPoint], folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """The result files the Job printed (written to folder/results/), and why each other point has none."""
    result_dir = folder / "results"
    result_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Path] = {}
    failures: dict[str, str] = {}
    names = {point.name for point in points}
    for line in log.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == RESULT_MARKER and words[1] in names:
            try:
                data = json.loads(base64.b64decode(words[2], validate=True))
            except (binascii.Error, ValueError):
                failures[words[1]] = "its result line in the Job's log is not base64 JSON"
                continue
            path = result_dir / f"{words[1]}.json"
            path.write_text(json.dumps(data, indent=1))
            results[words[1]] = path
        elif len(words) == 3 and words[0] == FAILED_MARKER and words[1] in names:
            failures[words[1]] = f"vLLM's benchmark exited with {words[2]} in the Job (124: its time bound)"
    for point in points:
        if point.name not in results and point.name not in failures:
            failures[point.name] = "not in the Job's log (the Job ended first: its deadline, or an error above)"
    return results, failures


def wait_for_job(run_kubectl: Kubectl, namespace: str, deadline_s: float, sleep: Callable[[float], None]) -> str:
    """Poll the Job until it has ended; its final condition ("Complete" or "Failed")."""
    waited = 0.0
    while waited <= deadline_s:
        job = json.loads(run_kubectl(["-n", namespace, "get", "job", BENCH_JOB_NAME, "-o", "json"], None))
        for condition in job.get("status", {}).get("conditions") or []:
            if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
                return str(condition["type"])
        sleep(POLL_S)
        waited += POLL_S
    raise SmokeError(f"the Job {namespace}/{BENCH_JOB_NAME} has not ended after {deadline_s:.0f} s")


def run_job(
    args: argparse.Namespace,
    root: Path,
    run: Run,
    points: list[SweepPoint],
    folder: Path,
    run_kubectl: Kubectl | None = None,
    sleep: Callable[[float], None] | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    run_kubectl, sleep = run_kubectl or kubectl, sleep or time.sleep
    values, encrypted = stack_config(args.stack, root)
    serving = config_from_map(args.stack, values, encrypted).serving
    job = render_bench_job(
        points,
        namespace=serving.namespace,
        image=serving.ray_image,
        model=run.model,
        tokenizer=run.tokenizer,
        api=run.api,
        timeout_s=int(args.point_timeout),
    )
    (folder / "job.json").write_text(json.dumps(job, indent=1))
    namespace = serving.namespace
    run.base_url = f"the Job {namespace}/{BENCH_JOB_NAME} (in the cluster)"
    run_kubectl(["-n", namespace, "delete", "job", BENCH_JOB_NAME, "--ignore-not-found", "--wait=true"], None)
    run_kubectl(["apply", "-f", "-"], json.dumps(job))
    print(
        f"{len(points)} points in the Job {namespace}/{BENCH_JOB_NAME}; `kubectl -n {namespace} logs -f "
        f"job/{BENCH_JOB_NAME}` follows it",
        flush=True,
    )
    ended = wait_for_job(run_kubectl, namespace, float(job["spec"]["activeDeadlineSeconds"]) + 300, sleep)
    log = run_kubectl(["-n", namespace, "logs", f"job/{BENCH_JOB_NAME}"], None)
    (folder / "job.log").write_text(log)
    print(f"the Job ended: {ended}", flush=True)
    return results_from_log(log, points, folder)
