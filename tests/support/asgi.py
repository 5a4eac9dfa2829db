"""An in-process ASGI client for the serve_app tests (tests/serve_app/conftest.py hands it out as fixtures).

The client drives an app directly (no sockets, no httpx), so the tests need nothing beyond what
``ray[serve]`` installs: Starlette's TestClient would need httpx, which ray[serve] does not bring.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


def run_coroutine(coroutine: Any) -> Any:
    """Run a coroutine on a private event loop.

    Not `asyncio.run`: that leaves the main thread's current event loop unset afterwards, which breaks
    later tests (Pulumi's mocks call `asyncio.get_event_loop()`).
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(app: Any, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Response:
    """Send one HTTP request to the ASGI `app` and collect its response."""

    async def run() -> list[dict]:
        messages: list[dict] = []
        delivered = False
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            messages.append(message)

        await app(scope, receive, send)
        return messages

    messages = run_coroutine(run())
    start = next(message for message in messages if message["type"] == "http.response.start")
    return Response(
        status=start["status"],
        headers={name.decode("latin-1"): value.decode("latin-1") for name, value in start.get("headers", [])},
        body=b"".join(message.get("body", b"") for message in messages if message["type"] == "http.response.body"),
    )
