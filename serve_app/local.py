"""Run a stack's own Serve application on this machine's CPU: `python -m serve_app.local <stack>`.

The serve config is the one the stack's RayService carries, made by the same builder from the same stack
files. Only what a CPU needs is rewritten (`cpu_serve_config`): each model's weights become a tiny
random-weight model of the same architecture (built offline, cached), tensor/pipeline parallel become 1, the
accelerator becomes the CPU, and the context and KV cache shrink. Routing, autoscaling (scale to zero
included), the API-key ingress and its settings stay exactly as configured.

Then, like KubeRay on the cluster: a local Ray head with token authentication (`ray start`), the serve_app
cluster files on PYTHONPATH (as the ConfigMap mount does), the API key in a file that the ingress re-reads
(as the mounted Secret volume is; edit it to rotate keys, see `LocalServer.write_api_keys`), and the config deployed through the dashboard's declarative API (`serve deploy`). The OpenAI API is
served on 127.0.0.1 until interrupted; everything started is stopped and every temporary file removed.

Needs the heavy environment of requirements-local.txt (Ray 2.60, vLLM's CPU build); see the README.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from serve_app.builder import AuthSettings, build_serve_config
from serve_app.bundle import cluster_sources
from serve_app.contract import API_KEY_FILE_KWARG
from serve_app.errors import ModelConfigError
from serve_app.spec import ModelSpec, parse_models

# What a CPU needs and nothing more. A 512-token context keeps the KV cache at VLLM_CPU_KVCACHE_SPACE GiB.
CPU_MAX_MODEL_LEN = 512
CPU_MAX_NUM_SEQS = 16
CPU_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache per engine
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # two engines on two cores: let the OS schedule them
    "HF_HUB_OFFLINE": "1",  # the tiny models are local; never reach for the hub
}
RAY_LOGICAL_CPUS = 8  # placement is by logical CPU; engines, ingress replicas and proxies oversubscribe the cores
# On PYTHONPATH of every process the server starts: its sitecustomize asks Linux for the AMX tile-data state,
# without which vLLM's CPU attention dies with SIGILL on AMX machines (see the module's docstring).
LOCAL_SITE = Path(__file__).resolve().parent / "local_site"
READY_MARKER = "llmserve local: ready"


class LocalRunError(Exception):
    """A clear reason the local server cannot start (exit code 2), or failed to deploy (exit code 1)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


# --- the stack's serve config, rewritten for a CPU -----------------------------------------------------------


def stack_serving(stack: str, root: Optional[Path] = None) -> tuple[tuple[ModelSpec, ...], AuthSettings]:
    """The models and API-key settings of `stack`, read from its stack files as `pulumi up` would."""
    from infra.stackfiles import PROJECT, PROJECT_ROOT, StackFileError, stack_config

    try:
        values, _ = stack_config(stack, root or PROJECT_ROOT)
    except StackFileError as error:
        raise LocalRunError(str(error)) from error
    raw_models = values.get(f"{PROJECT}:models")
    if raw_models is None:
        raise LocalRunError(f"stack '{stack}' sets no {PROJECT}:models")
    try:
        models = parse_models(json.loads(raw_models), key=f"{PROJECT}:models")
    except ModelConfigError as error:
        raise LocalRunError(str(error)) from error
    auth_enabled = values.get(f"{PROJECT}:apiAuth", "true").lower() != "false"
    return models, AuthSettings(enabled=auth_enabled)


def cpu_serve_config(serve_config: Mapping[str, Any], model_paths: Mapping[str, Path], port: int) -> dict:
    """A copy of `serve_config` that runs on a CPU: each model's source becomes its tiny stand-in in
    `model_paths` (by model id), TP/PP 1, the CPU as accelerator, a small context. Nothing else changes."""
    config = copy.deepcopy(dict(serve_config))
    config["http_options"] = {**config.get("http_options", {}), "host": "127.0.0.1", "port": port}
    for application in config["applications"]:
        for llm in application["args"]["llm_configs"]:
            model_id = llm["model_loading_config"]["model_id"]
            llm["model_loading_config"]["model_source"] = str(model_paths[model_id])
            llm.pop("accelerator_type", None)
            llm["accelerator_config"] = {"kind": "cpu"}
            llm["placement_group_config"] = {"bundles": [{"CPU": 1}]}
            engine = llm.setdefault("engine_kwargs", {})
            engine.update(tensor_parallel_size=1, pipeline_parallel_size=1, max_model_len=CPU_MAX_MODEL_LEN,
                          max_num_batched_tokens=CPU_MAX_MODEL_LEN, dtype="bfloat16", enforce_eager=True,
                          max_num_seqs=min(engine.get("max_num_seqs", CPU_MAX_NUM_SEQS), CPU_MAX_NUM_SEQS))
            engine.pop("gpu_memory_utilization", None)  # GPU memory; the CPU backend sizes by CPU_ENV instead
            env_vars = llm.setdefault("runtime_env", {}).setdefault("env_vars", {})
            env_vars.update(CPU_ENV)
    return config


def local_serve_config(models: Sequence[ModelSpec], auth: AuthSettings, model_paths: Mapping[str, Path],
                       port: int) -> dict:
    return cpu_serve_config(build_serve_config(models, auth=auth), model_paths, port)


# --- preflight ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ensure_port_free(port: int, what: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise LocalRunError(f"port {port} ({what}) is already in use on 127.0.0.1 ({error.strerror}); "
                                f"stop what holds it or pass --port") from error


def ensure_ray_not_running() -> None:
    """One Ray per machine for this tool: `ray stop` at shutdown would take down a Ray someone else runs."""
    import psutil

    for process in psutil.process_iter(["name", "cmdline"]):
        name = process.info.get("name") or ""
        if name in ("gcs_server", "raylet"):
            raise LocalRunError(f"Ray is already running on this machine ({name}, pid {process.pid}); stop it "
                                f"with `ray stop` first")


# --- the server ----------------------------------------------------------------------------------------------


class LocalServer:
    """A local Ray head serving `serve_config`; a context manager that always cleans up."""

    def __init__(self, serve_config: dict, api_key: Optional[str], *, ready_timeout_s: float = 600):
        self.serve_config = serve_config
        self.api_key = api_key
        self.ready_timeout_s = ready_timeout_s
        self.port = serve_config["http_options"]["port"]
        self.workdir = Path(tempfile.mkdtemp(prefix="llmserve-", dir="/tmp"))  # short: Unix socket paths
        self.api_key_file = self.workdir / "api-keys" / "keys"
        self._use_api_key_file()
        self.dashboard_port = free_port()
        self.gcs_port = free_port()
        self.metrics_port = free_port()  # Ray's Prometheus endpoint, port 8080 on the cluster
        self.env = self._environment()
        self.started = False

    def _environment(self) -> dict[str, str]:
        pythonpath = self.workdir / "pythonpath"
        for relative, text in cluster_sources().items():
            target = pythonpath / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        env = dict(os.environ)
        env.update(CPU_ENV)
        env.update({
            "PYTHONPATH": os.pathsep.join((str(pythonpath), str(LOCAL_SITE))),
            # Ray 2.60 defaults to token auth; use it, as KubeRay's authOptions.mode=token does on the cluster.
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_urlsafe(32),
            "RAY_USAGE_STATS_ENABLED": "0",
            # Idle Ray workers that once imported vLLM keep ~700 MB each; on a laptop, let them go.
            "RAY_num_workers_soft_limit": "0",
            # Caches that vLLM and torch would otherwise leave in the home directory.
            "VLLM_CACHE_ROOT": str(self.workdir / "vllm-cache"),
            "TORCHINDUCTOR_CACHE_DIR": str(self.workdir / "inductor-cache"),
            "TRITON_CACHE_DIR": str(self.workdir / "triton-cache"),
        })
        return env

    def _use_api_key_file(self) -> None:
        """Point every authenticated ingress at this server's key file, the local stand-in for the Secret
        volume, and write the key there. The same reload mechanism as on the cluster reads it."""
        for application in self.serve_config["applications"]:
            kwargs = application["args"].get("ingress_cls_config", {}).get("ingress_extra_kwargs")
            if kwargs is not None and API_KEY_FILE_KWARG in kwargs:
                kwargs[API_KEY_FILE_KWARG] = str(self.api_key_file)
        if self.api_key:
            write_api_keys(self.api_key_file, [self.api_key])

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self, tool: str, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
        # The CLIs of the environment this runs in, whether or not it is activated.
        executable = Path(sys.executable).parent / tool
        return subprocess.run([str(executable), *arguments], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def start(self) -> None:
        started = self._run(
            "ray", "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(self.gcs_port),
            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
            "--num-cpus", str(RAY_LOGICAL_CPUS), "--num-gpus", "0",
            "--metrics-export-port", str(self.metrics_port), "--temp-dir", str(self.workdir / "ray"),
            "--disable-usage-stats")
        self.started = True
        if started.returncode:
            raise LocalRunError(f"`ray start` failed:\n{started.stdout}\n{started.stderr}", exit_code=1)
        config_path = self.workdir / "serve_config.yaml"
        config_path.write_text(yaml.safe_dump(self.serve_config, sort_keys=True))
        deployed = self._run("serve", "deploy", "--address", self.dashboard, str(config_path))
        if deployed.returncode:
            raise LocalRunError(f"`serve deploy` failed:\n{deployed.stdout}\n{deployed.stderr}", exit_code=1)
        self._wait_until_running()

    def _wait_until_running(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        last = ""
        while time.monotonic() < deadline:
            status = self._run("serve", "status", "--address", self.dashboard, timeout=60)
            last = status.stdout or status.stderr
            applications = _serve_status(status.stdout).get("applications") or {}
            states = {name: app.get("status") for name, app in applications.items()}
            if states and all(state == "RUNNING" for state in states.values()):
                return
            if any(state in ("DEPLOY_FAILED", "UNHEALTHY") for state in states.values()):
                raise LocalRunError(f"the Serve application failed to deploy:\n{last}", exit_code=1)
            time.sleep(2)
        raise LocalRunError(f"the Serve application was not RUNNING after {self.ready_timeout_s:.0f} s:\n{last}",
                            exit_code=1)

    def stop(self) -> None:
        if self.started:
            self._run("ray", "stop", "--force", timeout=120)
            self._kill_leftovers()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """vLLM engine processes are Ray's grandchildren; make sure none outlives the server."""
        import psutil

        marker = str(self.workdir)
        for process in psutil.process_iter(["cmdline", "environ"]):
            try:
                cmdline = " ".join(process.info.get("cmdline") or [])
                environ = process.info.get("environ") or {}
                if marker in cmdline or environ.get("RAY_AUTH_TOKEN") == self.env["RAY_AUTH_TOKEN"]:
                    if process.pid != os.getpid():
                        process.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    def __enter__(self) -> "LocalServer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def write_api_keys(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file atomically (write, then rename), as the kubelet swaps a Secret volume's files, so
    the ingress never reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text("\n".join(keys) + "\n")
    partial.chmod(0o600)
    os.replace(partial, path)


def _serve_status(output: str) -> dict:
    """`serve status` prints YAML, after whatever log lines importing vLLM wrote to stdout."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^(proxies|applications):", line)), len(lines))
    try:
        return yaml.safe_load("\n".join(lines[start:])) or {}
    except yaml.YAMLError:
        return {}


# --- driving the command from tests and benchmarks -------------------------------------------------------------


class LaunchedServer:
    """`python -m serve_app.local <stack>` in a child process, for the e2e tests and the benchmark.

    `wait_ready()` returns the `{"base_url", "models", "api_key"}` the server prints, or raises
    `LocalRunError` with the server's output if it exits or is not ready in time; `stop()` interrupts it as
    Ctrl-C would and returns its exit code.
    """

    def __init__(self, stack: str, port: int, *, ready_timeout_s: float = 600,
                 extra_args: Sequence[str] = ()):
        import threading

        self.ready_timeout_s = ready_timeout_s
        self.lines: list[str] = []
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serve_app.local", stack, "--port", str(port),
             "--ready-timeout", str(ready_timeout_s), *extra_args],
            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self) -> dict:
        deadline = self.started_at + self.ready_timeout_s + 120  # the server's own timeout fires first
        while time.monotonic() < deadline:
            for index, line in enumerate(self.lines):
                if line.startswith(READY_MARKER) and index + 1 < len(self.lines):
                    return json.loads(self.lines[index + 1])
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                raise LocalRunError(f"the local server exited with {self.process.returncode} before it was "
                                    f"ready:\n{self.output}", exit_code=1)
            time.sleep(0.5)
        raise LocalRunError(f"the local server was not ready in time:\n{self.output}", exit_code=1)

    def stop(self, timeout_s: float = 180) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        return self.process.returncode


# --- command line ----------------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    from serve_app.tiny_models import UnsupportedModelError, default_cache_dir, tiny_model_for

    parser = argparse.ArgumentParser(prog="python -m serve_app.local", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name, as in Pulumi.<stack>.yaml")
    parser.add_argument("--port", type=int, default=8000, help="port of the OpenAI API on 127.0.0.1")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where tiny models are built and kept")
    parser.add_argument("--ready-timeout", type=float, default=600, help="seconds to wait for RUNNING")
    parser.add_argument("--weights-store", action="store_true",
                        help="stage the tiny models into a local GCS emulator (the real stager) and serve the "
                             "copy read back from it after the manifest check, like the gcsfuse weight source")
    args = parser.parse_args(argv)
    store = None

    try:
        models, auth = stack_serving(args.stack)
        ensure_port_free(args.port, "the OpenAI API")
        ensure_ray_not_running()
        cache_dir = args.cache_dir or default_cache_dir()
        started = time.monotonic()
        model_paths = {model.model_id: tiny_model_for(model.model_source, cache_dir) for model in models}
        print(f"tiny models ready in {time.monotonic() - started:.1f} s: "
              + ", ".join(f"{model_id} -> {path}" for model_id, path in model_paths.items()), flush=True)
        if args.weights_store:
            store, model_paths = _serve_from_local_store(model_paths)
        api_key = os.environ.get("LLMSERVE_LOCAL_API_KEY") or secrets.token_urlsafe(32)
        config = local_serve_config(models, auth, model_paths, args.port)
    except (LocalRunError, UnsupportedModelError) as error:
        if store is not None:
            store.close()
        print(f"error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM too: both end in LocalServer.stop()

    signal.signal(signal.SIGTERM, interrupt)
    ready = False
    try:
        with LocalServer(config, api_key if auth.enabled else None, ready_timeout_s=args.ready_timeout) as server:
            ready = True
            print(f"{READY_MARKER} in {time.monotonic() - started:.1f} s", flush=True)
            print(json.dumps({"base_url": server.base_url, "models": sorted(model_paths),
                              "api_key": api_key if auth.enabled else None,
                              "api_key_file": str(server.api_key_file) if auth.enabled else None,
                              "metrics_url": server.metrics_url,
                              "model_paths": {model_id: str(path) for model_id, path in model_paths.items()}}),
                  flush=True)
            print("Ctrl-C stops the server.", flush=True)
            while True:
                time.sleep(1)
    except LocalRunError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("llmserve local: stopped", flush=True)
        return 0 if ready else 130
    finally:
        if store is not None:
            store.close()


def _serve_from_local_store(model_paths: Mapping[str, Path]):
    """Stage each tiny model into a local GCS emulator and return the store with the paths to serve from:
    the copies read back from it, each passing the same manifest check the GPU workers run."""
    from infra.render.weights import MANIFEST_CHECK
    from staging.local_store import LocalModelStore
    from staging.sources import StagingError

    store = LocalModelStore(Path(tempfile.mkdtemp(prefix="llmserve-store-")))
    try:
        store.start()
        served = {model_id: store.stage(model_id, path) for model_id, path in model_paths.items()}
        check = subprocess.run([sys.executable, "-c", MANIFEST_CHECK, *map(str, served.values())],
                               capture_output=True, text=True)
        print(check.stdout + check.stderr, end="", flush=True)
        if check.returncode != 0:
            raise LocalRunError("the staged models failed the manifest check", exit_code=1)
    except (StagingError, LocalRunError, OSError) as error:
        store.close()
        raise LocalRunError(f"--weights-store: {error}", exit_code=1) from error
    return store, served


if __name__ == "__main__":  # vLLM spawns processes: the guard keeps them from re-running the CLI
    sys.exit(main())
