"""`python -m infra usage`: per-tenant usage from a Prometheus query API (a fake one on 127.0.0.1) and from a text
exposition (the format Ray's metrics port serves; tests/e2e/test_tenants.py reads a live one)."""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from infra.cli.main import main
from infra.cli.usage import histogram_quantile, rows_from_exposition

EXPOSITION = """\
# HELP ray_llmserve_tenant_requests_total Generation requests answered.
# TYPE ray_llmserve_tenant_requests_total counter
ray_llmserve_tenant_requests_total{Component="core_worker",model="m",status="200",tenant="batch"} 30.0
ray_llmserve_tenant_requests_total{Component="core_worker",model="m",status="429",tenant="batch"} 130.0
ray_llmserve_tenant_requests_total{model="m",status="200",tenant="team"} 12.0
ray_llmserve_tenant_rejected_requests_total{limit="requests",model="m",status="429",tenant="batch"} 130.0
ray_llmserve_tenant_prompt_tokens_total{counted="usage",model="m",tenant="batch"} 300.0
ray_llmserve_tenant_completion_tokens_total{counted="usage",model="m",tenant="batch"} 120.0
ray_llmserve_tenant_completion_tokens_total{counted="estimate",model="m",tenant="batch"} 6.0
ray_llmserve_tenant_request_latency_seconds_bucket{le="0.5",model="m",tenant="batch"} 10.0
ray_llmserve_tenant_request_latency_seconds_bucket{le="1.0",model="m",tenant="batch"} 30.0
ray_llmserve_tenant_request_latency_seconds_bucket{le="+Inf",model="m",tenant="batch"} 30.0
ray_llmserve_tenant_request_latency_seconds_sum{model="m",tenant="batch"} 21.0
ray_llmserve_tenant_request_latency_seconds_count{model="m",tenant="batch"} 30.0
ray_serve_num_http_requests_total{route="/v1"} 99.0
"""


def test_the_exposition_is_summed_per_tenant_and_model():
    rows = {row["tenant"]: row for row in rows_from_exposition(EXPOSITION)}
    assert rows["batch"]["requests"] == 160 and rows["batch"]["refused"] == 130
    assert (rows["batch"]["prompt_tokens"], rows["batch"]["completion_tokens"]) == (300, 126)
    assert rows["batch"]["mean_latency_s"] == pytest.approx(0.7)
    # 95 % of 30 = 28.5th observation, in (0.5, 1.0] which holds observations 11-30: 0.5 + 0.5 * 18.5/20
    assert rows["batch"]["p95_latency_s"] == pytest.approx(0.9625)
    assert rows["team"]["requests"] == 12 and math.isnan(rows["team"]["p95_latency_s"])


def test_histogram_quantile_edges():
    assert math.isnan(histogram_quantile(0.95, {}))
    assert histogram_quantile(0.5, {1.0: 0.0, 2.0: 10.0, math.inf: 10.0}) == pytest.approx(1.5)
    assert histogram_quantile(0.99, {1.0: 5.0, math.inf: 10.0}) == 1.0, "the +Inf bucket answers its lower bound"


class FakePrometheus(BaseHTTPRequestHandler):
    queries: ClassVar[list[str]] = []
    auth: ClassVar[list[str | None]] = []

    def do_GET(self):
        parsed = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(parsed.query)["query"][0]
        FakePrometheus.queries.append(query)
        FakePrometheus.auth.append(self.headers.get("Authorization"))
        value = "7" if "requests_total" in query and "rejected" not in query else "2.5"
        result = [{"metric": {"tenant": "team", "model": "m"}, "value": [1700000000, value]}]
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        assert parsed.path == "/prom/api/v1/query"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def prometheus():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    FakePrometheus.queries, FakePrometheus.auth = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prom"
    server.shutdown()


def test_a_window_is_queried_per_tenant_in_the_stacks_namespace(prometheus, capsys):
    code = main(["usage", "dev", "--prometheus-url", prometheus, "--window", "24h", "--cluster", "c1", "--token", "t"])
    out = capsys.readouterr().out
    assert code == 0, out
    selector = '{cluster="c1",namespace="llm"}'
    assert FakePrometheus.queries[0] == (
        f"sum by (tenant, model) (increase(ray_llmserve_tenant_requests_total{selector}[24h]))"
    )
    assert (
        "histogram_quantile(0.95, sum by (le, tenant, model) "
        f"(increase(ray_llmserve_tenant_request_latency_seconds_bucket{selector}[24h])))"
    ) in FakePrometheus.queries
    assert set(FakePrometheus.auth) == {"Bearer t"}
    assert out.splitlines()[0] == "llmserve dev: usage per tenant and model, 24h"
    assert out.splitlines()[2].split() == ["team", "m", "7", "2", "2", "2", "2.50", "2.50"]


def test_json_output_and_an_unreachable_api_is_an_error_not_a_traceback(prometheus, capsys):
    assert main(["usage", "dev", "--prometheus-url", prometheus, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert (row["tenant"], row["requests"], row["p95_latency_s"]) == ("team", 7.0, 2.5)
    assert main(["usage", "dev", "--prometheus-url", "http://127.0.0.1:9/none"]) == 1
    assert capsys.readouterr().err.startswith("error: usage for stack 'dev': ")
