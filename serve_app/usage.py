"""Admission and usage accounting as ASGI middleware, inside the API-key check (standard library only; shipped).

For ``POST`` to an OpenAI generation route (``/v1/chat/completions``, ``/v1/completions``), `AdmissionMiddleware`
reads the body's ``model``, asks `serve_app.admission.Admission` for the caller's tenant (set by the key check in
the ASGI scope, `serve_app.contract.TENANT_SCOPE_KEY`) and, refused, answers at once, before any engine work:

* 429 (a tenant's quota) or 503 (the model's capacity and its short wait are exhausted), with ``Retry-After``
  (whole seconds, RFC 9110), ``retry-after-ms`` (milliseconds) and an OpenAI-shaped body
  ``{"error": {"message", "type", "param": null, "code": "rate_limit_exceeded" | "server_overloaded"}}``.

Admitted, the request runs unchanged; when its answer ends, its tokens are charged to the tenant from the
answer's ``usage``: the JSON body's, or, streamed, the last ``data:`` chunk that carries one (a client that
sets ``stream_options: {"include_usage": true}`` gets that chunk from vLLM). A stream without usage is
estimated: one completion token per content chunk (vLLM streams one chunk per decoding step) and one prompt
token per 4 bytes of the request body; the metrics label such counts ``counted="estimate"``.
Every request, refused or not, is reported to a `UsageSink` with its tenant and model (never the key).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from serve_app.admission import DEFAULT_TENANT, Admission, Refusal, Ticket, retry_after_header
from serve_app.contract import TENANT_SCOPE_KEY

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions")
MAX_BODY_BYTES = 64 * 1024 * 1024  # a request body larger than this is passed through unread (and unlimited)
_USAGE_TAIL_BYTES = 64 * 1024  # how much of a non-streamed answer is kept to find its usage


class UsageSink(Protocol):
    def finished(
        self,
        tenant: str,
        model: str,
        status: int,
        prompt_tokens: int,
        completion_tokens: int,
        seconds: float,
        estimated: bool,
    ) -> None: ...

    def refused(self, tenant: str, model: str, refusal: Refusal) -> None: ...


class NoSink:
    def finished(self, *args: Any, **kwargs: Any) -> None:
        pass

    def refused(self, *args: Any, **kwargs: Any) -> None:
        pass


def refusal_response(refusal: Refusal) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of a refusal (see the module docstring)."""
    code = "rate_limit_exceeded" if refusal.status == 429 else "server_overloaded"
    kind = refusal.limit if refusal.status == 429 else "server_error"
    body = json.dumps({"error": {"message": refusal.message, "type": kind, "param": None, "code": code}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"retry-after", retry_after_header(refusal.retry_after_s).encode("ascii")),
        (b"retry-after-ms", str(max(1, round(refusal.retry_after_s * 1000))).encode("ascii")),
    ]
    return headers, body


class _Meter:
    """Watches an answer go by and finds its status and token usage."""

    def __init__(self, request_bytes: int):
        self.status = 500
        self.streamed = False
        self.usage: dict | None = None
        self.chunks = 0
        self._tail = b""
        self._pending = b""
        self._request_bytes = request_bytes

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = {name.lower(): value for name, value in message.get("headers", ())}
            self.streamed = headers.get(b"content-type", b"").startswith(b"text/event-stream")
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if self.streamed:
                self._see_events(body)
            else:
                self._tail = (self._tail + body)[-_USAGE_TAIL_BYTES:]

    def _see_events(self, body: bytes) -> None:
        lines = (self._pending + body).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            line = line.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("usage"), dict):
                self.usage = event["usage"]
            if event.get("choices"):
                self.chunks += 1

    def tokens(self) -> tuple[int, int, bool]:
        """(prompt, completion, estimated)."""
        usage = self.usage
        if usage is None and not self.streamed and self._tail:
            try:
                answer = json.loads(self._tail)
            except ValueError:
                answer = None
            usage = answer.get("usage") if isinstance(answer, dict) else None
        if isinstance(usage, dict):
            return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), False
        if self.streamed:
            return self._request_bytes // 4, self.chunks, True
        return 0, 0, False


class AdmissionMiddleware:
    """See the module docstring. `admission()` returns the current `Admission` (the ingress swaps its limits on
    reconfigure); `clock` times the requests for the latency metric."""

    def __init__(
        self,
        app: ASGIApp,
        admission: Callable[[], Admission],
        sink: UsageSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.app = app
        self.admission = admission
        self.sink = sink if sink is not None else NoSink()
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not _is_generation(scope):
            await self.app(scope, receive, send)
            return
        started = self.clock()
        body, complete = await _read_body(receive)
        replay = _replayer(body, complete, receive)
        if not complete:
            await self.app(scope, replay, send)
            return
        tenant = str(scope.get(TENANT_SCOPE_KEY) or DEFAULT_TENANT)
        model = _model_of(body)
        decided: Ticket | Refusal = await self.admission().admit(tenant, model)
        if isinstance(decided, Refusal):
            self.sink.refused(tenant, model, decided)
            headers, payload = refusal_response(decided)
            await send({"type": "http.response.start", "status": decided.status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        meter = _Meter(len(body))

        async def metered_send(message: Message) -> None:
            meter.see(message)
            await send(message)

        try:
            await self.app(scope, replay, metered_send)
        finally:
            prompt, completion, estimated = meter.tokens()
            self.admission().release(decided, prompt + completion)
            self.sink.finished(tenant, model, meter.status, prompt, completion, self.clock() - started, estimated)


def _is_generation(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path.rstrip("/") in GENERATION_PATHS


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, and whether all of it was read (False past `MAX_BODY_BYTES` or a disconnect)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_BODY_BYTES:
            return b"".join(chunks), False


def _replayer(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the rest of the original stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay


def _model_of(body: bytes) -> str:
    try:
        request = json.loads(body)
    except ValueError:
        return ""
    model = request.get("model") if isinstance(request, dict) else None
    return model if isinstance(model, str) else ""
