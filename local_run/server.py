"""A local Ray head serving a Serve config as KubeRay would, and the checks it runs before it starts.

`LocalServer` starts `ray start --head` with token authentication, puts the serve_app cluster files on
PYTHONPATH (as the ConfigMap mount does), writes the API key to a file the ingress re-reads (as the mounted
Secret volume is), deploys through the dashboard's declarative API (`serve deploy`), waits for RUNNING, and
always cleans up: everything it wrote goes, except, with `keep_logs`, Ray's logs (`log_dir`, Ray's
`<temp dir>/session_latest/logs`, with Serve's replica logs in `serve/`).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from local_run.errors import LocalRunError
from local_run.serve_config import CPU_ENV
from serve_app.bundle import cluster_sources
from serve_app.contract import API_KEY_FILE_KWARG

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
        self, serve_config: dict, api_key: str | None, *, ready_timeout_s: float = 600, keep_logs: bool = False
    ):
        self.serve_config = serve_config
        self.api_key = api_key
        self.ready_timeout_s = ready_timeout_s
        self.keep_logs = keep_logs
        self.port = serve_config["http_options"]["port"]
        self.workdir = Path(tempfile.mkdtemp(prefix="llmserve-", dir="/tmp"))  # short: Unix socket paths
        self.api_key_file = self.workdir / "api-keys" / "keys"
        self._use_api_key_file()
        self.dashboard_port = free_port()
        self.gcs_port = free_port()
        self.metrics_port = free_port()  # Ray's Prometheus endpoint, port 8080 on the cluster
        self.env = self._environment()
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
        volume, and write the key there. The same reload mechanism as on the cluster reads it."""
        for application in self.serve_config["applications"]:
            kwargs = application["args"].get("ingress_cls_config", {}).get("ingress_extra_kwargs")
            if kwargs is not None and API_KEY_FILE_KWARG in kwargs:
                kwargs[API_KEY_FILE_KWARG] = str(self.api_key_file)
        if self.api_key:
            write_api_keys(self.api_key_file, [self.api_key])

    @property
    def log_dir(self) -> Path:
        """Where Ray writes its logs (Ray's "Configuring Logging": `<temp dir>/session_latest/logs`)."""
        return log_dir(self.workdir)

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
        raise LocalRunError(
            f"the Serve application was not RUNNING after {self.ready_timeout_s:.0f} s:\n{last}", exit_code=1
        )

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


def _serve_status(output: str) -> dict:
    """`serve status` prints YAML, after whatever log lines importing vLLM wrote to stdout."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^(proxies|applications):", line)), len(lines))
    try:
        return yaml.safe_load("\n".join(lines[start:])) or {}
    except yaml.YAMLError:
        return {}
