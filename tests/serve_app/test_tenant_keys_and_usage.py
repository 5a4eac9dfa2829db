"""Tenants' keys (serve_app/tenants.py), the key check that names the tenant (serve_app/auth.py), and the
admission middleware's answers and usage accounting (serve_app/usage.py)."""

from __future__ import annotations

import json

import pytest

from serve_app.admission import Admission, TenantLimits
from serve_app.auth import ApiKeyFile, ApiKeyMiddleware, ApiKeyVerifier
from serve_app.tenants import TenantKeyError, TenantKeyFile, format_tenant_keys, parse_tenant_keys
from serve_app.usage import AdmissionMiddleware

KEY_A = "a" * 20
KEY_B = "b" * 20
PLAIN = "p" * 20


def test_parse_and_format_round_trip():
    text = format_tenant_keys({"team-b": (KEY_B,), "team-a": ("x" * 16, KEY_A)})
    assert text == f"team-a={'x' * 16},{KEY_A}\nteam-b={KEY_B}\n"
    assert parse_tenant_keys(text) == {"team-a": ("x" * 16, KEY_A), "team-b": (KEY_B,)}
    assert parse_tenant_keys(f"team-a={KEY_A}; team-b = {KEY_B}") == {"team-a": (KEY_A,), "team-b": (KEY_B,)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"a={KEY_A}\nb={KEY_A}", "tenant 'b': key number 1 is also a key of tenant 'a'"),
        ("a=short", "tenant 'a': key number 1 is shorter than 16"),
        (f"{KEY_A}", "entry 1 is not `tenant=KEY"),
        (f"Team={KEY_A}", "tenant name 'Team' is not allowed"),
        (f"default={KEY_A}", "tenant name 'default' is not allowed"),
        (f"a={KEY_A}\na={KEY_B}", "tenant 'a' is listed twice"),
    ],
)
def test_bad_tenant_keys_are_refused_without_quoting_a_key(text, message):
    with pytest.raises(TenantKeyError, match=message) as raised:
        parse_tenant_keys(text)
    assert KEY_A not in str(raised.value) and "short" not in str(raised.value).split("is")[0]


def test_the_key_check_names_the_tenant_and_the_plain_keys_are_the_default_tenant(tmp_path):
    (tmp_path / "keys").write_text(PLAIN)
    (tmp_path / "tenant-keys").write_text(f"team-a={KEY_A}\nteam-b={KEY_B}\n")
    verifier = ApiKeyVerifier(ApiKeyFile(str(tmp_path / "keys")), TenantKeyFile(str(tmp_path / "tenant-keys")))
    assert [verifier.identify(key) for key in (PLAIN, KEY_A, KEY_B, "z" * 20)] == ["default", "team-a", "team-b", None]
    assert ApiKeyVerifier([PLAIN]).identify(KEY_A) is None, "without tenants, only the plain keys"


def test_tenant_keys_rotate_and_a_bad_file_revokes_them(tmp_path, asgi_call):
    now = [0.0]
    path = tmp_path / "tenant-keys"
    path.write_text(f"team-a={KEY_A}\n")
    keys = TenantKeyFile(str(path), reload_interval_s=10, max_stale_s=60, clock=lambda: now[0])
    path.write_text(f"team-a={KEY_A},{KEY_B}\n")
    assert {tenant for _, tenant in keys.entries()} == {"team-a"} and len(keys.entries()) == 1, "not re-read yet"
    now[0] = 10
    assert len(keys.entries()) == 2, "the new key after the reload interval"
    path.write_text(f"team-a={KEY_A}\nteam-b={KEY_A}\n")  # shared key: unusable, fail closed
    now[0] = 20
    assert keys.entries() == ()
    path.unlink()
    with pytest.raises(TenantKeyError, match="cannot be read"):
        TenantKeyFile(str(path))


def _app_with(
    admission: Admission, tenant_keys: str, tmp_path, answer: bytes, content_type: bytes = b"application/json"
):
    calls = []

    async def engine(scope, receive, send):
        message = await receive()
        calls.append(json.loads(message["body"]))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": answer})

    (tmp_path / "keys").write_text(PLAIN)
    (tmp_path / "tenant-keys").write_text(tenant_keys)
    finished, refused = [], []

    class Sink:
        def finished(self, *args, **kwargs):
            finished.append(args)

        def refused(self, tenant, model, refusal):
            refused.append((tenant, model, refusal.status, refusal.limit))

    inner = AdmissionMiddleware(engine, lambda: admission, Sink())
    verifier = ApiKeyVerifier(ApiKeyFile(str(tmp_path / "keys")), TenantKeyFile(str(tmp_path / "tenant-keys")))
    return ApiKeyMiddleware(inner, verifier), calls, finished, refused


def post(asgi_call, app, key: str, body: dict):
    return asgi_call(app, "POST", "/v1/chat/completions", {"Authorization": f"Bearer {key}"}, json.dumps(body).encode())


def test_over_quota_is_429_with_retry_after_and_an_openai_body_before_the_engine_is_called(tmp_path, asgi_call):
    admission = Admission({"team-a": TenantLimits(requests_per_minute=6)})
    answer = json.dumps({"usage": {"prompt_tokens": 7, "completion_tokens": 5}}).encode()
    app, calls, finished, refused = _app_with(admission, f"team-a={KEY_A}\n", tmp_path, answer)
    assert post(asgi_call, app, KEY_A, {"model": "m", "messages": []}).status == 200
    response = post(asgi_call, app, KEY_A, {"model": "m", "messages": []})
    assert response.status == 429
    assert response.headers["retry-after"] == "10" and response.headers["retry-after-ms"] == "10000"
    error = response.json()["error"]
    assert (error["code"], error["type"], error["param"]) == ("rate_limit_exceeded", "requests", None)
    assert len(calls) == 1, "the refused request never reached the engine"
    assert refused == [("team-a", "m", 429, "requests")]
    assert finished == [("team-a", "m", 200, 7, 5, finished[0][5], False)]
    assert post(asgi_call, app, PLAIN, {"model": "m"}).status == 200, "the plain key: the unlimited default tenant"


def test_a_streamed_answer_is_charged_from_its_final_usage_chunk(tmp_path, asgi_call):
    admission = Admission({"team-a": TenantLimits(tokens_per_minute=60)})  # bucket of 10 tokens
    stream = (
        b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":20,"total_tokens":50}}\n\n'
        b"data: [DONE]\n\n"
    )
    app, _, finished, _ = _app_with(admission, f"team-a={KEY_A}\n", tmp_path, stream, b"text/event-stream")
    assert post(asgi_call, app, KEY_A, {"model": "m", "stream": True}).status == 200
    assert finished[0][2:5] == (200, 30, 20) and finished[0][6] is False
    refused = post(asgi_call, app, KEY_A, {"model": "m", "stream": True})
    assert refused.status == 429 and refused.json()["error"]["type"] == "tokens"
    assert refused.headers["retry-after"] == "40", "40 tokens of debt at 1 token/s"


def test_a_stream_without_usage_is_estimated_and_says_so(tmp_path, asgi_call):
    stream = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[{"delta":{"content":"b"}}]}\n\n'
    app, _, finished, _ = _app_with(Admission({}), f"team-a={KEY_A}\n", tmp_path, stream, b"text/event-stream")
    body = {"model": "m", "stream": True, "prompt": "x" * 100}
    post(asgi_call, app, KEY_A, body)
    assert finished[0][3:5] == (len(json.dumps(body)) // 4, 2) and finished[0][6] is True


def test_other_routes_pass_through_unmetered(tmp_path, asgi_call):
    admission = Admission({"team-a": TenantLimits(requests_per_minute=6)})
    app, calls, finished, _ = _app_with(admission, f"team-a={KEY_A}\n", tmp_path, b"{}")
    for _ in range(3):
        response = asgi_call(app, "POST", "/v1/embeddings", {"Authorization": f"Bearer {KEY_A}"}, b'{"model": "m"}')
        assert response.status == 200
    assert finished == [] and len(calls) == 3


def test_overload_is_503_with_retry_after(tmp_path, asgi_call):
    admission = Admission({}, {"m": 1}, wait_s=0)
    admission.try_admit("default", "m")
    app, calls, _, refused = _app_with(admission, f"team-a={KEY_A}\n", tmp_path, b"{}")
    response = post(asgi_call, app, KEY_A, {"model": "m"})
    assert response.status == 503 and response.json()["error"]["code"] == "server_overloaded"
    assert response.headers["retry-after"] == "1" and calls == []
    assert refused == [("team-a", "m", 503, "overload")]
