"""`python -m local_run <stack> [--port 8000] [--weights-store] [--keep-logs]`: serve a stack's Serve app on this
CPU."""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from local_run.errors import LocalRunError
from local_run.launcher import READY_MARKER
from local_run.serve_config import local_serve_config, stack_pipelines, stack_serving, stack_stream_drain_s
from local_run.server import LocalServer, ensure_port_free, ensure_ray_not_running
from local_run.store import serve_from_local_store
from local_run.tenants import LOCAL_TENANT_KEY_FILE, new_tenant_keys, stack_admission
from local_run.tiny_models import UnsupportedModelError, default_cache_dir, tiny_model_for
from staging.local_store import LocalModelStore


@dataclass(frozen=True)
class _Prepared:
    """Everything the server needs, ready before Ray starts."""

    config: dict
    api_key: str | None  # None when the stack turns the API key off
    tenant_keys: dict[str, str]  # tenant -> its key (local_run/tenants.py); empty without tenants or auth
    model_paths: dict[str, Path]
    store: LocalModelStore | None  # the GCS emulator of --weights-store, closed when the server stops
    started: float  # time.monotonic() when the tiny models were asked for


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        prepared = _prepare(args)
    except (LocalRunError, UnsupportedModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    try:
        return _serve(prepared, args.ready_timeout, keep_logs=args.keep_logs)
    finally:
        if prepared.store is not None:
            prepared.store.close()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name, as in Pulumi.<stack>.yaml")
    parser.add_argument("--port", type=int, default=8000, help="port of the OpenAI API on 127.0.0.1")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where tiny models are built and kept")
    parser.add_argument("--ready-timeout", type=float, default=600, help="seconds to wait for RUNNING")
    parser.add_argument(
        "--weights-store",
        action="store_true",
        help="stage the tiny models into a local GCS emulator (the real stager) and serve the "
        "copy read back from it after the manifest check, like the gcsfuse weight source",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep Ray's and Serve's logs when the server stops (they are deleted otherwise); the folder is "
        "printed at start",
    )
    return parser.parse_args(argv)


def _prepare(args: argparse.Namespace) -> _Prepared:
    """The stack's Serve config rewritten for this CPU, with its tiny models built (and staged, with
    --weights-store); nothing is left running when it raises."""
    models, auth = stack_serving(args.stack)
    pipelines = stack_pipelines(args.stack, models)
    admission = stack_admission(args.stack)
    ensure_port_free(args.port, "the OpenAI API")
    ensure_ray_not_running()
    cache_dir = args.cache_dir or default_cache_dir()
    started = time.monotonic()
    model_paths = {model.model_id: tiny_model_for(model.model_source, cache_dir) for model in models}
    print(
        f"tiny models ready in {time.monotonic() - started:.1f} s: "
        + ", ".join(f"{model_id} -> {path}" for model_id, path in model_paths.items()),
        flush=True,
    )
    store = None
    if args.weights_store:
        store, model_paths = serve_from_local_store(model_paths)
    try:
        api_key = os.environ.get("LLMSERVE_LOCAL_API_KEY") or secrets.token_urlsafe(32)
        tenant_keys = new_tenant_keys(admission) if auth.enabled else {}
        if tenant_keys:  # the path is rewritten to the server's own folder (LocalServer._use_api_key_file)
            auth = dataclasses.replace(auth, tenant_key_file=LOCAL_TENANT_KEY_FILE)
        drain_s = stack_stream_drain_s(args.stack)
        config = local_serve_config(models, auth, model_paths, args.port, pipelines, admission, drain_s)
    except BaseException:
        if store is not None:
            store.close()
        raise
    return _Prepared(config, api_key if auth.enabled else None, tenant_keys, model_paths, store, started)


def log_folder_line(folder: Path, keep_logs: bool) -> str:
    """What the runner prints before Ray starts: where the logs go, and whether they outlive the server."""
    fate = "kept when the server stops" if keep_logs else "deleted when the server stops; --keep-logs keeps them"
    return f"llmserve local: Ray and Serve logs in {folder} (Serve's replica logs in serve/; {fate})"


def _serve(prepared: _Prepared, ready_timeout: float, *, keep_logs: bool = False) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM); 0 once it has served, 130 if stopped before it was ready."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM too: both end in LocalServer.stop()

    # SIGINT too, explicitly: a process started in the background by a non-interactive shell inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler, so the launcher's Ctrl-C did nothing.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, interrupt)
    faulthandler.register(signal.SIGUSR1)  # a stop that hangs: the launcher asks for every thread's stack
    local = LocalServer(
        prepared.config,
        prepared.api_key,
        ready_timeout_s=ready_timeout,
        keep_logs=keep_logs,
        tenant_keys=prepared.tenant_keys,
    )
    print(log_folder_line(local.log_dir, keep_logs), flush=True)
    try:
        return _run_until_stopped(local, prepared)
    finally:
        if local.kept_logs is not None:
            print(f"llmserve local: logs kept in {local.kept_logs}", flush=True)


def _run_until_stopped(local: LocalServer, prepared: _Prepared) -> int:
    ready = False
    try:
        with local as server:
            ready = True
            print(f"{READY_MARKER} in {time.monotonic() - prepared.started:.1f} s", flush=True)
            print(
                json.dumps(
                    {
                        "base_url": server.base_url,
                        "models": sorted(prepared.model_paths),
                        "api_key": prepared.api_key,
                        "api_key_file": str(server.api_key_file) if prepared.api_key else None,
                        # The stack's tenants (llmserve:tenants), each with a key made for this server.
                        "tenant_keys": prepared.tenant_keys,
                        "tenant_key_file": str(server.tenant_key_file) if prepared.tenant_keys else None,
                        "metrics_url": server.metrics_url,
                        # Ray's logs, the engines' start-up lines among them (python -m infra bench --engine-log).
                        "log_dir": str(server.log_dir),
                        "model_paths": {model_id: str(path) for model_id, path in prepared.model_paths.items()},
                        # What is deployed, and how to deploy a change to it as KubeRay would (LocalServer.apply).
                        "serve_config_hash": server.config_hash,
                        "serve_config_file": str(server.serve_config_file),
                        "dashboard_url": server.dashboard,
                        "ray_auth_token_file": str(server.auth_token_file),
                    }
                ),
                flush=True,
            )
            print("Ctrl-C stops the server.", flush=True)
            while True:
                time.sleep(1)
    except LocalRunError as error:
        hint = "" if local.keep_logs else " (run again with --keep-logs to read Ray's and Serve's logs afterwards)"
        print(f"error: {error}{hint}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("llmserve local: stopped", flush=True)
        return 0 if ready else 130


if __name__ == "__main__":  # vLLM spawns processes: the guard keeps them from re-running the CLI
    sys.exit(main())
