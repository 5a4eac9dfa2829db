"""End to end: three tenants of the dev stack (Pulumi.dev.yaml `llmserve:tenants`) under bounded concurrent load on
the shared local server, one of them far over its quota.

`interactive` and `team` each stream one request after another, first for `IDLE_S` seconds alone (the unloaded
run), then while `batch` (60 requests/min, low priority) sends 8 requests/s for `LOAD_S` seconds. Expected: batch
is admitted what its token bucket allows (10 at once, then 1/s; serve_app/admission.py) within 10 %, the rest
answered 429 with Retry-After before any engine work; the other two see no 429 and keep their p95 time to first
token within 2x of the unloaded run; nothing is a 5xx. Then the usage metrics carry the tenants (never a key) and
`python -m infra usage` prints them. The figures of a run are printed (`-s` shows them); docs/tenants.md has them.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.e2e

MODEL = "deepseek-r1-distill-qwen-1.5b"
BATCH_RPM = 60  # Pulumi.dev.yaml: tenants[batch].requestsPerMinute
BATCH_BURST = 10  # 10 s of its rate (serve_app/admission.py BURST_SECONDS)
BATCH_PER_S = 8  # what batch sends: 8x its quota
LOAD_S = 20
IDLE_S = 8  # seconds of the unloaded run (interactive and team streaming, batch silent)
TIMEOUT_S = 300


def _post(base_url: str, key: str, stream: bool) -> tuple[int, float | None, dict]:
    """One chat completion: (status, seconds to the first content chunk when streamed, headers)."""
    import httpx

    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_tokens": 4,
        "stream": stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    }
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, headers=headers, timeout=TIMEOUT_S) as reply:
        first = None
        for line in reply.iter_lines():
            if first is None and line.startswith("data: {") and '"choices":[{' in line.replace(" ", ""):
                first = time.monotonic() - started
        return reply.status_code, first, dict(reply.headers)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def _stream_until(base_url: str, key: str, stop: threading.Event, results: list) -> None:
    while not stop.is_set():
        results.append(_post(base_url, key, stream=True))


def _streams(base_url: str, keys: dict, during: Callable[[], None]) -> list:
    """interactive and team each stream one request after another while `during()` runs; their results."""
    stop, results = threading.Event(), []
    threads = [
        threading.Thread(target=_stream_until, args=(base_url, keys[tenant], stop, results))
        for tenant in ("interactive", "team")
    ]
    for thread in threads:
        thread.start()
    try:
        during()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return results


def _batch_load(base_url: str, key: str) -> list:
    """batch's requests at BATCH_PER_S for LOAD_S: their results, then the seconds the sending took."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = time.monotonic()
        futures = []
        for index in range(LOAD_S * BATCH_PER_S):
            time.sleep(max(0.0, started + index / BATCH_PER_S - time.monotonic()))
            futures.append(pool.submit(_post, base_url, key, False))
        sent_for = time.monotonic() - started
        return [future.result() for future in futures] + [sent_for]


def test_an_over_quota_tenant_gets_429s_at_its_rate_and_the_others_keep_their_latency(dev_server):
    base_url, keys = dev_server["base_url"], dev_server["tenant_keys"]
    assert sorted(keys) == ["batch", "interactive", "team"]
    started = time.monotonic()
    for tenant in ("interactive", "team", "batch"):  # warm: the model may be at zero replicas
        assert _post(base_url, keys[tenant], stream=False)[0] == 200
    warmed = time.monotonic()
    print(f"\nwarm-up (a start from zero replicas if the model had none): {warmed - started:.1f} s")
    # The unloaded run: the same two streams, without batch; meanwhile batch's bucket fills up again (10 s).
    idle = _streams(base_url, keys, lambda: time.sleep(IDLE_S))
    time.sleep(max(0.0, warmed + 11 - time.monotonic()))
    batch: list = []
    others = _streams(base_url, keys, lambda: batch.extend(_batch_load(base_url, keys["batch"])))
    sent_for = batch.pop()

    statuses = [status for status, _, _ in idle + others + batch]
    assert all(status < 500 for status in statuses), f"5xx answers: {sorted(set(statuses))}"
    accepted = sum(1 for status, _, _ in batch if status == 200)
    refused = [headers for status, _, headers in batch if status == 429]
    allowed = BATCH_BURST + BATCH_RPM / 60 * sent_for
    idle_p95 = _p95([first for _, first, _ in idle if first is not None])
    loaded_p95 = _p95([first for _, first, _ in others if first is not None])
    print(f"after the warm-up: {time.monotonic() - warmed:.1f} s")
    print(
        f"batch: {len(batch)} sent in {sent_for:.1f} s, {accepted} admitted (allowed {allowed:.1f}), "
        f"{len(refused)} x 429; others: {len(others)} streamed, p95 TTFT {loaded_p95 * 1000:.0f} ms loaded vs "
        f"{idle_p95 * 1000:.0f} ms idle ({loaded_p95 / idle_p95:.2f}x)"
    )
    assert accepted + len(refused) == len(batch)
    assert abs(accepted - allowed) <= 0.1 * allowed, f"batch admitted {accepted}, its quota allows {allowed:.1f}"
    assert all(int(headers["retry-after"]) >= 1 and "retry-after-ms" in headers for headers in refused)
    assert all(status == 200 for status, _, _ in idle + others), "interactive and team are within their quotas"
    assert loaded_p95 <= 2 * idle_p95, f"p95 TTFT {loaded_p95:.3f} s under load vs {idle_p95:.3f} s idle"


def _metrics_text(url: str) -> str:
    import httpx

    return httpx.get(url, timeout=30).text


def test_usage_is_exported_per_tenant_never_with_a_key_and_infra_usage_prints_it(dev_server):
    """After the load test above: Ray exports application metrics every few seconds, so wait for batch's 429s."""
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        text = _metrics_text(dev_server["metrics_url"])
        if "ray_llmserve_tenant_rejected_requests_total{" in text and 'tenant="batch"' in text:
            break
        time.sleep(2)
    assert 'tenant="batch"' in text and "ray_llmserve_tenant_prompt_tokens_total" in text, text[-2000:]
    for key in dev_server["tenant_keys"].values():
        assert key not in text, "a tenant's key in the metrics"
    usage = subprocess.run(
        [sys.executable, "-m", "infra", "usage", "dev", "--metrics-url", dev_server["metrics_url"], "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert usage.returncode == 0, usage.stderr
    rows = {(row["tenant"], row["model"]): row for row in json.loads(usage.stdout)["rows"]}
    assert rows[("batch", MODEL)]["refused"] > 0 and rows[("batch", MODEL)]["requests"] > 0
    assert rows[("interactive", MODEL)]["completion_tokens"] > 0
