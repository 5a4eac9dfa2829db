"""End to end: the dev stack's own Serve application on this CPU, through the official `openai` client.

`python -m local_run dev` builds tiny models of the stack's architectures, starts Ray, deploys the
stack's serve config as KubeRay does (a PUT of the whole config to the dashboard's /api/serve/applications/)
and serves the OpenAI API with the project's API-key ingress. Both dev models scale to zero, so the first
request to each also exercises Serve's scale-up from zero.

Run in the heavy environment (requirements/local.txt):
    .venv-local/bin/python -m pytest -m e2e tests/e2e
The server is the tier's shared one (tests/e2e/conftest.py); one that never answers fails every test (none is skipped).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from pathlib import Path

import pytest
import yaml

from local_run.server import free_port, write_api_keys
from serve_app.builder import model_llm_configs, serve_config_hash, stamp_serve_config

pytestmark = pytest.mark.e2e

STACK = "dev"
MODELS = ["deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b"]
PIPELINES = ["distill-chain", "distill-guarded"]  # OpenAI model ids too (tests/e2e/test_pipelines.py)
REQUEST_TIMEOUT_S = 300  # a cold start from zero replicas is part of the first request to each model


@pytest.fixture
def server(dev_server):
    """The e2e tier's shared dev server (tests/e2e/conftest.py); it fails the test if it never answers."""
    return dev_server


def client(info, api_key=None):
    import openai

    return openai.OpenAI(
        base_url=info["base_url"], api_key=api_key or info["api_key"], timeout=REQUEST_TIMEOUT_S, max_retries=0
    )


def test_models_lists_every_model_of_the_stack(server):
    assert sorted(model.id for model in client(server).models.list().data) == sorted(MODELS + PIPELINES)


@pytest.mark.parametrize("model", MODELS)
def test_first_request_to_each_model_is_a_one_word_completion(server, model):
    """The first forward pass of a freshly started engine on a one-token prompt: on a CPU with AMX this is
    where vLLM 0.29's AMX attention kernel used to die with SIGILL (it uses AMX without asking Linux for the
    tile-data state; local_run/site/sitecustomize.py asks in every process). Runs before any other
    request to the model, and both models start from zero replicas, so it is that first forward pass."""
    response = client(server).completions.create(model=model, prompt="hello", max_tokens=4)
    assert response.model == model
    assert response.usage.completion_tokens > 0, response
    assert isinstance(response.choices[0].text, str)


@pytest.mark.parametrize("model", MODELS)
def test_chat_completion_on_every_model(server, model):
    response = client(server).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Why is the sky blue?"}], max_tokens=8
    )
    assert response.model == model
    assert response.choices[0].finish_reason in ("length", "stop"), response
    assert response.usage.completion_tokens > 0, response


def test_completion(server):
    response = client(server).completions.create(model=MODELS[0], prompt="The sky is", max_tokens=8)
    assert response.model == MODELS[0]
    assert response.usage.completion_tokens > 0, response
    assert isinstance(response.choices[0].text, str)


def test_streamed_chat_completion(server):
    stream = client(server).chat.completions.create(
        model=MODELS[0], messages=[{"role": "user", "content": "Count to three."}], max_tokens=8, stream=True
    )
    chunks = list(stream)
    assert len(chunks) >= 2, f"expected several chunks, got {chunks}"
    assert chunks[-1].choices[0].finish_reason in ("length", "stop") or chunks[-2].choices[0].finish_reason
    assert all(chunk.model == MODELS[0] for chunk in chunks)


@pytest.mark.parametrize("api_key", ["", "not-the-key-0123456789"], ids=["missing", "wrong"])
def test_requests_without_the_right_key_get_401(server, api_key):
    import httpx
    import openai

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.get(f"{server['base_url']}/models", headers=headers, timeout=30)
    assert response.status_code == 401, response.text
    if api_key:
        with pytest.raises(openai.AuthenticationError) as raised:
            client(server, api_key=api_key).models.list()
        assert raised.value.status_code == 401


# --- day-2 tools against the live server ------------------------------------------------------------------------


def run_smoke(server, config_hash: str, max_tokens: int):
    """`python -m infra smoke` against the live server, as a user runs it (a subprocess, stdlib only)."""
    import subprocess
    import sys

    arguments = ["--base-url", server["base_url"], "--api-key", server["api_key"], "--model", MODELS[0]]
    arguments += ["--max-tokens", str(max_tokens), "--config-hash", config_hash]
    return subprocess.run(
        [sys.executable, "-m", "infra", "smoke", STACK, *arguments],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_smoke_command_passes_against_the_local_server(server):
    """`python -m infra smoke` (stdlib only) against the real Serve app: reasoning in vLLM 0.29's field."""
    result = run_smoke(server, server["serve_config_hash"], max_tokens=16)
    print(result.stdout)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "6 passed, 0 failed" in result.stdout, result.stdout
    served = "PASS  served config"
    assert any(
        line.strip().startswith(served) and server["serve_config_hash"] in line for line in result.stdout.splitlines()
    )


def test_smoke_command_fails_when_another_config_is_served(server):
    wrong = "0" * 16
    result = run_smoke(server, wrong, max_tokens=4)
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    assert f"serves config {server['serve_config_hash']}, but --config-hash says {wrong}" in result.stdout, (
        result.stdout
    )


def test_the_ingress_reports_the_served_config_behind_the_key(server):
    import httpx

    url = f"{server['base_url']}/llmserve/config"
    assert httpx.get(url, timeout=30).status_code == 401
    body = httpx.get(url, headers={"Authorization": f"Bearer {server['api_key']}"}, timeout=30).json()
    digest = server["serve_config_hash"]
    assert body == {
        "serve_config_hash": digest,
        "applications": {
            f"config-{digest}": "RUNNING",
            "llm": "RUNNING",
            **{f"model-{model}": "RUNNING" for model in MODELS},
        },
    }, body


def test_smoke_command_fails_clearly_on_a_dead_url():
    import subprocess
    import sys

    url = f"http://127.0.0.1:{free_port()}/v1"
    result = subprocess.run(
        [sys.executable, "-m", "infra", "smoke", STACK, "--base-url", url, "--api-key", "x" * 20, "--config-hash", "x"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and f"{url}/models does not answer" in result.stderr, result


def scraped_names(metrics_url: str) -> set[str]:
    import httpx

    text = httpx.get(metrics_url, timeout=30).text
    return {
        re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_every_metric_the_cpu_server_can_export_is_exported_under_the_listed_name(server):
    """The dashboard and alerts query these names; a rename in Ray or vLLM must fail here, not in production."""
    from infra.render.metrics import LOCAL_METRICS

    # Prefix-cache hits need a repeated prompt longer than one KV block; the other counters need a request.
    prompt = "Repeat after me: " + " ".join(f"word{i}" for i in range(80))
    for _ in range(2):
        client(server).completions.create(model=MODELS[0], prompt=prompt, max_tokens=4)
    # The pipeline metrics need a pipeline run and a guard denial (the dev stack's rule-based guard).
    for pipeline, content in ((PIPELINES[0], "Hi"), (PIPELINES[1], "my password")):
        client(server).chat.completions.create(
            model=pipeline, messages=[{"role": "user", "content": content}], max_tokens=4
        )
    wanted = {name for metric in LOCAL_METRICS for name in metric.exported_names}
    deadline = time.monotonic() + 90  # Ray's metrics agent exports on an interval
    while True:
        missing = wanted - scraped_names(server["metrics_url"])
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not missing, f"listed in infra/render/metrics.py METRICS as local, but not exported: {sorted(missing)}"


# --- a change to one model, applied the way KubeRay applies it -------------------------------------------------


def _dashboard(server, method="GET", body=None):
    """The dashboard's declarative API, as KubeRay calls it: PUT the whole config, GET the statuses."""
    import httpx

    token = Path(server["ray_auth_token_file"]).read_text()
    response = httpx.request(
        method,
        f"{server['dashboard_url']}/api/serve/applications/",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    response.raise_for_status()
    return response.json() if method == "GET" else None


def _live(server):
    """(status by application, actor ids of the RUNNING replicas by application)."""
    applications = _dashboard(server)["applications"]
    statuses = {name: app["status"] for name, app in applications.items()}
    actors = {
        name: sorted(
            replica["actor_id"]
            for deployment in app["deployments"].values()
            for replica in deployment["replicas"]
            if replica.get("state") == "RUNNING"
        )
        for name, app in applications.items()
    }
    return statuses, actors


class SteadyLoad:
    """Completions to one model, back to back, in a thread: every answer's outcome and latency."""

    def __init__(self, server, model):
        self.server, self.model = server, model
        self.results: list[tuple[bool, float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = client(self.server).completions.create(model=self.model, prompt="hi there", max_tokens=2)
                self.results.append((response.usage.completion_tokens > 0, time.monotonic() - started, ""))
            except Exception as error:  # every failure counts against "answered throughout"
                self.results.append((False, time.monotonic() - started, repr(error)))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_S)


# The local server caps every model's context at 512 tokens (local_run/serve_config.py), so the stream runs
# seconds, not minutes, past the stop: this shows Serve letting it finish; the unit tests pin the 900 s bound
# (graceful_shutdown_timeout_s, tests/stacks/test_disruption_plan.py) that Ray's default 20 s would cut.
DRAIN_STREAM_TOKENS = 480


class LongStream:
    """One long streamed completion in a thread (vLLM's ignore_eos: always the full length): when each chunk
    arrived and how the stream ended."""

    def __init__(self, server, model, max_tokens):
        self.server, self.model, self.max_tokens = server, model, max_tokens
        self.chunk_times: list[float] = []
        self.finish_reason, self.error = None, None
        self.first_chunk = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            stream = client(self.server).completions.create(
                model=self.model,
                prompt="Tell me a long story.",
                max_tokens=self.max_tokens,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            for chunk in stream:
                self.chunk_times.append(time.monotonic())
                self.first_chunk.set()
                self.finish_reason = chunk.choices[0].finish_reason or self.finish_reason
        except Exception as error:  # a cut stream ends here
            self.error = repr(error)
        finally:
            self.first_chunk.set()

    def __enter__(self):
        self._thread.start()
        assert self.first_chunk.wait(REQUEST_TIMEOUT_S) and self.error is None, self.error
        return self

    def __exit__(self, *exc_info):
        self._thread.join(timeout=REQUEST_TIMEOUT_S)


@pytest.mark.mutates_dev_server
def test_a_change_to_one_model_restarts_only_that_model(server):
    """KubeRay applies an in-place change by PUTting the whole declarative config to the dashboard. Changing the
    7B model's maxNumSeqs (engine option) must restart its replica only: the 1.5B model's replica and the OpenAI
    ingress keep their actors and answer throughout. Also checks what `pulumi up`'s wait relies on: right after
    the PUT returns, the changed application is DEPLOYING and the new config's marker is listed. And a stream
    of the 7B in flight when its replica is told to stop completes: a stopping replica lets its requests finish
    (graceful_shutdown_timeout_s, streamDrainSeconds)."""
    changed, steady = "deepseek-r1-distill-qwen-7b", "deepseek-r1-distill-qwen-1.5b"
    for model in (changed, steady):  # both with a running replica (they scale to zero)
        client(server).completions.create(model=model, prompt="hello", max_tokens=2)
    _, before = _live(server)
    assert before[f"model-{changed}"] and before[f"model-{steady}"] and before["llm"], before

    config = yaml.safe_load(Path(server["serve_config_file"]).read_text())
    assert serve_config_hash(config) == server["serve_config_hash"]
    (llm,) = [c for c in model_llm_configs(config) if c["model_loading_config"]["model_id"] == changed]
    llm["engine_kwargs"]["max_num_seqs"] = llm["engine_kwargs"]["max_num_seqs"] // 2
    new = stamp_serve_config(config)
    old_marker, new_marker = f"config-{server['serve_config_hash']}", f"config-{serve_config_hash(new)}"
    assert old_marker != new_marker

    with SteadyLoad(server, steady) as load, LongStream(server, changed, DRAIN_STREAM_TOKENS) as stream:
        time.sleep(0.5)
        started = time.monotonic()
        _dashboard(server, "PUT", new)
        right_after, _ = _live(server)
        while True:
            statuses, _ = _live(server)
            if all(statuses.get(app["name"]) == "RUNNING" for app in new["applications"]):
                break
            assert time.monotonic() - started < 600, f"the new config did not run in 600 s: {statuses}"
            assert "DEPLOY_FAILED" not in statuses.values(), statuses
            time.sleep(1)
        running_after = time.monotonic() - started
        time.sleep(3)
    _, after = _live(server)

    assert right_after[f"model-{changed}"] == "DEPLOYING", right_after
    assert (
        right_after.get(new_marker) in ("DEPLOYING", "RUNNING")
        and right_after.get(old_marker, "DELETING") == "DELETING"
    )
    assert after[f"model-{steady}"] == before[f"model-{steady}"], "the unchanged model's replica was restarted"
    assert after["llm"] == before["llm"], "the OpenAI ingress was restarted"
    assert not set(after[f"model-{changed}"]) & set(before[f"model-{changed}"]), "the changed model kept its replica"
    failures = [result for result in load.results if not result[0]]
    answered = [latency for ok, latency, _ in load.results if ok]
    print(
        f"one-model change: RUNNING after {running_after:.1f} s; {steady}: {len(answered)} answers, "
        f"{len(failures)} failures, slowest {max(answered):.2f} s"
    )
    assert not failures and len(answered) >= 10, failures[:3]
    print(
        f"drain: the {changed} stream went on for {stream.chunk_times[-1] - started:.1f} s after its replica was "
        f"told to stop ({len(stream.chunk_times)} chunks, {stream.finish_reason}, error {stream.error})"
    )
    assert stream.error is None and stream.finish_reason == "length", f"the stream was cut: {stream.error}"
    assert len(stream.chunk_times) >= DRAIN_STREAM_TOKENS // 2, len(stream.chunk_times)
    assert stream.chunk_times[-1] > started, "the stream ended before the stop: nothing was drained"
    body = client(server).models.list()
    assert sorted(model.id for model in body.data) == sorted(MODELS + PIPELINES), "the pipelines outlive a model change"
    response = client(server).completions.create(model=changed, prompt="hello", max_tokens=2)
    assert response.usage.completion_tokens > 0


# --- key rotation: the same key file and reload interval as on the cluster --------------------------------------

# The README's bound: the ingress re-reads its key file every 10 s; allow 5 s for a request already in flight.
ROTATION_BOUND_S = 15


def _status(server, key):
    import httpx

    return httpx.get(f"{server['base_url']}/models", headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


def _poll_until(server, *, steady_key, changing_key, wanted):
    """Poll until `changing_key` answers `wanted`; `steady_key` must get 200 on every poll meanwhile.
    Returns the seconds it took."""
    started = time.monotonic()
    while True:
        steady = _status(server, steady_key) if steady_key else 200
        assert steady == 200, (
            f"a key valid throughout the rotation got {steady} after {time.monotonic() - started:.1f} s"
        )
        if _status(server, changing_key) == wanted:
            return time.monotonic() - started
        assert time.monotonic() - started < ROTATION_BOUND_S, (
            f"the rotated key did not answer {wanted} within {ROTATION_BOUND_S:.0f} s"
        )
        time.sleep(0.5)


@pytest.mark.mutates_dev_server
def test_key_rotation_reaches_the_running_ingress_without_a_restart(server):
    """Add a second key, then remove the first, by rewriting the key file as the kubelet rewrites a Secret
    volume; no restart, no redeploy. Runs last: it leaves the original key in place again."""
    key_file = Path(server["api_key_file"])
    first, second = server["api_key"], secrets.token_urlsafe(32)
    try:
        write_api_keys(key_file, [first, second])
        added_after = _poll_until(server, steady_key=first, changing_key=second, wanted=200)
        write_api_keys(key_file, [second])
        removed_after = _poll_until(server, steady_key=second, changing_key=first, wanted=401)
        print(
            f"rotation: new key accepted after {added_after:.1f} s, old key refused after {removed_after:.1f} s "
            f"(bound {ROTATION_BOUND_S:.0f} s)"
        )
    finally:
        write_api_keys(key_file, [first])
        _poll_until(server, steady_key=None, changing_key=first, wanted=200)
