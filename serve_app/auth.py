"""API-key authentication for the OpenAI routes, as plain ASGI middleware.

Ray Serve LLM 2.60 has no API-key check of its own, so the project's ingress
(`serve_app.ingress.AuthenticatedOpenAiIngress`) installs `ApiKeyMiddleware` on the FastAPI app that
Ray's `make_fastapi_ingress` builds for it (`serve_app.apps.build_ingress_app`). This module is shipped to
the cluster (see `serve_app.bundle`) and so imports only the standard library (it is plain ASGI; Starlette is
needed only for type names); it is tested without Ray or vLLM.

Contract:

* The accepted keys are read from a file (`ingress_kwargs.api_key_file` in the ingress application's args; on
  the cluster a mounted Secret volume, see `serve_app.contract.DEFAULT_API_KEY_FILE`). It holds one or more keys
  separated by commas or whitespace, so a key is rotated by deploying "old,new" and later "new". The keys
  themselves never appear in any config.
* The file is re-read at most every `api_key_reload_s` seconds (default 10), on the first request after the
  interval, so a rotation reaches a running ingress without a restart. What happens when a re-read fails:

  - the file is read but holds no usable key (empty, or a key shorter than 16 characters): **fail closed**,
    every request gets 401 until the file is fixed (an emptied Secret means "revoke everything");
  - the file cannot be read (missing, permission, I/O error; the kubelet swaps the volume's files with an
    atomic symlink rename, so a missing file is not expected even mid-update): the **last good keys stay**
    for up to `api_key_max_stale_s` (default 60 s) after the last good read, then fail closed;
  - at replica start any problem is fatal (`ApiKeyConfigError`): the replica never serves without keys.

* Every HTTP or WebSocket request needs ``Authorization: Bearer <key>``; otherwise the answer is HTTP 401
  with an OpenAI-style JSON error body and ``WWW-Authenticate: Bearer``. Deny by default: new routes that a
  later Ray adds to the app are protected too.
* A 401 carries the same CORS headers as any other answer of the app: the key check sits outside the app's
  CORSMiddleware (Ray 2.60's OpenAI ingress adds one: `ray/llm/_internal/serve/core/ingress/ingress.py`,
  ``init()``, allow_origins ["*"] with allow_credentials), so `install_api_key_auth` sends each 401 through a
  copy of that middleware. A browser client then reads the 401 (and its OpenAI error body) instead of
  reporting a CORS failure, which it does for any cross-origin answer without ``Access-Control-Allow-Origin``.
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
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from serve_app.admission import DEFAULT_TENANT
from serve_app.contract import DEFAULT_API_KEY_FILE, DEFAULT_API_KEY_RELOAD_S, TENANT_SCOPE_KEY
from serve_app.tenants import TenantKeyFile

if TYPE_CHECKING:  # only the ASGI type names; at run time this module needs nothing but the stdlib
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "DEFAULT_API_KEY_FILE",
    "ApiKeyConfigError",
    "ApiKeyFile",
    "ApiKeyMiddleware",
    "ApiKeyVerifier",
    "api_key_auth_installed",
    "check_api_keys",
    "install_api_key_auth",
    "read_api_key_file",
]

# Short keys are guessable; refuse to start with one rather than serve behind it.
MIN_API_KEY_LENGTH = 16
EXEMPT_PATH_PREFIXES: tuple[str, ...] = ("/-/",)
_KEY_SEPARATORS = re.compile(r"[,\s]+")
# How long the last good keys outlive a file that cannot be read (see the module docstring).
DEFAULT_MAX_STALE_S = 60.0
# Serve replicas log through the "ray.serve" logger; messages here land in the ingress replica's log.
log = logging.getLogger("ray.serve")


class ApiKeyConfigError(RuntimeError):
    """The API-key file is missing or empty, or holds a key that is too short.

    Raised when the ingress replica starts, so that a misconfigured deployment fails loudly (the Serve
    application goes to DEPLOY_FAILED) instead of running open or rejecting every request silently.
    """


def parse_api_keys(value: str) -> tuple[str, ...]:
    """Split a key list into keys (commas and/or whitespace separate them; empties are dropped)."""
    return tuple(key for key in _KEY_SEPARATORS.split(value) if key)


def check_api_keys(keys: tuple[str, ...], where: str) -> tuple[str, ...]:
    """`keys` if there is at least one and none is too short; else `ApiKeyConfigError` naming `where`."""
    if not keys:
        raise ApiKeyConfigError(f"{where} is empty; it must hold at least one API key")
    short = [index for index, key in enumerate(keys) if len(key) < MIN_API_KEY_LENGTH]
    if short:
        raise ApiKeyConfigError(
            f"{where}: key number(s) {', '.join(str(i + 1) for i in short)} "
            f"are shorter than {MIN_API_KEY_LENGTH} characters; use long random keys "
            "(for example `openssl rand -hex 32`)"
        )
    return keys


def read_api_key_file(path: str) -> tuple[str, ...]:
    """The keys in file `path`. `OSError` if it cannot be read; `ApiKeyConfigError` if it holds no usable key."""
    with open(path, encoding="utf-8") as handle:
        try:
            text = handle.read()
        except UnicodeDecodeError as error:
            raise ApiKeyConfigError(f"API-key file {path} is not UTF-8 text ({error.reason} at byte "
                                    f"{error.start})") from None
    return check_api_keys(parse_api_keys(text), f"API-key file {path}")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class _FixedKeys:
    def __init__(self, keys: Iterable[str]):
        self._digests = tuple(_digest(key) for key in keys)
        if not self._digests:
            raise ApiKeyConfigError("at least one API key is required")

    def digests(self) -> tuple[bytes, ...]:
        return self._digests


class ApiKeyFile:
    """The accepted keys of a file, re-read at most every `reload_interval_s` seconds (see the module docstring).

    The first read happens in the constructor and any problem there raises `ApiKeyConfigError`. Re-reads
    happen lazily, on the first `digests()` call after the interval, so an idle ingress does no I/O; the read
    is a few hundred bytes from a tmpfs volume, cheap enough for the request path.
    """

    def __init__(self, path: str, reload_interval_s: float = DEFAULT_API_KEY_RELOAD_S,
                 max_stale_s: float = DEFAULT_MAX_STALE_S, clock: Callable[[], float] | None = None):
        if not isinstance(path, str) or not path.startswith("/"):
            raise ApiKeyConfigError(f"api_key_file must be an absolute path; found {path!r}")
        for name, value in (("api_key_reload_s", reload_interval_s), ("api_key_max_stale_s", max_stale_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ApiKeyConfigError(f"{name} must be a positive number of seconds; found {value!r}")
        self.path = path
        self.reload_interval_s = float(reload_interval_s)
        self.max_stale_s = float(max_stale_s)
        self._clock = clock if clock is not None else (lambda: time.monotonic())
        try:
            keys = read_api_key_file(path)
        except OSError as error:
            raise ApiKeyConfigError(
                f"API-key file {path} cannot be read ({error.strerror or error}); mount the API-key Secret as a "
                "volume there on every Ray container (head and workers)"
            ) from error
        now = self._clock()
        self._digests = tuple(_digest(key) for key in keys)
        self._checked_at = now
        self._last_good_at = now

    def digests(self) -> tuple[bytes, ...]:
        now = self._clock()
        if now - self._checked_at >= self.reload_interval_s:
            self._reload(now)
        return self._digests

    def _reload(self, now: float) -> None:
        self._checked_at = now
        try:
            keys = read_api_key_file(self.path)
        except ApiKeyConfigError as error:  # read fine, nothing usable in it: fail closed at once
            if self._digests:
                log.error("API keys revoked: %s; every request is refused until it holds a valid key", error)
            self._digests = ()
        except OSError as error:  # cannot read: keep the last good keys for a while
            stale_for = now - self._last_good_at
            if stale_for > self.max_stale_s:
                if self._digests:
                    log.error("API-key file %s unreadable for %.0f s (%s); refusing every request", self.path,
                              stale_for, error.strerror or error)
                self._digests = ()
            else:
                log.warning("API-key file %s unreadable (%s); keeping the last good keys for up to %.0f s",
                            self.path, error.strerror or error, self.max_stale_s)
        else:
            digests = tuple(_digest(key) for key in keys)
            if digests != self._digests:
                log.info("API keys reloaded from %s: %d key(s) accepted", self.path, len(digests))
            self._digests = digests
            self._last_good_at = now


class ApiKeyVerifier:
    """Checks a presented key against the accepted ones (fixed, or from an `ApiKeyFile`) in constant time;
    with `tenant_keys` (serve_app.tenants), also against every tenant's keys, and says whose key it is."""

    def __init__(self, keys: Iterable[str] | ApiKeyFile, tenant_keys: TenantKeyFile | None = None):
        self._source = keys if isinstance(keys, ApiKeyFile) else _FixedKeys(keys)
        self._tenant_keys = tenant_keys

    @classmethod
    def from_file(cls, path: str, reload_interval_s: float = DEFAULT_API_KEY_RELOAD_S,
                  max_stale_s: float = DEFAULT_MAX_STALE_S) -> ApiKeyVerifier:
        return cls(ApiKeyFile(path, reload_interval_s, max_stale_s))

    def __len__(self) -> int:
        return len(self._source.digests())

    def verify(self, presented: str) -> bool:
        return self.identify(presented) is not None

    def identify(self, presented: str) -> str | None:
        """The tenant whose key `presented` is ("default" for the plain keys), or None when no key matches."""
        presented_digest = _digest(presented)
        matched = None
        for accepted in self._source.digests():  # no early exit: the time does not depend on which key matched
            if hmac.compare_digest(accepted, presented_digest):
                matched = DEFAULT_TENANT
        for accepted, tenant in self._tenant_keys.entries() if self._tenant_keys is not None else ():
            if hmac.compare_digest(accepted, presented_digest):
                matched = tenant
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


def _refusal(body: bytes) -> ASGIApp:
    """A tiny ASGI app that answers every HTTP request with this 401."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"www-authenticate", b"Bearer"),
    ]

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 401, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    return refuse


# (middleware class, args, kwargs) of the app's CORS middleware, as Starlette records it in `user_middleware`.
CorsMiddlewareSpec = tuple[Any, tuple, dict]


class ApiKeyMiddleware:
    """Rejects requests without a valid ``Authorization: Bearer <key>`` (see the module docstring).

    `cors`: the app's own CORS middleware; the 401s go through a copy of it, so that they carry the CORS
    headers every other answer of the app carries."""

    def __init__(self, app: ASGIApp, verifier: ApiKeyVerifier, cors: CorsMiddlewareSpec | None = None):
        self.app = app
        self.verifier = verifier
        self._refuse_missing = _refusal(_error_body(MISSING_KEY_MESSAGE, "missing_api_key"))
        self._refuse_invalid = _refusal(_error_body(INVALID_KEY_MESSAGE, "invalid_api_key"))
        if cors is not None:
            cors_cls, args, kwargs = cors
            self._refuse_missing = cors_cls(self._refuse_missing, *args, **kwargs)
            self._refuse_invalid = cors_cls(self._refuse_invalid, *args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or _is_exempt(scope):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope.get("headers", ()))
        tenant = self.verifier.identify(token) if token is not None else None
        if tenant is not None:
            scope[TENANT_SCOPE_KEY] = tenant  # for serve_app.usage's admission and usage metrics
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid or missing API key"})
            return
        refuse = self._refuse_missing if token is None else self._refuse_invalid
        await refuse(scope, receive, send)


def _cors_middleware(app: Any) -> CorsMiddlewareSpec | None:
    """The app's CORS middleware as Starlette records it (`Middleware(cls, *args, **kwargs)`), or None."""
    for middleware in getattr(app, "user_middleware", ()):
        cls = getattr(middleware, "cls", None)
        if getattr(cls, "__name__", "") == "CORSMiddleware":
            return cls, tuple(getattr(middleware, "args", ())), dict(getattr(middleware, "kwargs", {}))
    return None


def install_api_key_auth(app: Any, verifier: ApiKeyVerifier) -> Any:
    """Add `ApiKeyMiddleware` as the outermost middleware of a Starlette/FastAPI app and return the app; its
    401s carry the CORS headers of the app's own CORS middleware, if it has one.

    Must run before the app serves its first request (Starlette builds the middleware stack then and
    refuses changes afterwards); the ingress does it from Serve's `__serve_build_asgi_app__` hook.
    """
    app.add_middleware(ApiKeyMiddleware, verifier=verifier, cors=_cors_middleware(app))
    return app


def api_key_auth_installed(app: Any) -> bool:
    """Whether `install_api_key_auth` ran on this app (the ingress health check asserts it)."""
    middlewares = getattr(app, "user_middleware", ())
    return any(getattr(middleware, "cls", None) is ApiKeyMiddleware for middleware in middlewares)
