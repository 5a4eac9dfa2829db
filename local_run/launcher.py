"""`python -m local_run <stack>` in a child process, for the e2e tests and the benchmark."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from local_run.errors import LocalRunError

# The line the server prints once it serves; the next line is the JSON that `wait_ready` returns.
READY_MARKER = "llmserve local: ready"


class LaunchedServer:
    """`python -m local_run <stack>` in a child process.

    `wait_ready()` returns the `{"base_url", "models", "api_key"}` the server prints, or raises
    `LocalRunError` with the server's output if it exits or is not ready in time; `stop()` interrupts it as
    Ctrl-C would and returns its exit code.
    """

    def __init__(self, stack: str, port: int, *, ready_timeout_s: float = 600, extra_args: Sequence[str] = ()):
        self.ready_timeout_s = ready_timeout_s
        self.lines: list[str] = []
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_run",
                stack,
                "--port",
                str(port),
                "--ready-timeout",
                str(ready_timeout_s),
                *extra_args,
            ],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None  # opened with stdout=PIPE
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
                    ready: dict = json.loads(self.lines[index + 1])  # one JSON object (local_run/__main__.py)
                    return ready
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                raise LocalRunError(
                    f"the local server exited with {self.process.returncode} before it was ready:\n{self.output}",
                    exit_code=1,
                )
            time.sleep(0.5)
        raise LocalRunError(f"the local server was not ready in time:\n{self.output}", exit_code=1)

    def _tree(self) -> str:
        """The server's processes and their states, for the output of a stop that hangs."""
        import psutil

        try:
            processes = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
            return "processes: " + ", ".join(f"{p.pid} {p.name()} {p.status()}" for p in processes)
        except psutil.Error as error:
            return f"processes unknown ({error})"

    def stop(self, timeout_s: float = 180) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.lines.append(f"llmserve launcher: no exit {timeout_s:.0f} s after Ctrl-C; {self._tree()}")
                self.process.send_signal(signal.SIGUSR1)  # local_run/__main__.py dumps its threads' stacks
                time.sleep(2)
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        return self.process.returncode
