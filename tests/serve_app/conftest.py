"""Fixtures for the serve_app tests: an in-process ASGI client (tests/support/asgi.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import ray_llm
from tests.support.asgi import Response, call, run_coroutine


@pytest.fixture
def run_async() -> Callable[[Any], Any]:
    """``run_async(coroutine)``: run it to completion on a private event loop (tests/support/asgi.py says why)."""
    return run_coroutine


@pytest.fixture
def asgi_call() -> Callable[..., Response]:
    """``asgi_call(app, method, path, headers=None, body=b"") -> Response`` (status, headers, body, json())."""
    return call


@pytest.fixture
def ray_llm_stand_ins() -> Callable[..., None]:
    """``ray_llm_stand_ins(setitem, sys.modules, api_models)``: the Ray Serve LLM names the pipeline ingress
    imports, standing in for modules that need vLLM (tests/support/ray_llm.py)."""
    return ray_llm.install
