"""Ctrl-C stops the local server even when it was started with SIGINT ignored.

A non-interactive shell starts background commands with SIGINT and SIGQUIT ignored, and a Python started so
installs no KeyboardInterrupt handler: the launcher's SIGINT (local_run/launcher.py, the e2e tier's way to stop
the server) then did nothing, and the server ran until it was killed, leaving Ray behind. The serve loop here
runs against a stand-in LocalServer, so no Ray starts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import time
from pathlib import Path
import local_run.__main__ as runner

class StandIn:
    log_dir = Path("/nonexistent")
    kept_logs = None
    keep_logs = False
    base_url = api_key_file = tenant_key_file = metrics_url = config_hash = "x"
    serve_config_file = dashboard = auth_token_file = "x"

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        print("stand-in stopped", flush=True)

runner.LocalServer = StandIn
prepared = runner._Prepared({}, "k", {}, {}, None, time.monotonic())
raise SystemExit(runner._serve(prepared, 1.0))
"""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_sigint_stops_the_server_even_if_it_started_with_sigint_ignored():
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    assert process.stdout is not None
    for line in process.stdout:  # wait until it serves
        if line.startswith("Ctrl-C stops the server."):
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    try:
        exit_code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("SIGINT did not stop the server") from None
    rest = process.stdout.read()
    assert exit_code == 0, rest
    assert "stand-in stopped" in rest and "llmserve local: stopped" in rest, rest
