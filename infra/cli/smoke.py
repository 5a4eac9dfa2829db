"""`python -m infra smoke <stack>`: check a running endpoint the way a client uses it; the exit code says pass or fail.

Checks, each timed: `GET /v1/models` lists the model; the ingress serves the Serve config of the stack's plan
(`GET /v1/llmserve/config`: its hash equals the plan's and every application of that config is RUNNING); a chat
completion returns the reasoning separately (vLLM 0.29's `message.reasoning`, not DeepSeek's
`reasoning_content`); a streamed chat completion sends chunks and ends with `[DONE]`; a request without a key and
one with a wrong key both get 401, with the CORS header a browser needs to read it (`Access-Control-Allow-Origin`).

The expected config hash is `--config-hash`, else the RayService annotation `llmserve.dev/serve-config-hash` in
the plan's `resources.json` (`--plan`, default `build/<stack>`, what `python -m infra plan <stack>` writes).

Each request may wait `--timeout` seconds; by default as long as a first request can take on the stack: for a
model that scales to zero, a new GPU node when the pool can grow, the image pull, the weight load and the
engine start, at the high end of the plan's cold-start estimates (`capacity.json`); 300 s when every model
always runs, or when the stack's files cannot be read.

The endpoint and key come from `--base-url` / `--api-key` (or `LLMSERVE_API_KEY`), else from the stack's
outputs (`openai_base_url`, `api_key`) through the Pulumi CLI. Whichever source holds a list of keys (a
rotation's "OLD,NEW", say `pulumi stack output api_keys`), the last one is used, as a client would. It runs from
the deploy environment (no cloud library). Exit codes: 0 every check passed, 1 a check failed or the endpoint
does not answer, 2 bad usage (no endpoint or no expected config hash known).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.catalog import SERVE_CONFIG_HASH_ANNOTATION
from infra.cli.plandiff import RAYSERVICE_TYPE
from infra.cli.report import stack_capacity
from infra.config.errors import ConfigError
from infra.config.stack import config_from_map
from infra.config.stackfiles import StackFileError, stack_config
from infra.planning.coldstart import REFERENCE_BYTES_PER_NODE, cold_start_minutes
from infra.render.secrets import current_api_key
from serve_app.contract import SERVED_CONFIG_ROUTE

WRONG_KEY = "llmserve-smoke-wrong-key-000000000000"
SMOKE_ORIGIN = "https://llmserve-smoke.invalid"  # a browser's Origin, to see the CORS header of a 401
WARM_TIMEOUT_S = 300.0  # per request, when no model has to start first
SERVED_CONFIG_PATH = SERVED_CONFIG_ROUTE.removeprefix("/v1")  # requests go below the /v1 base URL
PROMPT = "What is 17 + 25? Answer with the number."


class SmokeError(Exception):
    """The endpoint cannot be checked at all (exit code 1), or the command was misused (exit code 2)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Check:
    name: str
    passed: bool
    seconds: float
    detail: str = ""


@dataclass
class Target:
    base_url: str  # ends with /v1
    api_key: str | None
    timeout_s: float = 300.0
    checks: list[Check] = field(default_factory=list)

    # --- HTTP ------------------------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: dict | None = None, key: str | None = "default", origin: str | None = None
    ) -> http.client.HTTPResponse | urllib.error.HTTPError:
        key = self.api_key if key == "default" else key
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if origin:
            headers["Origin"] = origin
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            # main accepts only http:// and https:// URLs, which urlopen answers with an HTTPResponse.
            response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=self.timeout_s)
            return response
        except urllib.error.HTTPError as error:
            return error  # an HTTP answer: the caller checks the status
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise SmokeError(
                f"{self.base_url + path} does not answer ({reason}); is the endpoint up and "
                f"reachable from here (for an in-cluster URL, run the stack's "
                f"port_forward_command and pass --base-url http://127.0.0.1:8000/v1)?"
            ) from error

    def run(self, name: str, check: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            detail = check()
            passed = True
        except AssertionError as failure:
            detail, passed = str(failure), False
        self.checks.append(Check(name, passed, time.perf_counter() - started, detail))


def _json(response: http.client.HTTPResponse | urllib.error.HTTPError) -> Any:
    text = response.read().decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise AssertionError(f"HTTP {response.status}: not JSON: {text[:200]!r}") from None


def check_models(target: Target, wanted: str | None) -> tuple[str, str]:
    """The model to use and a description; AssertionError when /v1/models is not right."""
    response = target.request("GET", "/models")
    assert response.status == 200, f"HTTP {response.status}: {response.read()[:300]!r}"
    ids = [model.get("id") for model in _json(response).get("data", [])]
    assert ids, "no model listed"
    if wanted is not None:
        assert wanted in ids, f"{wanted!r} not listed; listed: {ids}"
        return wanted, f"{len(ids)} model(s): {', '.join(ids)}"
    return ids[0], f"{len(ids)} model(s): {', '.join(ids)}"


def check_chat(target: Target, model: str, max_tokens: int, reasoning: bool) -> str:
    response = target.request(
        "POST",
        "/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens},
    )
    assert response.status == 200, f"HTTP {response.status}: {response.read()[:300]!r}"
    body = _json(response)
    message = body["choices"][0]["message"]
    tokens = body.get("usage", {}).get("completion_tokens", 0)
    assert tokens > 0, f"no completion tokens: {body}"
    if reasoning:
        if "reasoning" not in message and message.get("reasoning_content"):
            raise AssertionError("the reasoning came back as `reasoning_content`, not vLLM 0.29's `reasoning`")
        assert isinstance(message.get("reasoning"), str) and message["reasoning"], (
            f"no separate reasoning in the message (is a reasoning parser configured?): {message}"
        )
        assert "<think>" not in (message.get("content") or ""), "the reasoning leaked into content"
        return (
            f"{tokens} tokens, reasoning {len(message['reasoning'])} chars, content "
            f"{'none (cut short while thinking)' if message.get('content') is None else len(message['content'])}"
            f"{'' if message.get('content') is None else ' chars'}"
        )
    return f"{tokens} tokens"


def check_stream(target: Target, model: str, max_tokens: int) -> str:
    started = time.perf_counter()
    response = target.request(
        "POST",
        "/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens, "stream": True},
    )
    assert response.status == 200, f"HTTP {response.status}: {response.read()[:300]!r}"
    chunks, first_token_s, done = 0, None, False
    for raw in response:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            done = True
            break
        choices = json.loads(data).get("choices") or [{}]
        delta = choices[0].get("delta") or {}
        if delta.get("content") or delta.get("reasoning"):
            chunks += 1
            if first_token_s is None:
                first_token_s = time.perf_counter() - started
    assert first_token_s is not None, "the stream carried no token"  # set with the first chunk
    assert done, "the stream did not end with data: [DONE]"
    return f"{chunks} chunks with tokens, first after {first_token_s * 1000:.0f} ms"


@dataclass(frozen=True)
class ExpectedConfig:
    """The Serve config hash the endpoint should serve, and where it comes from (for the messages)."""

    config_hash: str
    source: str


def check_served_config(target: Target, expected: ExpectedConfig) -> str:
    """The ingress reports the expected config's hash and every application of that config RUNNING."""
    response = target.request("GET", SERVED_CONFIG_PATH)
    assert response.status == 200, f"HTTP {response.status}: {response.read()[:300]!r}"
    body = _json(response)
    served = body.get("serve_config_hash")
    assert served == expected.config_hash, (
        f"serves config {served}, but {expected.source} says {expected.config_hash}: the endpoint runs another "
        f"Serve config (not applied yet, or the plan is out of date: run `python -m infra plan <stack>`)"
    )
    applications = body.get("applications") or {}
    waiting = {name: state for name, state in applications.items() if state != "RUNNING"}
    assert applications and not waiting, f"config {served} is not running yet: {waiting or 'no application'}"
    return f"config {served} ({expected.source}), {len(applications)} applications RUNNING"


def check_unauthorized(target: Target, key: str | None) -> str:
    response = target.request("GET", "/models", key=key, origin=SMOKE_ORIGIN)
    assert response.status == 401, f"expected 401, got HTTP {response.status}"
    allowed = response.headers.get("Access-Control-Allow-Origin")
    assert allowed in (SMOKE_ORIGIN, "*"), (
        f"the 401 has no CORS header for Origin {SMOKE_ORIGIN} (Access-Control-Allow-Origin: {allowed!r}): "
        "a browser client sees a CORS error instead of the 401"
    )
    return "401, readable cross-origin"


def smoke(
    target: Target, expected: ExpectedConfig, model: str | None = None, max_tokens: int = 64, reasoning: bool = True
) -> bool:
    """Run every check against `target` (results in `target.checks`); True when all passed."""
    chosen: list[str] = []

    def models() -> str:
        name, detail = check_models(target, model)
        chosen.append(name)
        return detail

    target.run("GET /v1/models", models)
    target.run("served config", lambda: check_served_config(target, expected))
    if chosen:
        target.run(f"chat completion ({chosen[0]})", lambda: check_chat(target, chosen[0], max_tokens, reasoning))
        target.run(f"streamed chat completion ({chosen[0]})", lambda: check_stream(target, chosen[0], max_tokens))
    if target.api_key:
        target.run("401 without a key", lambda: check_unauthorized(target, None))
        target.run("401 with a wrong key", lambda: check_unauthorized(target, WRONG_KEY))
    return all(check.passed for check in target.checks)


def report(target: Target) -> str:
    width = max(len(check.name) for check in target.checks)
    lines = [f"smoke test of {target.base_url}"]
    for check in target.checks:
        lines.append(
            f"  {'PASS' if check.passed else 'FAIL'}  {check.name:<{width}}  {check.seconds * 1000:8.0f} ms"
            f"  {check.detail}"
        )
    failed = sum(not check.passed for check in target.checks)
    lines.append(f"{len(target.checks) - failed} passed, {failed} failed")
    return "\n".join(lines)


# --- how long a request may take on the stack -------------------------------------------------------------------


def scale_up_timeout_s(capacity: dict, model: str | None = None) -> float:
    """Seconds a first request may wait, from the stack's capacity.json: for each model (or `model`) that scales
    to zero, the high cold-start estimate of its weight source, plus new GPU nodes when the pool can grow."""
    nodes = capacity["cost"]["gpu_nodes"]
    node_minutes = capacity["cold_start"]["node_provisioning_minutes"]["high"] if nodes["idle"] < nodes["max"] else 0
    worst = WARM_TIMEOUT_S
    for entry in capacity["models"]:
        if (model is not None and entry["id"] != model) or entry["replicas"]["min"] > 0:
            continue
        # An architecture the planner does not know: DeepSeek-R1's figures, the largest.
        minutes = entry["cold_start_minutes"] or cold_start_minutes(int(REFERENCE_BYTES_PER_NODE))
        source = entry["weight_source"]
        start = minutes[source]["high"] if source in minutes else max(m["high"] for m in minutes.values())
        worst = max(worst, (start + node_minutes) * 60)
    return worst


def default_timeout_s(stack: str, root: Path, model: str | None = None) -> tuple[float, str]:
    """The per-request timeout for `stack` and why, read from its stack files (no cloud, no Pulumi CLI)."""
    try:
        values, encrypted = stack_config(stack, root)
        seconds = scale_up_timeout_s(stack_capacity(config_from_map(stack, values, encrypted)), model)
    except (StackFileError, ConfigError) as error:
        return WARM_TIMEOUT_S, f"stack '{stack}' not read ({str(error).splitlines()[0]})"
    if seconds == WARM_TIMEOUT_S:
        return seconds, f"stack '{stack}': no model has to start first"
    return seconds, f"stack '{stack}': a model scaled to zero starts first (node, image, weights, engine)"


# --- finding the endpoint ---------------------------------------------------------------------------------------


def stack_outputs(stack: str, root: Path) -> dict:
    """The stack's outputs through the Pulumi CLI (secrets shown: the key is one)."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise SmokeError(
            f"no --base-url given, and the Pulumi CLI is not installed to read the outputs of "
            f"stack '{stack}'; pass --base-url and --api-key (or set LLMSERVE_API_KEY)",
            exit_code=2,
        )
    result = subprocess.run(
        [pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode:
        raise SmokeError(
            f"`pulumi stack output --stack {stack}` failed: {result.stderr.strip()}; pass --base-url "
            f"and --api-key instead",
            exit_code=2,
        )
    outputs: dict = json.loads(result.stdout or "{}")  # `pulumi stack output --json` prints one object
    return outputs


def expected_config(args: argparse.Namespace, root: Path) -> ExpectedConfig:
    """`--config-hash`, else the hash the stack's plan gives its RayService (standard library: resources.json)."""
    if args.config_hash:
        return ExpectedConfig(args.config_hash, "--config-hash")
    plan = args.plan or root / "build" / args.stack
    resources_file = plan / "resources.json"
    try:
        resources = json.loads(resources_file.read_text())
    except (OSError, ValueError) as error:
        raise SmokeError(
            f"no plan to compare the served config with ({resources_file}: {error}); run "
            f"`python -m infra plan {args.stack}` (or pass --plan <folder> or --config-hash <hash>)",
            exit_code=2,
        ) from error
    hashes = [
        resource["inputs"].get("metadata", {}).get("annotations", {}).get(SERVE_CONFIG_HASH_ANNOTATION)
        for resource in resources
        if isinstance(resource, dict) and resource.get("type") == RAYSERVICE_TYPE
    ]
    if len(hashes) != 1 or not hashes[0]:
        raise SmokeError(
            f"{resources_file} has no RayService with a {SERVE_CONFIG_HASH_ANNOTATION} annotation (a plan "
            f"from before it existed?); run `python -m infra plan {args.stack}` again",
            exit_code=2,
        )
    return ExpectedConfig(hashes[0], f"the plan in {plan}")


def normalized_base_url(url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise SmokeError(f"--base-url must start with http:// or https://; found {url!r}", exit_code=2)
    return url if url.endswith("/v1") else url + "/v1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack", help="stack name; its outputs give the endpoint and key unless flags do")
    parser.add_argument("--base-url", help="the OpenAI API base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", help="API key (default: $LLMSERVE_API_KEY, else the stack's api_key output)")
    parser.add_argument("--model", help="model id to use (default: the first one /v1/models lists)")
    parser.add_argument(
        "--plan",
        type=Path,
        help="the stack's plan folder, whose RayService gives the expected config (default build/<stack>)",
    )
    parser.add_argument("--config-hash", help="the Serve config hash the endpoint must serve (instead of a plan's)")
    parser.add_argument("--max-tokens", type=int, default=64, help="completion tokens per request (default 64)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per request (default: the stack's scale-up from zero, from its cold-start estimates; "
        "300 when every model always runs)",
    )
    parser.add_argument(
        "--no-reasoning",
        action="store_true",
        help="do not require a separate reasoning field (models without a reasoning parser)",
    )


def resolve_endpoint(args: argparse.Namespace, root: Path) -> tuple[str, str | None]:
    """The endpoint's base URL and key: from --base-url/--api-key (or LLMSERVE_API_KEY), else the stack's outputs;
    SmokeError(…, 2) when no URL is known. Every source may hold the accepted keys of a rotation, "OLD,NEW": a
    client sends the newest."""
    base_url = args.base_url
    api_key = current_api_key(args.api_key) or current_api_key(os.environ.get("LLMSERVE_API_KEY"))
    if base_url is None or api_key is None:
        outputs = stack_outputs(args.stack, root)
        base_url = base_url or outputs.get("openai_base_url")
        api_key = api_key or current_api_key(outputs.get("api_key"))
        if not base_url:
            raise SmokeError(f"stack '{args.stack}' has no openai_base_url output; pass --base-url", 2)
    return normalized_base_url(base_url), api_key


def run(args: argparse.Namespace, root: Path | None = None) -> int:
    root = root or Path(__file__).resolve().parents[2]
    try:
        expected = expected_config(args, root)
        base_url, api_key = resolve_endpoint(args, root)
        timeout_s, why = (
            (args.timeout, "--timeout") if args.timeout is not None else default_timeout_s(args.stack, root, args.model)
        )
        target = Target(base_url, api_key, timeout_s=timeout_s)
        print(f"timeout per request: {timeout_s:.0f} s ({why})", flush=True)
        passed = smoke(target, expected, args.model, args.max_tokens, reasoning=not args.no_reasoning)
    except SmokeError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(report(target))
    return 0 if passed else 1
