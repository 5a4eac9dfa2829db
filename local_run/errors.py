"""The one error type of the local runner."""

from __future__ import annotations


class LocalRunError(Exception):
    """A clear reason the local server cannot start (exit code 2), or failed to deploy (exit code 1)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
