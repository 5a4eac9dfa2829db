"""Fixtures for the serve_app tests: an in-process ASGI client (tests/support/asgi.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.asgi import Response, call, run_coroutine


@pytest.fixture
def run_async() -> Callable[[Any], Any]:
    """``run_async(coroutine)``: run it to completion on a private event loop (tests/support/asgi.py says why)."""
    return run_coroutine


@pytest.fixture
def asgi_call() -> Callable[..., Response]:
    """``asgi_call(app, method, path, headers=None, body=b"") -> Response`` (status, headers, body, json())."""
    return call
