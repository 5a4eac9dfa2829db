"""A local Ray head serving a Serve config as KubeRay would, and the checks it runs before it starts.

`LocalServer` starts `ray start --head` with token authentication, puts the serve_app cluster files on
PYTHONPATH (as the ConfigMap mount does), writes the API key to a file the ingress re-reads (as the mounted
Secret volume is), deploys the way KubeRay does (the whole declarative config as JSON in a PUT to the
dashboard's ``/api/serve/applications/``, KubeRay's `UpdateDeployments`), waits until every application of
that config, its ``config-<hash>`` marker included, is RUNNING in the dashboard's answer to a GET of the
same path (what KubeRay copies into the RayService status), and always cleans up: everything it wrote goes,
except, with `keep_logs`, Ray's logs (`log_dir`, Ray's `<temp dir>/session_latest/logs`, with Serve's replica
logs in `serve/`) and the Serve config last deployed. `apply` deploys a changed config to the running server
the same way.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from local_run.errors import LocalRunError
from local_run.serve_config import CPU_ENV
from serve_app.builder import serve_config_hash, stamp_serve_config
from serve_app.bundle import cluster_sources
from serve_app.contract import API_KEY_FILE_KWARG, INGRESS_APP_BUILDER, INGRESS_KWARGS_ARG, TENANT_KEY_FILE_KWARG
from serve_app.tenants import format_tenant_keys

SERVE_APPLICATIONS_API = "/api/serve/applications/"  # the dashboard's declarative API (PUT) and status (GET)
FAILED_STATES = ("DEPLOY_FAILED", "UNHEALTHY")
RAY_LOGICAL_CPUS = 8  # placement is by logical CPU; engines, ingress replicas and proxies oversubscribe the cores
# On PYTHONPATH of every process the server starts: its sitecustomize asks Linux for the AMX tile-data state,
# without which vLLM's CPU attention dies with SIGILL on AMX machines (see the module's docstring).
LOCAL_SITE = Path(__file__).resolve().parent / "site"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]  # an AF_INET socket's name is (host, port)
        return port


def ensure_port_free(port: int, what: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise LocalRunError(
                f"port {port} ({what}) is already in use on 127.0.0.1 ({error.strerror}); "
                f"stop what holds it or pass --port"
            ) from error


def ensure_ray_not_running() -> None:
    """One Ray per machine for this tool: `ray stop` at shutdown would take down a Ray someone else runs."""
    import psutil

    for process in psutil.process_iter(["name", "cmdline"]):
        name = process.info.get("name") or ""
        if name in ("gcs_server", "raylet"):
            raise LocalRunError(
                f"Ray is already running on this machine ({name}, pid {process.pid}); stop it with `ray stop` first"
            )


class LocalServer:
    """A local Ray head serving `serve_config`; a context manager that always cleans up."""

    def __init__(
        self,
        serve_config: dict,
        api_key: str | None,
        *,
        ready_timeout_s: float = 600,
        keep_logs: bool = False,
        tenant_keys: Mapping[str, str] | None = None,
    ):
        self.serve_config = copy_config(serve_config)
        self.api_key = api_key
        self.tenant_keys = dict(tenant_keys or {})  # tenant -> its key (local_run/tenants.py)
        self.ready_timeout_s = ready_timeout_s
        self.keep_logs = keep_logs
        self.port = serve_config["http_options"]["port"]
        self.workdir = Path(tempfile.mkdtemp(prefix="llmserve-", dir="/tmp"))  # short: Unix socket paths
        self.api_key_file = self.workdir / "api-keys" / "keys"
        self.tenant_key_file = self.workdir / "api-keys" / "tenant-keys"  # the Secret's tenant-keys item
        self._use_api_key_file()
        self.dashboard_port = free_port()
        self.gcs_port = free_port()
        self.metrics_port = free_port()  # Ray's Prometheus endpoint, port 8080 on the cluster
        self.env = self._environment()
        self.auth_token_file = self.workdir / "ray-auth-token"  # for tests that call the dashboard themselves
        self.auth_token_file.write_text(self.env["RAY_AUTH_TOKEN"])
        self.auth_token_file.chmod(0o600)
        self.started = False
        self.kept_logs: Path | None = None  # set when the server stops with keep_logs

    def _environment(self) -> dict[str, str]:
        pythonpath = self.workdir / "pythonpath"
        for relative, text in cluster_sources().items():
            target = pythonpath / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        env = dict(os.environ)
        env.update(CPU_ENV)
        env.update(
            {
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
            }
        )
        return env

    def _use_api_key_file(self) -> None:
        """Point every authenticated ingress at this server's key file, the local stand-in for the Secret
        volume, and write the key there. The same reload mechanism as on the cluster reads it. The config's
        hash follows the edit."""
        for application in self.serve_config["applications"]:
            if application["import_path"] != INGRESS_APP_BUILDER:
                continue
            kwargs = application["args"].get(INGRESS_KWARGS_ARG)
            if kwargs is not None and API_KEY_FILE_KWARG in kwargs:
                kwargs[API_KEY_FILE_KWARG] = str(self.api_key_file)
            if kwargs is not None and TENANT_KEY_FILE_KWARG in kwargs:
                kwargs[TENANT_KEY_FILE_KWARG] = str(self.tenant_key_file)
        self.serve_config = stamp_serve_config(self.serve_config)
        if self.api_key:
            write_api_keys(self.api_key_file, [self.api_key])
            write_tenant_keys(self.tenant_key_file, self.tenant_keys)

    @property
    def log_dir(self) -> Path:
        """Where Ray writes its logs (Ray's "Configuring Logging": `<temp dir>/session_latest/logs`)."""
        return log_dir(self.workdir)

    @property
    def config_hash(self) -> str:
        return serve_config_hash(self.serve_config)

    @property
    def serve_config_file(self) -> Path:
        return self.workdir / "serve_config.yaml"  # what is deployed now, as YAML

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
        return subprocess.run(
            [str(executable), *arguments], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self) -> None:
        started = self._run(
            "ray",
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(self.gcs_port),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(self.dashboard_port),
            "--num-cpus",
            str(RAY_LOGICAL_CPUS),
            "--num-gpus",
            "0",
            "--metrics-export-port",
            str(self.metrics_port),
            "--temp-dir",
            str(self.workdir / "ray"),
            "--disable-usage-stats",
        )
        self.started = True
        if started.returncode:
            raise LocalRunError(f"`ray start` failed:\n{started.stdout}\n{started.stderr}", exit_code=1)
        self.apply(self.serve_config)

    def apply(self, serve_config: Mapping[str, Any]) -> None:
        """Deploy `serve_config` (stamped: `stamp_serve_config`) as KubeRay does, and wait until it runs."""
        self.put_serve_config(serve_config)
        self.wait_until_running(serve_config)

    def put_serve_config(self, serve_config: Mapping[str, Any]) -> None:
        """The PUT KubeRay's `UpdateDeployments` sends: the whole config, as JSON, to the dashboard."""
        self.serve_config = copy_config(serve_config)
        self.serve_config_file.write_text(yaml.safe_dump(self.serve_config, sort_keys=True))
        try:
            self._dashboard_request("PUT", json.dumps(self.serve_config).encode())
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            raise LocalRunError(f"the dashboard refused the Serve config (HTTP {error.code}):\n{detail}", 1) from error

    def application_statuses(self) -> dict[str, dict]:
        """Every Serve application's status and message, as KubeRay's `GetMultiApplicationStatus` reads them."""
        details: dict = json.loads(self._dashboard_request("GET"))
        return {
            name: {"status": app.get("status"), "message": app.get("message", "")}
            for name, app in (details.get("applications") or {}).items()
        }

    def wait_until_running(self, serve_config: Mapping[str, Any]) -> None:
        """Until every application of `serve_config` is RUNNING; raises on a failed one or at the timeout."""
        wanted = sorted(application["name"] for application in serve_config["applications"])
        deadline = time.monotonic() + self.ready_timeout_s
        states: dict[str, dict] = {}
        while time.monotonic() < deadline:
            states = self.application_statuses()
            if all(states.get(name, {}).get("status") == "RUNNING" for name in wanted):
                return
            failed = {name: states[name] for name in wanted if states.get(name, {}).get("status") in FAILED_STATES}
            if failed:
                raise LocalRunError(f"a Serve application failed to deploy: {json.dumps(failed, indent=2)}", 1)
            time.sleep(2)
        summary = {name: states.get(name, {}).get("status", "absent") for name in wanted}
        raise LocalRunError(f"not RUNNING after {self.ready_timeout_s:.0f} s: {summary}", exit_code=1)

    def _dashboard_request(self, method: str, body: bytes | None = None) -> bytes:
        headers = {"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}", "Content-Type": "application/json"}
        request = urllib.request.Request(self.dashboard + SERVE_APPLICATIONS_API, body, headers, method=method)
        with urllib.request.urlopen(request, timeout=120) as response:
            data: bytes = response.read()
            return data

    def stop(self) -> Path | None:
        """Stop Ray and remove what the server wrote; the folder of the logs kept (with `keep_logs`), or None."""
        if self.started:
            self._run("ray", "stop", "--force", timeout=120)
            self._kill_leftovers()
        return clean_workdir(self.workdir, keep_logs=self.keep_logs)

    def _kill_leftovers(self) -> None:
        """vLLM engine processes are Ray's grandchildren; make sure none outlives the server."""
        import psutil

        marker = str(self.workdir)
        for process in psutil.process_iter(["cmdline", "environ"]):
            try:
                cmdline = " ".join(process.info.get("cmdline") or [])
                environ = process.info.get("environ") or {}
                ours = marker in cmdline or environ.get("RAY_AUTH_TOKEN") == self.env["RAY_AUTH_TOKEN"]
                if ours and process.pid != os.getpid():
                    process.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    def __enter__(self) -> LocalServer:
        try:
            self.start()
        except BaseException:
            self.kept_logs = self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kept_logs = self.stop()


def log_dir(workdir: Path) -> Path:
    """Ray's log folder for a server whose `--temp-dir` is `workdir / "ray"`."""
    return workdir / "ray" / "session_latest" / "logs"


def clean_workdir(workdir: Path, *, keep_logs: bool) -> Path | None:
    """Remove a server's folder; with `keep_logs`, all of it but Ray's temp dir (its logs) and the Serve config it
    deployed, so the API key file, the code copy and the compile caches go either way. Returns the log folder
    kept, or None."""
    if not keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
        return None
    for child in workdir.iterdir() if workdir.is_dir() else ():
        if child.name in ("ray", "serve_config.yaml"):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    return log_dir(workdir) if log_dir(workdir).is_dir() else None


def write_api_keys(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file atomically (write, then rename), as the kubelet swaps a Secret volume's files, so
    the ingress never reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text("\n".join(keys) + "\n")
    partial.chmod(0o600)
    os.replace(partial, path)


def write_tenant_keys(path: Path, keys: Mapping[str, str]) -> None:
    """The tenants' key file (serve_app/tenants.py's format), replaced atomically like `write_api_keys`."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(format_tenant_keys({name: (key,) for name, key in keys.items()}))
    partial.chmod(0o600)
    os.replace(partial, path)


def copy_config(serve_config: Mapping[str, Any]) -> dict:
    """A deep copy through JSON: what the dashboard receives, and safe to edit."""
    copied: dict = json.loads(json.dumps(serve_config))
    return copied
