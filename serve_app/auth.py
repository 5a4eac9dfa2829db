"""API-key authentication for the OpenAI routes, as plain ASGI middleware.

Ray Serve LLM 2.60 has no API-key check of its own, so the project's ingress
(`serve_app.ingress.AuthenticatedOpenAiIngress`) installs `ApiKeyMiddleware` on the FastAPI app that
`build_openai_app` builds. This module is shipped to the cluster (see `serve_app.bundle`) and so imports
only the standard library (it is plain ASGI; Starlette is needed only for type names); it is tested
without Ray or vLLM.

Contract:

* The accepted keys come from an environment variable whose *name* is in the Serve config
  (`ingress_extra_kwargs.api_key_env`); its value is one or more keys separated by commas or whitespace,
  so a key can be rotated by deploying "old,new" and later "new". The value itself never appears in any
  config: the pods get it from a Kubernetes Secret.
* Every HTTP or WebSocket request needs ``Authorization: Bearer <key>``; otherwise the answer is HTTP 401
  with an OpenAI-style JSON error body and ``WWW-Authenticate: Bearer``. Deny by default: new routes that a
  later Ray adds to the app are protected too.
* Exempt: paths under ``/-/`` (Serve's own ``/-/healthz`` and ``/-/routes``; the Serve proxy answers those
  itself, so this is belt and braces) and CORS preflight requests (``OPTIONS`` with ``Origin`` and
  ``Access-Control-Request-Method``), which browsers send without credentials and which the app's
  CORSMiddleware answers without reaching any endpoint.
* Keys are compared in constant time: the presented key and every accepted key are hashed with SHA-256
  and compared with `hmac.compare_digest`, always against all accepted keys, so neither the length nor
  the position of a matching key leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from serve_app.contract import DEFAULT_API_KEY_ENV, ENV_NAME_PATTERN

if TYPE_CHECKING:  # only the ASGI type names; at run time this module needs nothing but the stdlib
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "ApiKeyConfigError",
    "ApiKeyMiddleware",
    "ApiKeyVerifier",
    "api_key_auth_installed",
    "install_api_key_auth",
    "load_api_keys",
]

# Short keys are guessable; refuse to start with one rather than serve behind it.
MIN_API_KEY_LENGTH = 16
EXEMPT_PATH_PREFIXES: tuple[str, ...] = ("/-/",)
_KEY_SEPARATORS = re.compile(r"[,\s]+")


class ApiKeyConfigError(RuntimeError):
    """The API-key environment variable is missing, empty or holds a key that is too short.

    Raised when the ingress replica starts, so that a misconfigured deployment fails loudly (the Serve
    application goes to DEPLOY_FAILED) instead of running open or rejecting every request silently.
    """


def parse_api_keys(value: str) -> tuple[str, ...]:
    """Split the variable's value into keys (commas and/or whitespace separate them; empties are dropped)."""
    return tuple(key for key in _KEY_SEPARATORS.split(value) if key)


def load_api_keys(env_name: str, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The keys in environment variable `env_name`; raises `ApiKeyConfigError` if there is no usable key."""
    if not ENV_NAME_PATTERN.match(env_name or ""):
        raise ApiKeyConfigError(f"api_key_env must be an environment variable name; found {env_name!r}")
    environ = os.environ if environ is None else environ
    raw = environ.get(env_name)
    if raw is None:
        raise ApiKeyConfigError(
            f"environment variable {env_name} is not set on this Ray pod, so the OpenAI routes would have no "
            "accepted API key; set it from a Kubernetes Secret on every Ray container (head and workers)"
        )
    keys = parse_api_keys(raw)
    if not keys:
        raise ApiKeyConfigError(f"environment variable {env_name} is empty; it must hold at least one API key")
    short = [index for index, key in enumerate(keys) if len(key) < MIN_API_KEY_LENGTH]
    if short:
        raise ApiKeyConfigError(
            f"environment variable {env_name}: key number(s) {', '.join(str(i + 1) for i in short)} "
            f"are shorter than {MIN_API_KEY_LENGTH} characters; use long random keys "
            "(for example `openssl rand -hex 32`)"
        )
    return keys


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeyVerifier:
    """Checks a presented key against the accepted ones in constant time."""

    def __init__(self, keys: Iterable[str]):
        self._digests = tuple(_digest(key) for key in keys)
        if not self._digests:
            raise ApiKeyConfigError("at least one API key is required")

    @classmethod
    def from_env(cls, env_name: str, environ: Mapping[str, str] | None = None) -> ApiKeyVerifier:
        return cls(load_api_keys(env_name, environ))

    def __len__(self) -> int:
        return len(self._digests)

    def verify(self, presented: str) -> bool:
        presented_digest = _digest(presented)
        matched = False
        for accepted in self._digests:  # no early exit: the time does not depend on which key matched
            matched |= hmac.compare_digest(accepted, presented_digest)
        return matched


def _error_body(message: str, code: str) -> bytes:
    # The shape OpenAI's API uses for 401s, so OpenAI client libraries raise their AuthenticationError.
    return json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    ).encode("utf-8")


MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. Send it in the Authorization header using Bearer auth "
    "(Authorization: Bearer YOUR_KEY)."
)
INVALID_KEY_MESSAGE = "Incorrect API key provided."


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The token of the first ``Authorization: Bearer <token>`` header, or None."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
            return None
    return None


def _is_exempt(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :] or "/"
    if path.startswith(EXEMPT_PATH_PREFIXES):
        return True
    if scope["type"] == "http" and scope.get("method") == "OPTIONS":
        names = {name.lower() for name, _ in scope.get("headers", ())}
        return b"origin" in names and b"access-control-request-method" in names
    return False


class ApiKeyMiddleware:
    """Rejects requests without a valid ``Authorization: Bearer <key>`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, verifier: ApiKeyVerifier):
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or _is_exempt(scope):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope.get("headers", ()))
        if token is not None and self.verifier.verify(token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid or missing API key"})
            return
        if token is None:
            body = _error_body(MISSING_KEY_MESSAGE, "missing_api_key")
        else:
            body = _error_body(INVALID_KEY_MESSAGE, "invalid_api_key")
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode("ascii")),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install_api_key_auth(app: Any, verifier: ApiKeyVerifier) -> Any:
    """Add `ApiKeyMiddleware` as the outermost middleware of a Starlette/FastAPI app and return the app.

    Must run before the app serves its first request (Starlette builds the middleware stack then and
    refuses changes afterwards); the ingress does it from Serve's `__serve_build_asgi_app__` hook.
    """
    app.add_middleware(ApiKeyMiddleware, verifier=verifier)
    return app


def api_key_auth_installed(app: Any) -> bool:
    """Whether `install_api_key_auth` ran on this app (the ingress health check asserts it)."""
    middlewares = getattr(app, "user_middleware", ())
    return any(getattr(middleware, "cls", None) is ApiKeyMiddleware for middleware in middlewares)
