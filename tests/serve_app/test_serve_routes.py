"""Every route of Ray 2.60's OpenAI ingress app, and a path it does not know, refuses a request without a key
and one with a wrong key; each 401 carries the CORS headers the app gives any other answer.

Ray's ingress module needs vLLM (and httpx), which the unit environment does not install, so the app is built
the way Ray 2.60 builds it from what its source declares (`ray/llm/_internal/serve/core/ingress/ingress.py`):
the routes of `DEFAULT_ENDPOINTS` and the CORSMiddleware that `init()` adds, each read from the source with
`ast`; then the routes are enumerated from `app.routes`, FastAPI's own (/openapi.json, /docs, ...) included,
never listed by hand. The real app, served by Ray, is checked by the e2e tier.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from serve_app.auth import ApiKeyVerifier, install_api_key_auth

with warnings.catch_warnings():  # Ray's own deprecation warnings at import
    warnings.simplefilter("ignore", DeprecationWarning)
    import ray

RAY_INGRESS = Path(ray.__file__).parent / "llm/_internal/serve/core/ingress/ingress.py"
KEY = "k" * 16 + "-route-test-key"
WRONG_KEY = "w" * 16 + "-not-the-key-00"
ORIGIN = "https://chat.example"


def _tree() -> ast.Module:
    return ast.parse(RAY_INGRESS.read_text())


def ray_endpoints() -> list[tuple[str, str]]:
    """(method, path) of every entry of Ray's DEFAULT_ENDPOINTS: `"name": lambda app: app.<method>("<path>", ...)`."""
    assignment = next(
        node
        for node in _tree().body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DEFAULT_ENDPOINTS" for t in node.targets)
    )
    assert isinstance(assignment.value, ast.Dict)
    endpoints = []
    for value in assignment.value.values:
        assert isinstance(value, ast.Lambda) and isinstance(value.body, ast.Call), ast.unparse(value)
        route = value.body
        assert isinstance(route.func, ast.Attribute), ast.unparse(value)
        endpoints.append((route.func.attr.upper(), ast.literal_eval(route.args[0])))
    return endpoints


def ray_cors_options() -> dict:
    """The keyword arguments of the CORSMiddleware that Ray's `init()` adds to the ingress app."""
    init = next(node for node in _tree().body if isinstance(node, ast.FunctionDef) and node.name == "init")
    [call] = [
        node
        for node in ast.walk(init)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", None) == "add_middleware"
        and getattr(node.args[0], "id", None) == "CORSMiddleware"
    ]
    return {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}


async def _answer(request: Request) -> dict:
    return {"path": request.url.path}


def ray_shaped_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(CORSMiddleware, **ray_cors_options())
    for method, path in ray_endpoints():
        app.add_api_route(path, _answer, methods=[method])
    return install_api_key_auth(app, ApiKeyVerifier([KEY]))


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """A request to each method of each route the app registers, path parameters filled in."""
    requests = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", None) or ["GET"]):
            requests.append((method, re.sub(r"\{[^}]*\}", "some-model", route.path)))
    return requests


APP = ray_shaped_app()
REQUESTS = [*every_route(APP), ("GET", "/v1/no-such-route"), ("POST", "/v2/completions")]


def test_the_routes_are_rays_own():
    """The reading of Ray's source found its OpenAI routes (pinned: the ones the project documents), and the app
    registers each of them."""
    endpoints = set(ray_endpoints())
    assert {("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/completions")} <= endpoints
    registered = {(method, route.path) for route in APP.routes for method in getattr(route, "methods", ())}
    assert endpoints <= registered, endpoints - registered
    assert len(REQUESTS) > len(endpoints)


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_every_route_refuses_a_missing_or_wrong_key(asgi_call, method, path):
    missing = asgi_call(APP, method, path)
    assert missing.status == 401, f"{method} {path} without a key: {missing.status} {missing.body!r}"
    assert missing.json()["error"]["code"] == "missing_api_key"
    wrong = asgi_call(APP, method, path, {"Authorization": f"Bearer {WRONG_KEY}"})
    assert wrong.status == 401, f"{method} {path} with a wrong key: {wrong.status} {wrong.body!r}"
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    right = asgi_call(APP, method, path, {"Authorization": f"Bearer {KEY}"})
    assert right.status != 401, f"{method} {path}: the right key is refused"


def test_rays_cors_policy_is_the_one_the_401s_follow():
    """Ray 2.60 `init()`: CORSMiddleware(allow_origins=["*"], allow_credentials=True, allow_methods=["*"],
    allow_headers=["*"]); with credentials allowed, Starlette answers a request's Origin with that origin."""
    assert ray_cors_options() == {
        "allow_origins": ["*"],
        "allow_credentials": True,
        "allow_methods": ["*"],
        "allow_headers": ["*"],
    }


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.startswith("access-control-") or name == "vary"}


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_a_401_carries_the_cors_headers_of_any_other_answer(asgi_call, method, path):
    """A browser reads a cross-origin answer only with Access-Control-Allow-Origin (and, for credentialed
    requests, Access-Control-Allow-Credentials); without them it reports a CORS error, not the 401."""
    refused = asgi_call(APP, method, path, {"Origin": ORIGIN})
    assert refused.status == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN, refused.headers
    assert refused.headers["access-control-allow-credentials"] == "true", refused.headers
    assert "Origin" in refused.headers["vary"], refused.headers
    wrong = asgi_call(APP, method, path, {"Origin": ORIGIN, "Authorization": f"Bearer {WRONG_KEY}"})
    answered = asgi_call(APP, method, path, {"Origin": ORIGIN, "Authorization": f"Bearer {KEY}"})
    assert cors_headers(wrong.headers) == cors_headers(refused.headers) == cors_headers(answered.headers)
    assert "access-control-allow-origin" not in asgi_call(APP, method, path).headers, "no Origin, no CORS"


def test_the_preflight_is_answered_without_a_key_and_allows_the_authorization_header(asgi_call):
    """Browsers send the preflight without credentials; it must pass the key check, and its answer must let the
    real request carry `Authorization`."""
    preflight = asgi_call(
        APP,
        "OPTIONS",
        "/v1/chat/completions",
        {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status == 200, preflight.body
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
    assert "POST" in preflight.headers["access-control-allow-methods"].split(", ")
    assert preflight.headers["access-control-allow-credentials"] == "true"
