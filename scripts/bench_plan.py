"""Time the offline plan of a stack, as a newcomer runs it: `python scripts/bench_plan.py [stack] [runs]`.

Each run is a fresh process (imports included), because that is what `python -m infra plan` costs. Prints each
run and the median; exits 1 if the median exceeds the budget (3 s for prod on a 2-core machine).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_SECONDS = 3.0


def main() -> int:
    stack = sys.argv[1] if len(sys.argv) > 1 else "prod"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    timings = []
    with tempfile.TemporaryDirectory() as out:
        for run in range(runs):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "infra", "plan", stack, "--out", out],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            timings.append(time.perf_counter() - started)
            print(f"run {run + 1}: {timings[-1]:.2f} s")
    median = statistics.median(timings)
    print(f"plan {stack}: median {median:.2f} s over {runs} runs (budget {BUDGET_SECONDS:.1f} s)")
    return 0 if median <= BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
