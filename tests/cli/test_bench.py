"""`python -m infra bench`: the command around vLLM's benchmark, with a stand-in for the benchmark process.

The stand-in speaks the runner's marker protocol (infra/cli/bench_sweep.py) and writes result files with vLLM
0.29's field names; the real benchmark against the real local server is the e2e tier's
(tests/e2e/test_server_bench.py). The in-cluster path runs against a stand-in `kubectl`.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.cli import bench_cluster, bench_sweep
from infra.cli.main import main

KEY = "k" * 32
MODEL = "deepseek-r1-distill-qwen-1.5b"
# One result per point: 100 output tok/s, TTFT p50 rising with the concurrency (ms = 50 x concurrency).
FAKE_RUNNER = """
import json, os, sys, time
for name, argv in json.loads(sys.argv[1]):
    print("LLMSERVE-BENCH-START", name, flush=True)
    if name == os.environ.get("SLOW_POINT"):
        time.sleep(60)
    flags = dict(zip(argv, argv[1:]))
    concurrency = int(flags["--max-concurrency"])
    result = {"completed": int(flags["--num-prompts"]), "failed": 0, "duration": 1.0, "total_output_tokens": 100,
              "output_throughput": 100.0, "median_ttft_ms": 50.0 * concurrency, "p99_ttft_ms": 60.0 * concurrency,
              "median_tpot_ms": 5.0, "p99_tpot_ms": 7.0, "api_key": os.environ["OPENAI_API_KEY"],
              "warmups": flags.get("--num-warmups")}
    with open(os.path.join(flags["--result-dir"], flags["--result-filename"]), "w") as f:
        json.dump(result, f)
    print("LLMSERVE-BENCH-DONE", name, 0, flush=True)
"""


@pytest.fixture
def fake_vllm(monkeypatch):
    monkeypatch.setattr(bench_sweep, "RUNNER", FAKE_RUNNER)
    monkeypatch.setattr(bench_sweep, "vllm_missing", lambda: None)


def _bench(out: Path, *extra: str) -> int:
    endpoint = ["--base-url", "http://127.0.0.1:9/v1", "--api-key", KEY, "--model", MODEL, "--tokenizer", "t"]
    sweep = ["--shapes", "64/16,128/16", "--concurrency", "1,4,16", "--out", str(out)]
    return main(["bench", "dev", *endpoint, *sweep, *extra])


def test_without_vllm_it_says_where_to_run_and_writes_nothing(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    assert _bench(tmp_path / "run") == 2
    error = capsys.readouterr().err
    assert "vLLM is not installed in this environment" in error and "--in-cluster" in error
    assert not (tmp_path / "run").exists()


def test_a_sweep_writes_results_report_and_prices(tmp_path, fake_vllm, capsys):
    """dev prices at $4.37/h (on demand, both L4 nodes up); the 1.5B model runs up to 2 replicas of 1 GPU: 100
    tok/s is 50 per replica and per GPU, and 4.37 / (100 x 3600) x 1e6 = $12.14 per million output tokens.
    TTFT p50 50, 200, 800 ms: the knee is at concurrency 1 (200 > 2 x 50)."""
    out = tmp_path / "run"
    assert _bench(out) == 0
    assert sorted(path.name for path in (out / "results").iterdir()) == [
        "128-16-c1.json",
        "128-16-c16.json",
        "128-16-c4.json",
        "64-16-c1.json",
        "64-16-c16.json",
        "64-16-c4.json",
    ]
    assert json.loads((out / "results" / "64-16-c4.json").read_text())["api_key"] == KEY  # as OPENAI_API_KEY
    # One warm-up request before the first point only (a model scaled to zero is up before anything is timed).
    warmups = {path.stem: json.loads(path.read_text())["warmups"] for path in (out / "results").iterdir()}
    assert warmups == {name: ("1" if name == "64-16-c1" else None) for name in warmups}
    report = (out / "report.md").read_text()
    assert "## 64/16 (64 input, 16 output tokens)" in report
    assert "| 4 | 16 / 0 | 100.0 | 50.0 | 50.0 | 200 / 240 | 5.0 / 7.0 | $12.14 |" in report
    assert "Knee: concurrency 1 (100.0 output tok/s, TTFT p50 50 ms); at 4 the median TTFT is 4.0x" in report
    assert "priced at $4.37/h (the stack's on-demand list price with all 2 GPU node(s) of g2-standard-24 up" in report
    assert "2 replica(s) of 1 GPU(s)" in report
    sweep = json.loads((out / "sweep.json").read_text())
    assert [m["output_tok_s"] for m in sweep["measured"]] == [100.0] * 6
    assert "[6/6] 128-16-c16: measured" in capsys.readouterr().err  # the progress, one line per point off a tty


def test_a_point_past_its_time_bound_is_stopped_and_the_shape_moves_on(tmp_path, fake_vllm, monkeypatch):
    monkeypatch.setenv("SLOW_POINT", "64-16-c4")
    out = tmp_path / "run"
    assert _bench(out, "--point-timeout", "3") == 1
    sweep = json.loads((out / "sweep.json").read_text())
    assert [m["point"]["concurrency"] for m in sweep["measured"]] == [1, 1, 4, 16]
    assert dict(map(tuple, sweep["failures"])) == {
        "64-16-c4": "stopped at its time bound (3 s, --point-timeout)",
        "64-16-c16": "skipped: 64-16-c4 went past its time bound",
    }
    assert "- 64-16-c4: stopped at its time bound" in (out / "report.md").read_text()


def _serve(text: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_engines_kv_cache_from_its_metrics_against_the_plan(tmp_path, fake_vllm):
    """The dev plan gives the 1.5B model 557,728 KV tokens and 34.04 sequences of 16,384; an engine reporting
    278,864 tokens (half) and 17.02 is -50.0% on both."""
    metrics = (
        'ray_vllm_cache_config_info{block_size="16",engine="0",kv_cache_max_concurrency="17.02",'
        'kv_cache_size_tokens="278864",num_gpu_blocks="17429",WorkerId="w1"} 1.0\n'
    )
    server = _serve(metrics)
    try:
        assert _bench(tmp_path / "run", "--metrics-url", f"http://127.0.0.1:{server.server_port}/metrics") == 0
    finally:
        server.shutdown()
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| KV cache tokens | 278,864 | 557,728 | -50.0% |" in report
    assert "| sequences at full context | 17.02 | 34.04 | -50.0% |" in report
    assert (tmp_path / "run" / "engine-metrics.txt").read_text() == metrics


def test_in_cluster_the_job_is_applied_and_its_log_becomes_the_results(tmp_path, monkeypatch):
    calls: list[list[str]] = []
    result = {"completed": 8, "failed": 0, "duration": 2.0, "total_output_tokens": 800, "output_throughput": 400.0}
    result |= {"median_ttft_ms": 80.0, "p99_ttft_ms": 90.0, "median_tpot_ms": 9.0, "p99_tpot_ms": 11.0}
    encoded = base64.b64encode(json.dumps(result).encode()).decode()

    def kubectl(arguments, stdin):
        calls.append(arguments)
        if arguments[:2] == ["apply", "-f"]:
            assert json.loads(stdin)["kind"] == "Job"
        if "get" in arguments:
            return json.dumps({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
        if "logs" in arguments:
            return f"vllm output\nLLMSERVE-BENCH-RESULT 1k-1k-c1 {encoded}\nLLMSERVE-BENCH-FAILED 1k-1k-c4 124\n"
        return ""

    monkeypatch.setattr(bench_cluster, "kubectl", kubectl)
    out = tmp_path / "run"
    code = main(["bench", "prod", "--in-cluster", "--shapes", "1k/1k", "--concurrency", "1,4", "--out", str(out)])
    assert code == 1  # one point failed
    assert [call[:4] for call in calls] == [
        ["-n", "llm", "delete", "job"],
        ["apply", "-f", "-"],
        ["-n", "llm", "get", "job"],
        ["-n", "llm", "logs", "job/llmserve-bench"],
    ]
    report = (out / "report.md").read_text()
    # prod at $185.20/h, one replica of 16 GPUs: 400 tok/s is 25 per GPU; 185.20 / 1.44 = $128.61 per 1M.
    assert "| 1 | 8 / 0 | 400.0 | 25.0 | 400.0 | 80 / 90 | 9.0 / 11.0 | $128.61 |" in report
    assert "- 1k-1k-c4: vLLM's benchmark exited with 124 in the Job (124: its time bound)" in report
    assert json.loads((out / "job.json").read_text())["metadata"]["name"] == "llmserve-bench"


def test_the_engines_kv_cache_from_a_folder_of_logs(tmp_path, fake_vllm):
    """Locally the engine's start-up line is in a Ray worker log of the server's log folder; 2,097,152 tokens
    against the plan's 557,728 is +276.0% (2097152 / 557728 = 3.7601)."""
    logs = tmp_path / "logs"
    (logs / "serve").mkdir(parents=True)
    (logs / "worker-1.out").write_text(
        f"INFO [core.py:123] Initializing a V1 LLM engine with config: served_model_name={MODEL}, x=1\n"
        "INFO [kv_cache_utils.py:2032] GPU KV cache size: 2,097,152 tokens, Maximum concurrency for 512 tokens "
        "per request: 4096.00x\n"
    )
    (logs / "serve" / "replica.log").write_text("nothing here\n")
    assert _bench(tmp_path / "run", "--engine-log", str(logs)) == 0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "From the engine's start-up log at 512 tokens" in report
    assert "| KV cache tokens | 2,097,152 | 557,728 | +276.0% |" in report
