"""Time the local server: `.venv-local/bin/python scripts/bench_local.py [stack] [requests]`.

Reports the time from launch to ready (tiny models, Ray, `serve deploy`, RUNNING), then for each model the
first request (which includes a scale-up from zero where the stack allows it) and the latency of the
following requests (16 completion tokens each): median and worst. A measurement, not a test.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serve_app.local import LaunchedServer, free_port  # noqa: E402


def main() -> int:
    import openai

    stack = sys.argv[1] if len(sys.argv) > 1 else "dev"
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    launched = LaunchedServer(stack, free_port())
    try:
        info = launched.wait_ready()
        print(f"{stack}: ready in {time.monotonic() - launched.started_at:.1f} s")
        client = openai.OpenAI(base_url=info["base_url"], api_key=info["api_key"] or "none", timeout=300,
                               max_retries=0)
        for model in info["models"]:
            timings = []
            for _ in range(requests + 1):
                started = time.perf_counter()
                client.completions.create(model=model, prompt="The sky is", max_tokens=16)
                timings.append(time.perf_counter() - started)
            first, rest = timings[0], timings[1:]
            print(f"{model}: first request {first:.2f} s; next {len(rest)}: median "
                  f"{statistics.median(rest) * 1000:.0f} ms, worst {max(rest) * 1000:.0f} ms")
    finally:
        print(f"stopped with exit code {launched.stop()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
