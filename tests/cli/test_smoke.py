"""`python -m infra smoke`: the checks against a small stand-in OpenAI server on 127.0.0.1.

The stand-in answers the way vLLM 0.29 behind the project's ingress does (or, per test, in one wrong way);
the real thing is checked by the e2e tier (tests/e2e/test_local_server.py runs the command against the
local CPU server).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.cli.main import main

KEY = "k" * 32
CONFIG_HASH = "0123456789abcdef"


class Behaviour:
    reasoning_field = "reasoning"
    stream_done = True
    check_key = True
    cors_on_401 = True  # the project's ingress: a 401 carries the app's CORS headers
    served_hash = CONFIG_HASH
    model_state = "RUNNING"


def make_handler(behaviour: Behaviour):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _authorized(self) -> bool:
            if behaviour.check_key and self.headers.get("Authorization") != f"Bearer {KEY}":
                origin = self.headers.get("Origin") if behaviour.cors_on_401 else None
                self._send(401, {"error": {"message": "Incorrect API key provided."}}, origin)
                return False
            return True

        def _send(self, status: int, body: dict, origin: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            if origin:
                self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if not self._authorized():
                return
            if self.path == "/v1/llmserve/config":  # serve_app.ingress ConfiguredOpenAiIngress.served_config
                applications = {
                    f"config-{behaviour.served_hash}": "RUNNING",
                    "llm": "RUNNING",
                    "model-deepseek-r1": behaviour.model_state,
                }
                self._send(200, {"serve_config_hash": behaviour.served_hash, "applications": applications})
                return
            self._send(200, {"object": "list", "data": [{"id": "deepseek-r1"}, {"id": "other"}]})

        def do_POST(self):
            if not self._authorized():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not body.get("stream"):
                message = {"role": "assistant", "content": None, behaviour.reasoning_field: "Adding 17 and 25"}
                self._send(
                    200,
                    {
                        "model": body["model"],
                        "choices": [{"message": message, "finish_reason": "length"}],
                        "usage": {"completion_tokens": 8},
                    },
                )
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in ("Adding", " 17"):
                chunk = {"choices": [{"delta": {"reasoning": piece}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if behaviour.stream_done:
                self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

    return Handler


@pytest.fixture
def endpoint():
    behaviour = Behaviour()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(behaviour))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", behaviour
    server.shutdown()
    server.server_close()


def smoke(url, *extra, config_hash=CONFIG_HASH):
    expected = ["--config-hash", config_hash] if config_hash else []
    return main(["smoke", "dev", "--base-url", url, "--api-key", KEY, "--timeout", "10", *expected, *extra])


def test_a_correct_endpoint_passes_every_check_and_prints_latencies(endpoint, capsys):
    url, _ = endpoint
    assert smoke(url) == 0
    out = capsys.readouterr().out
    assert f"smoke test of {url}/v1" in out
    for name in (
        "GET /v1/models",
        "served config",
        "chat completion (deepseek-r1)",
        "streamed chat completion (deepseek-r1)",
        "401 without a key",
        "401 with a wrong key",
    ):
        assert any(line.strip().startswith(f"PASS  {name}") and " ms " in line for line in out.splitlines()), out
    assert "6 passed, 0 failed" in out and "content none (cut short while thinking)" in out
    assert f"config {CONFIG_HASH} (--config-hash), 3 applications RUNNING" in out


def test_the_model_flag_picks_a_listed_model_and_refuses_an_unlisted_one(endpoint, capsys):
    url, _ = endpoint
    assert smoke(url + "/v1/", "--model", "other") == 0
    assert "chat completion (other)" in capsys.readouterr().out
    assert smoke(url, "--model", "missing") == 1
    assert "'missing' not listed; listed: ['deepseek-r1', 'other']" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, failure",
    [
        (("reasoning_field", "reasoning_content"), "came back as `reasoning_content`, not vLLM 0.29's `reasoning`"),
        (("stream_done", False), "the stream did not end with data: [DONE]"),
        (("check_key", False), "expected 401, got HTTP 200"),
        (("cors_on_401", False), "the 401 has no CORS header for Origin https://llmserve-smoke.invalid"),
        (
            ("served_hash", "fedcba9876543210"),
            "serves config fedcba9876543210, but --config-hash says 0123456789abcdef: the endpoint runs another",
        ),
        (("model_state", "DEPLOY_FAILED"), "is not running yet: {'model-deepseek-r1': 'DEPLOY_FAILED'}"),
    ],
)
def test_each_wrong_behaviour_fails_its_check_and_the_exit_code(endpoint, capsys, change, failure):
    url, behaviour = endpoint
    setattr(behaviour, *change)
    assert smoke(url) == 1
    out = capsys.readouterr().out
    assert failure in out and "FAIL" in out, out


def write_plan(folder, config_hash):
    folder.mkdir(parents=True, exist_ok=True)
    rayservice = {
        "type": "kubernetes:ray.io/v1:RayService",
        "name": "llm-serve-rayservice",
        "parent": "llm-serve",
        "inputs": {"metadata": {"annotations": {"llmserve.dev/serve-config-hash": config_hash}}},
    }
    (folder / "resources.json").write_text(
        json.dumps([{"type": "kubernetes:core/v1:Namespace", "inputs": {}}, rayservice])
    )


def test_the_expected_config_comes_from_the_stacks_plan(endpoint, capsys, tmp_path):
    url, _ = endpoint
    write_plan(tmp_path / "plan", CONFIG_HASH)
    assert smoke(url, "--plan", str(tmp_path / "plan"), config_hash=None) == 0
    assert f"config {CONFIG_HASH} (the plan in {tmp_path / 'plan'})" in capsys.readouterr().out
    write_plan(tmp_path / "other", "1111111111111111")
    assert smoke(url, "--plan", str(tmp_path / "other"), config_hash=None) == 1
    assert "serves config 0123456789abcdef, but the plan in" in capsys.readouterr().out


def test_the_default_plan_is_build_stack_under_the_project(endpoint, capsys, tmp_path):
    url, _ = endpoint
    args = ["smoke", "dev", "--base-url", url, "--api-key", KEY, "--timeout", "10"]
    assert main(args, root=tmp_path) == 2, "no plan, no --config-hash: nothing to compare with"
    err = capsys.readouterr().err
    assert str(tmp_path / "build" / "dev" / "resources.json") in err and "run `python -m infra plan dev`" in err
    write_plan(tmp_path / "build" / "dev", CONFIG_HASH)
    assert main(args, root=tmp_path) == 0


def test_a_plan_without_the_hash_annotation_is_a_usage_error(capsys, tmp_path):
    write_plan(tmp_path, "")
    assert main(["smoke", "dev", "--base-url", "http://127.0.0.1:9/v1", "--plan", str(tmp_path)]) == 2
    assert "has no RayService with a llmserve.dev/serve-config-hash annotation" in capsys.readouterr().err


def test_a_target_that_does_not_answer_names_the_url(capsys):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert smoke(f"http://127.0.0.1:{port}/v1") == 1
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{port}/v1/models does not answer" in err and "port_forward_command" in err


def test_without_an_endpoint_and_without_the_pulumi_cli_it_says_what_to_pass(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("LLMSERVE_API_KEY", raising=False)
    assert main(["smoke", "dev", "--config-hash", CONFIG_HASH]) == 2
    assert "pass --base-url and --api-key" in capsys.readouterr().err


def test_a_url_without_a_scheme_is_refused(capsys):
    assert main(["smoke", "dev", "--base-url", "127.0.0.1:8000", "--api-key", KEY, "--config-hash", CONFIG_HASH]) == 2
    assert "--base-url must start with http:// or https://; found '127.0.0.1:8000'" in capsys.readouterr().err


def test_smoke_runs_where_pulumi_is_not_installed():
    """The heavy local env and a client's laptop may lack Pulumi: the smoke path must not import it."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.modules['pulumi'] = None; from infra.cli.main import main; "
        "sys.exit(main(['smoke', 'dev', '--base-url', 'http://127.0.0.1:9', '--api-key', 'x', '--config-hash', 'x']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "http://127.0.0.1:9/v1/models does not answer" in result.stderr, result


def test_the_default_timeout_allows_the_stacks_scale_up_from_zero():
    """dev's models scale to zero on a pool that scales to zero: the first request waits for an L4 node (10 min at
    the high end), then the image, the 7B weights from the Hub and the engine (12.6 min): 22.6 min. staging and
    prod always run their model: a request waits no longer than an answer takes."""
    from infra.cli.plan import PROJECT_ROOT
    from infra.cli.smoke import default_timeout_s

    assert default_timeout_s("dev", PROJECT_ROOT)[0] == 1356.0
    assert default_timeout_s("dev", PROJECT_ROOT, "deepseek-r1-distill-qwen-1.5b")[0] == 1326.0
    assert default_timeout_s("staging", PROJECT_ROOT)[0] == default_timeout_s("prod", PROJECT_ROOT)[0] == 300.0
    assert default_timeout_s("nosuch", PROJECT_ROOT) == (
        300.0,
        "stack 'nosuch' not read (no stack file Pulumi.nosuch.yaml; known stacks: dev, prod, staging)",
    )


def test_the_scale_up_counts_a_new_node_only_when_the_pool_can_grow():
    from infra.cli.smoke import scale_up_timeout_s

    minutes = {"huggingface": {"low": 4.5, "high": 12.0}, "gcsfuse": {"low": 4.5, "high": 9.0}}
    capacity = {
        "cold_start": {"node_provisioning_minutes": {"low": 5.0, "high": 10.0}},
        "cost": {"gpu_nodes": {"idle": 0, "max": 2}},
        "models": [
            {"id": "zero", "replicas": {"min": 0, "max": 1}, "weight_source": "gcsfuse", "cold_start_minutes": minutes},
            {
                "id": "warm",
                "replicas": {"min": 1, "max": 1},
                "weight_source": "huggingface",
                "cold_start_minutes": minutes,
            },
        ],
    }
    assert scale_up_timeout_s(capacity) == (9.0 + 10.0) * 60
    assert scale_up_timeout_s(capacity, "warm") == 300.0
    capacity["cost"]["gpu_nodes"] = {"idle": 2, "max": 2}  # a static pool: the nodes are there
    assert scale_up_timeout_s(capacity) == 9.0 * 60


def test_the_timeout_used_is_printed(endpoint, capsys):
    url, _ = endpoint
    assert smoke(url) == 0
    assert "timeout per request: 10 s (--timeout)" in capsys.readouterr().out


def test_during_a_rotation_the_newest_configured_key_is_used():
    from infra.render.secrets import current_api_key

    assert current_api_key("old-key-0000000000000000,new-key-1111111111111111") == "new-key-1111111111111111"
    assert current_api_key("old-key-0000000000000000 new-key-1111111111111111") == "new-key-1111111111111111"
    assert current_api_key(" only-key-000000000000 ") == "only-key-000000000000"
    assert current_api_key("") is None and current_api_key(None) is None


OLD_KEY = "o" * 32  # the stand-in accepts only KEY: sending "OLD,NEW" whole, or OLD, gets 401


@pytest.mark.parametrize("source", ["--api-key", "LLMSERVE_API_KEY", "api_key output"])
def test_a_rotation_list_from_any_source_sends_only_the_newest_key(endpoint, capsys, monkeypatch, source):
    """During a rotation a client may hold "OLD,NEW" from wherever it got its key; smoke sends NEW alone."""
    from infra.cli import smoke as smoke_module

    url, _ = endpoint
    rotation = f"{OLD_KEY},{KEY}"
    args = ["smoke", "dev", "--base-url", url, "--timeout", "10", "--config-hash", CONFIG_HASH]
    monkeypatch.delenv("LLMSERVE_API_KEY", raising=False)
    if source == "--api-key":
        args += ["--api-key", rotation]
    elif source == "LLMSERVE_API_KEY":
        monkeypatch.setenv("LLMSERVE_API_KEY", rotation)
    else:
        monkeypatch.setattr(smoke_module, "stack_outputs", lambda stack, root: {"api_key": rotation})
    assert main(args) == 0, capsys.readouterr()
    assert "6 passed, 0 failed" in capsys.readouterr().out
