"""End to end: `python -m infra bench dev` against the shared local CPU server, with vLLM's real benchmark.

A short sweep (one 64/16-token shape at concurrency 1 and 4, 8 requests each) through the API key, with the
tiny model's own tokenizer; the run's folder must hold vLLM's result files, a report with real figures and
prices, the plot, and the engine's KV cache from its start-up line in Ray's logs next to the plan's.

The file sorts after test_local_server.py on purpose: the shared server's read-only tests there have already
scaled the 1.5B model up from zero, so this sweep measures a warm replica and adds no cold start to the tier.

Run in the heavy environment (requirements/local.txt), under the e2e lock:
    .venv-local/bin/python -m pytest -m e2e tests/e2e/test_server_bench.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MODEL = "deepseek-r1-distill-qwen-1.5b"
CPU_CONTEXT = 512  # local_run/serve_config.py CPU_MAX_MODEL_LEN: every local engine's max_model_len


def test_bench_writes_results_a_priced_report_and_a_plot(dev_server, tmp_path):
    out = tmp_path / "bench"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra",
            "bench",
            "dev",
            "--base-url",
            dev_server["base_url"],
            "--api-key",
            dev_server["api_key"],
            "--model",
            MODEL,
            "--tokenizer",
            dev_server["model_paths"][MODEL],
            "--shapes",
            "64/16",
            "--concurrency",
            "1,4",
            "--max-prompts",
            "8",
            "--engine-log",
            dev_server["log_dir"],
            "--note",
            "local CPU server, tiny random-weight model",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(f"bench: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n" + (
        (out / "runner.log").read_text()[-3000:] if (out / "runner.log").exists() else ""
    )

    for concurrency in (1, 4):
        measured = json.loads((out / "results" / f"64-16-c{concurrency}.json").read_text())
        assert (measured["completed"], measured["failed"], measured["max_concurrency"]) == (8, 0, concurrency)
        assert measured["total_output_tokens"] == 8 * 16  # --ignore-eos: every request makes all 16 tokens
        assert measured["output_throughput"] > 0 and measured["median_ttft_ms"] > 0 and measured["p99_tpot_ms"] > 0

    sweep = json.loads((out / "sweep.json").read_text())
    assert [m["point"]["concurrency"] for m in sweep["measured"]] == [1, 4] and sweep["failures"] == []
    engine = sweep["engine"]
    assert engine is not None, sweep["engine_why"]
    assert engine["kv_tokens"] > 0 and engine["max_model_len"] == CPU_CONTEXT

    report = (out / "report.md").read_text()
    print(report)
    assert "**local CPU server, tiny random-weight model**" in report
    assert "| 1 | 8 / 0 | " in report and "| 4 | 8 / 0 | " in report
    rows = [line for line in report.splitlines() if line.startswith(("| 1 |", "| 4 |"))]
    assert all(line.rstrip(" |").split("| ")[-1].startswith("$") for line in rows), rows  # $ per 1M output tokens
    assert "Knee: " in report
    assert f"| KV cache tokens | {engine['kv_tokens']:,} | 557,728 | " in report  # the dev plan's 1.5B figure
    png = (out / "throughput-vs-latency.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
