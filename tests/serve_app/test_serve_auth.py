"""API-key authentication: the ASGI middleware, key loading, and the ingress class wired the way Ray wires it.

`serve_app.ingress` subclasses Ray Serve LLM's `OpenAiIngress` and uses its `to_model_metadata`, whose modules
need vLLM, which is not installed for these tests. The ingress tests therefore put stand-ins for those two
modules in `sys.modules` (mirroring the real signatures, which are checked against Ray's source), replace
`serve.get_deployment_handle` and run the rest through Ray's real `serve.ingress` wrapper. The full path
(serve_app/apps.py on a real Serve, HTTP) is checked end to end by tests/e2e/test_local_server.py (the e2e tier).
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from serve_app import auth
from serve_app.auth import (
    ApiKeyConfigError,
    ApiKeyFile,
    ApiKeyMiddleware,
    ApiKeyVerifier,
    api_key_auth_installed,
    install_api_key_auth,
    parse_api_keys,
    read_api_key_file,
)
from serve_app.contract import (
    API_KEY_FILE_KWARG,
    API_KEY_RELOAD_KWARG,
    INGRESS_CLASS_PATH,
    PLAIN_INGRESS_CLASS_PATH,
    SERVED_CONFIG_ROUTE,
)

with warnings.catch_warnings():  # Ray's own pydantic deprecation warnings at import
    warnings.simplefilter("ignore", DeprecationWarning)
    import ray
    from ray import serve

KEY_A = "a" * 8 + "-key-number-one-0001"
KEY_B = "b" * 8 + "-key-number-two-0002"
RAY_INGRESS_MODULE = "ray.llm._internal.serve.core.ingress.ingress"
RAY_API_MODELS_MODULE = "ray.llm._internal.serve.core.configs.openai_api_models"
RAY_ROOT = Path(ray.__file__).parent


def openai_like_app() -> FastAPI:
    """A FastAPI app shaped like Ray's OpenAI ingress app (CORS middleware, /v1 routes)."""
    app = FastAPI()
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "deepseek-r1"}]}

    @app.post("/v1/chat/completions")
    def chat() -> dict:
        return {"object": "chat.completion"}

    @app.get("/-/healthz")
    def healthz() -> str:
        return "success"

    return app


@pytest.fixture
def protected_app() -> FastAPI:
    return install_api_key_auth(openai_like_app(), ApiKeyVerifier([KEY_A, KEY_B]))


# ---------------------------------------------------------------------------------------------- middleware


@pytest.mark.parametrize(
    ("case", "method", "path", "headers", "status", "code"),
    [
        ("no header", "GET", "/v1/models", {}, 401, "missing_api_key"),
        ("no header, chat", "POST", "/v1/chat/completions", {}, 401, "missing_api_key"),
        (
            "wrong key",
            "POST",
            "/v1/chat/completions",
            {"Authorization": "Bearer not-the-key-0000000"},
            401,
            "invalid_api_key",
        ),
        ("prefix of a key", "GET", "/v1/models", {"Authorization": f"Bearer {KEY_A[:-1]}"}, 401, "invalid_api_key"),
        ("key plus suffix", "GET", "/v1/models", {"Authorization": f"Bearer {KEY_A}x"}, 401, "invalid_api_key"),
        ("basic auth", "GET", "/v1/models", {"Authorization": f"Basic {KEY_A}"}, 401, "missing_api_key"),
        ("bearer without token", "GET", "/v1/models", {"Authorization": "Bearer "}, 401, "missing_api_key"),
        ("key in another header", "GET", "/v1/models", {"X-Api-Key": KEY_A}, 401, "missing_api_key"),
        ("unknown route is denied, not 404", "GET", "/v2/anything", {}, 401, "missing_api_key"),
        ("openapi docs", "GET", "/openapi.json", {}, 401, "missing_api_key"),
        ("plain OPTIONS", "OPTIONS", "/v1/models", {}, 401, "missing_api_key"),
        ("first key", "GET", "/v1/models", {"Authorization": f"Bearer {KEY_A}"}, 200, None),
        ("second key (rotation)", "POST", "/v1/chat/completions", {"Authorization": f"Bearer {KEY_B}"}, 200, None),
        ("lowercase scheme", "GET", "/v1/models", {"authorization": f"bearer {KEY_A}"}, 200, None),
        ("serve health route", "GET", "/-/healthz", {}, 200, None),
        (
            "CORS preflight",
            "OPTIONS",
            "/v1/chat/completions",
            {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            200,
            None,
        ),
    ],
)
def test_middleware(protected_app, asgi_call, case, method, path, headers, status, code) -> None:
    response = asgi_call(protected_app, method, path, headers)
    assert response.status == status, f"{case}: {method} {path} -> {response.status} {response.body!r}"
    if status == 401:
        assert response.headers["content-type"] == "application/json", f"{case}: {response.headers}"
        assert response.headers["www-authenticate"] == "Bearer", f"{case}: {response.headers}"
        error = response.json()["error"]
        assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, None), (
            f"{case}: {error}"
        )
        assert KEY_A not in response.body.decode() and KEY_B not in response.body.decode(), f"{case}: key echoed"


def test_websocket_without_key_is_closed_with_policy_violation(run_async) -> None:
    sent: list[dict] = []

    async def inner(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the app behind the middleware was called without a key")

    async def send(message):
        sent.append(message)

    middleware = ApiKeyMiddleware(inner, ApiKeyVerifier([KEY_A]))
    run_async(middleware({"type": "websocket", "path": "/v1/realtime", "headers": []}, None, send))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "invalid or missing API key"}], sent


def test_lifespan_passes_through(run_async) -> None:
    seen: list[str] = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    run_async(ApiKeyMiddleware(inner, ApiKeyVerifier([KEY_A]))({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


@pytest.mark.parametrize("matching_index", [0, 2, None])
def test_keys_are_compared_in_constant_time(monkeypatch, matching_index) -> None:
    """Every accepted key is compared, with fixed-length digests, whether or where a key matches."""
    keys = [f"key-{i}-" + "x" * 20 for i in range(3)]
    verifier = ApiKeyVerifier(keys)
    calls: list[tuple[int, int]] = []
    real = auth.hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    presented = keys[matching_index] if matching_index is not None else "short"
    assert verifier.verify(presented) is (matching_index is not None)
    assert calls == [(32, 32)] * 3, f"match at {matching_index}: compare_digest calls {calls}"


def test_install_marks_the_app_and_refuses_after_start(asgi_call) -> None:
    app = openai_like_app()
    assert not api_key_auth_installed(app)
    install_api_key_auth(app, ApiKeyVerifier([KEY_A]))
    assert api_key_auth_installed(app)
    asgi_call(app, "GET", "/-/healthz")  # first request builds the middleware stack
    with pytest.raises(RuntimeError, match="Cannot add middleware after an application has started"):
        install_api_key_auth(app, ApiKeyVerifier([KEY_A]))


# ---------------------------------------------------------------------------------------------- key loading


@pytest.mark.parametrize(
    ("value", "keys"),
    [
        (KEY_A, (KEY_A,)),
        (f"{KEY_A},{KEY_B}", (KEY_A, KEY_B)),
        (f" {KEY_A} ,\n{KEY_B}\n", (KEY_A, KEY_B)),
        (f"{KEY_A} {KEY_B},,", (KEY_A, KEY_B)),
    ],
)
def test_keys_are_split_on_commas_and_whitespace(value: str, keys: tuple) -> None:
    assert parse_api_keys(value) == keys


def write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    partial.replace(path)  # atomic, as the kubelet swaps a Secret volume's files


@pytest.mark.parametrize(
    ("text", "message"),
    [(" , \n", "API-key file .* is empty"), (f"{KEY_A},short", r"key number\(s\) 2 are shorter than 16 characters")],
)
def test_empty_or_weak_key_files_refuse_to_start(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "keys"
    path.write_text(text)
    with pytest.raises(ApiKeyConfigError, match=message):
        ApiKeyVerifier.from_file(str(path))


def test_a_missing_key_file_refuses_to_start_and_says_how_to_mount_it(tmp_path) -> None:
    with pytest.raises(ApiKeyConfigError, match=r"cannot be read .*mount the API-key Secret as a volume"):
        ApiKeyVerifier.from_file(str(tmp_path / "absent"))


@pytest.mark.parametrize(
    "bad", [{"path": "relative/keys"}, {"reload_interval_s": 0}, {"max_stale_s": -1}, {"reload_interval_s": True}]
)
def test_key_file_arguments_are_checked(tmp_path, bad) -> None:
    path = tmp_path / "keys"
    path.write_text(KEY_A)
    arguments = {"path": str(path), **bad}
    with pytest.raises(ApiKeyConfigError, match="must be"):
        ApiKeyFile(**arguments)


def test_error_messages_never_contain_the_keys(tmp_path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{KEY_A},tiny-secret")
    with pytest.raises(ApiKeyConfigError) as caught:
        read_api_key_file(str(path))
    assert "tiny-secret" not in str(caught.value) and KEY_A not in str(caught.value), str(caught.value)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "keys"
    write(path, KEY_A)
    clock = FakeClock()
    verifier = ApiKeyVerifier(ApiKeyFile(str(path), reload_interval_s=10, max_stale_s=60, clock=clock))
    return path, clock, verifier


def test_rotation_add_then_remove_reaches_the_verifier_within_the_reload_interval(key_file) -> None:
    path, clock, verifier = key_file
    write(path, f"{KEY_A},{KEY_B}")
    clock.now += 9.9
    assert (verifier.verify(KEY_A), verifier.verify(KEY_B)) == (True, False), "re-read before the interval"
    clock.now += 0.1
    assert (verifier.verify(KEY_A), verifier.verify(KEY_B)) == (True, True), "second key not picked up"
    write(path, KEY_B)
    clock.now += 10
    assert (verifier.verify(KEY_A), verifier.verify(KEY_B)) == (False, True), "removed key still accepted"


@pytest.mark.parametrize("text", ["", " ,\n", f"{KEY_B},short"])
def test_a_reread_with_no_usable_key_fails_closed_at_once(key_file, text) -> None:
    path, clock, verifier = key_file
    write(path, text)
    clock.now += 10
    assert not verifier.verify(KEY_A) and not verifier.verify(KEY_B) and len(verifier) == 0
    write(path, KEY_B)  # and recovers as soon as the file is good again
    clock.now += 10
    assert verifier.verify(KEY_B) and not verifier.verify(KEY_A)


def test_a_reread_of_binary_garbage_fails_closed_instead_of_raising_into_requests(key_file) -> None:
    path, clock, verifier = key_file
    partial = path.with_name("garbage")
    partial.write_bytes(b"\xff\xfe\x00 not text")
    partial.replace(path)
    clock.now += 10
    assert verifier.verify(KEY_A) is False


def test_an_unreadable_file_keeps_the_last_good_keys_for_max_stale_then_fails_closed(key_file) -> None:
    path, clock, verifier = key_file
    path.unlink()
    for _ in range(6):  # 60 s of failed re-reads, every 10 s: still the last good key
        clock.now += 10
        assert verifier.verify(KEY_A), f"{clock.now - 1000:.0f} s after the last good read"
    clock.now += 10
    assert not verifier.verify(KEY_A), "still serving 70 s after the file became unreadable"
    write(path, KEY_A)
    clock.now += 10
    assert verifier.verify(KEY_A), "did not recover once the file was back"


def test_an_idle_verifier_does_no_io(key_file, monkeypatch) -> None:
    path, clock, verifier = key_file
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    for _ in range(100):
        verifier.verify(KEY_A)
    assert opened == [], "re-read the file within the interval"
    clock.now += 10
    verifier.verify(KEY_A)
    assert opened == [str(path)]


# ------------------------------------------------------------------------------------------ ingress class


class _StandInOpenAiIngress:
    """Stands in for Ray's OpenAiIngress; its constructor signature is checked against Ray's source."""

    def __init__(self, llm_deployments, model_cards, *, lora_paths=None, _get_lora_model_metadata_func=None):
        self.init_args = {"llm_deployments": llm_deployments, "model_cards": model_cards, "lora_paths": lora_paths}
        # What Ray's constructor sets from them (ingress.py OpenAiIngress.__init__).
        self._default_serve_handles = dict(llm_deployments)
        self._model_cards = dict(model_cards)
        self._configured_serve_handles = {}
        self.health_checked = False

    async def check_health(self):
        self.health_checked = True


def _stand_in_model_metadata(model_id, model_config):
    """Stands in for Ray's `to_model_metadata`: records what the ingress hands it (a real LLMConfig)."""
    return {"id": model_id, "max_request_context_length": model_config.max_request_context_length}


class _Handle:
    def __init__(self, deployment, app_name):
        self.deployment, self.app_name = deployment, app_name


@pytest.fixture
def ingress_module(monkeypatch, ray_llm_stand_ins):
    """`serve_app.ingress` imported against the stand-ins; removed again afterwards."""
    stand_in = types.ModuleType(RAY_INGRESS_MODULE)
    stand_in.OpenAiIngress = _StandInOpenAiIngress
    monkeypatch.setitem(sys.modules, RAY_INGRESS_MODULE, stand_in)
    api_models = types.ModuleType(RAY_API_MODELS_MODULE)
    api_models.to_model_metadata = _stand_in_model_metadata
    monkeypatch.setitem(sys.modules, RAY_API_MODELS_MODULE, api_models)
    ray_llm_stand_ins(monkeypatch.setitem, sys.modules, api_models)
    handles = []

    def get_deployment_handle(deployment_name, app_name=None, _check_exists=True):
        assert _check_exists is False, "the model's application may still be building: do not ask the controller"
        handles.append((deployment_name, app_name))
        return _Handle(deployment_name, app_name)

    monkeypatch.setattr(serve, "get_deployment_handle", get_deployment_handle)
    sys.modules.pop("serve_app.ingress", None)
    sys.modules.pop("serve_app.pipeline_ingress", None)
    module = importlib.import_module("serve_app.ingress")
    module.handles_made = handles
    yield module
    sys.modules.pop("serve_app.ingress", None)
    sys.modules.pop("serve_app.pipeline_ingress", None)


USER_CONFIG = {
    "models": [
        {
            "app": "model-deepseek-r1",
            "deployment": "LLMServer:deepseek-r1",
            "id": "deepseek-r1",
            "max_model_len": 32768,
        },
        {"app": "model-small", "deployment": "LLMServer:small", "id": "small"},
    ],
    "serve_config_hash": "0123456789abcdef",
}


def _replica(module, tmp_path, run_async, keys: str | None, *, run_hook: bool = True):
    """Do what Ray does for one ingress replica (serve_app/apps.py build_ingress_app): make_fastapi_ingress with
    the served-config route + serve.ingress, construct, reconfigure with the user_config, run the hook."""
    key_file = tmp_path / "api-keys" / "keys"
    if keys is not None:
        key_file.parent.mkdir(exist_ok=True)
        key_file.write_text(keys)
    app = openai_like_app()
    cls = module.AuthenticatedOpenAiIngress
    # what make_fastapi_ingress does before serve.ingress(app), with the route build_ingress_app adds
    subclass = type(cls.__name__, (cls,), {"served_config": app.get(SERVED_CONFIG_ROUTE)(cls.served_config)})
    wrapped = serve.ingress(app)(subclass)
    wrapped.__del__ = lambda self: None  # Ray's async destructor needs a replica's event loop; not under test here
    instance = wrapped.__new__(wrapped)
    run_async(instance.__init__(**{API_KEY_FILE_KWARG: str(key_file), API_KEY_RELOAD_KWARG: 10.0}))
    instance.reconfigure(copy.deepcopy(USER_CONFIG))  # replica.py: right after the constructor
    if run_hook:  # replica.py _initialize_asgi_callable: app = __serve_build_asgi_app__(); _set_asgi_app(app)
        built = instance.__serve_build_asgi_app__()
        assert built is instance.app, "the hook must return Ray's FastAPI app itself (metrics, exception handlers)"
        instance._set_asgi_app(built)
    return instance


def test_ingress_class_paths_resolve(ingress_module) -> None:
    for path in (INGRESS_CLASS_PATH, PLAIN_INGRESS_CLASS_PATH):
        module_name, _, class_name = path.partition(":")
        assert module_name == "serve_app.ingress" and getattr(ingress_module, class_name).__name__ == class_name
    assert issubclass(ingress_module.AuthenticatedOpenAiIngress, ingress_module.ConfiguredOpenAiIngress)


def test_ingress_enforces_keys_inside_rays_ingress_wrapper(ingress_module, tmp_path, asgi_call, run_async) -> None:
    instance = _replica(ingress_module, tmp_path, run_async, f"{KEY_A},{KEY_B}")
    assert instance.init_args == {"llm_deployments": {}, "model_cards": {}, "lora_paths": None}, (
        "OpenAiIngress starts without models; reconfigure brings them"
    )
    assert asgi_call(instance.app, "GET", "/v1/models").status == 401
    assert asgi_call(instance.app, "GET", "/v1/models", {"Authorization": "Bearer wrong-key-000000000"}).status == 401
    assert asgi_call(instance.app, "GET", "/v1/models", {"Authorization": f"Bearer {KEY_B}"}).status == 200
    run_async(instance.check_health())
    assert instance.health_checked, "check_health must still run OpenAiIngress's own check"


def test_reconfigure_points_the_ingress_at_each_models_own_application(ingress_module, tmp_path, run_async) -> None:
    instance = _replica(ingress_module, tmp_path, run_async, KEY_A)
    handles = instance._default_serve_handles
    assert {model_id: (h.deployment, h.app_name) for model_id, h in handles.items()} == {
        "deepseek-r1": ("LLMServer:deepseek-r1", "model-deepseek-r1"),
        "small": ("LLMServer:small", "model-small"),
    }
    assert instance._model_cards == {
        "deepseek-r1": {"id": "deepseek-r1", "max_request_context_length": 32768},
        "small": {"id": "small", "max_request_context_length": None},
    }, "the model cards come from Ray's to_model_metadata with the model's context length"


def test_a_new_config_reaches_the_running_ingress_without_a_restart(ingress_module, tmp_path, run_async) -> None:
    instance = _replica(ingress_module, tmp_path, run_async, KEY_A)
    streaming = object()
    instance._configured_serve_handles = {"deepseek-r1": streaming, "small": object()}
    changed = copy.deepcopy(USER_CONFIG)
    changed["models"][0]["max_model_len"] = 8192  # R1 changed; same application and deployment
    changed["models"][1]["app"] = "model-small-v2"  # small moved
    changed["serve_config_hash"] = "fedcba9876543210"
    instance.reconfigure(changed)
    assert instance._serve_config_hash == "fedcba9876543210"
    assert instance._model_cards["deepseek-r1"]["max_request_context_length"] == 8192
    assert instance._configured_serve_handles == {"deepseek-r1": streaming}, "only a moved model's handle goes"
    assert instance._default_serve_handles["small"].app_name == "model-small-v2"


def test_served_config_route_is_behind_the_key_and_reports_the_configs_applications(
    ingress_module, tmp_path, asgi_call, run_async, monkeypatch
) -> None:
    instance = _replica(ingress_module, tmp_path, run_async, KEY_A)
    statuses = {
        "config-0123456789abcdef": "RUNNING",
        "config-0000000000000000": "DELETING",
        "llm": "RUNNING",
        "model-deepseek-r1": "DEPLOYING",
        "model-small": "RUNNING",
    }
    overview = types.SimpleNamespace(
        applications={name: types.SimpleNamespace(status=status) for name, status in statuses.items()}
    )
    monkeypatch.setattr(serve, "status", lambda: overview)
    # Serve's class-based view finds the instance through the replica context too (http_util.py).
    context = types.SimpleNamespace(app_name="llm", servable_object=instance)
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)
    assert asgi_call(instance.app, "GET", SERVED_CONFIG_ROUTE).status == 401
    response = asgi_call(instance.app, "GET", SERVED_CONFIG_ROUTE, {"Authorization": f"Bearer {KEY_A}"})
    assert response.status == 200
    assert response.json() == {
        "serve_config_hash": "0123456789abcdef",
        "applications": {
            "config-0123456789abcdef": "RUNNING",
            "llm": "RUNNING",
            "model-deepseek-r1": "DEPLOYING",
            "model-small": "RUNNING",
        },
    }, "the applications of this config only, the old marker left out"


def test_ingress_without_keys_does_not_start(ingress_module, tmp_path, run_async) -> None:
    with pytest.raises(ApiKeyConfigError, match="api-keys/keys cannot be read"):
        _replica(ingress_module, tmp_path, run_async, None)


def test_ingress_reads_a_rotated_key_file_without_a_restart(
    ingress_module, tmp_path, asgi_call, monkeypatch, run_async
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(auth.time, "monotonic", clock)
    instance = _replica(ingress_module, tmp_path, run_async, KEY_A)
    write(tmp_path / "api-keys" / "keys", KEY_B)
    clock.now += 10
    assert asgi_call(instance.app, "GET", "/v1/models", {"Authorization": f"Bearer {KEY_B}"}).status == 200
    assert asgi_call(instance.app, "GET", "/v1/models", {"Authorization": f"Bearer {KEY_A}"}).status == 401


def test_ingress_health_check_fails_if_the_hook_never_ran(ingress_module, tmp_path, run_async) -> None:
    instance = _replica(ingress_module, tmp_path, run_async, KEY_A, run_hook=False)
    with pytest.raises(RuntimeError, match="API-key middleware is not installed"):
        run_async(instance.check_health())


# ------------------------------------------------- the Ray 2.60 behaviour the ingress relies on (from source)


def _function(path: Path, class_name: str | None, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    tree = ast.parse(path.read_text())
    scope = tree.body
    if class_name is not None:
        scope = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name).body
    return next(
        node for node in scope if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
    )


def test_stand_in_matches_rays_openai_ingress_constructor() -> None:
    real = _function(RAY_ROOT / "llm/_internal/serve/core/ingress/ingress.py", "OpenAiIngress", "__init__")
    stand_in = ast.parse(textwrap.dedent(inspect.getsource(_StandInOpenAiIngress.__init__))).body[0]

    def parameters(function: ast.FunctionDef) -> tuple[list[str], list[str]]:
        return [a.arg for a in function.args.args], [a.arg for a in function.args.kwonlyargs]

    assert parameters(real) == parameters(stand_in), f"Ray's OpenAiIngress.__init__ changed: {parameters(real)}"


def test_the_ingress_builder_uses_rays_fastapi_ingress_with_an_endpoint_map() -> None:
    """serve_app/apps.py build_ingress_app: make_fastapi_ingress(cls, endpoint_map=...) over DEFAULT_ENDPOINTS."""
    ingress = RAY_ROOT / "llm/_internal/serve/core/ingress/ingress.py"
    source = ast.unparse(_function(ingress, None, "make_fastapi_ingress"))
    assert "endpoint_map: Optional[Dict[str, Callable[[FastAPI], Callable]]]=None" in source, source
    assert "original_method = getattr(cls, method_name)" in source and "serve.ingress(app)(new_cls)" in source
    assert "\nDEFAULT_ENDPOINTS = {" in ingress.read_text()


def test_rays_model_card_and_handle_functions_take_what_the_ingress_passes() -> None:
    models = RAY_ROOT / "llm/_internal/serve/core/configs/openai_api_models.py"
    card = _function(models, None, "to_model_metadata")
    assert [a.arg for a in card.args.args] == ["model_id", "model_config", "overrides"]
    handle = _function(RAY_ROOT / "serve/api.py", None, "get_deployment_handle")
    assert [a.arg for a in handle.args.args] == ["deployment_name", "app_name", "_check_exists", "_record_telemetry"]
    assert 'RECONFIGURE_METHOD = "reconfigure"' in (RAY_ROOT / "serve/_private/constants.py").read_text()


def test_replica_calls_the_build_hook_even_when_an_app_is_given() -> None:
    replica = RAY_ROOT / "serve/_private/replica.py"
    assert 'SERVE_BUILD_ASGI_APP_METHOD = "__serve_build_asgi_app__"' in replica.read_text()
    source = ast.unparse(_function(replica, "UserCallableWrapper", "_initialize_asgi_callable"))
    assert "if build_asgi_app is not None:" in source and "self._callable._set_asgi_app(app)" in source, source


def test_the_served_config_route_is_the_documented_path():
    # docs/operations.md, serve_app/README.md and `python -m infra smoke` (below its /v1 base URL) use this path.
    assert SERVED_CONFIG_ROUTE == "/v1/llmserve/config"


def test_a_pipeline_step_to_a_dead_engine_answers_503_not_a_wait_for_the_new_replica(ingress_module) -> None:
    """The dead-engine gate (serve_app/engine_watch.py) covers pipelines too: a step whose model's engine is
    known dead raises `EngineDown` before it calls the model, and the pipeline answers 503 with the gate's
    Retry-After, as a direct request to that model does."""
    from serve_app.engine_health import EngineGate

    pipeline_ingress = sys.modules["serve_app.pipeline_ingress"]
    gate = EngineGate(clock=lambda: 1000.0)
    gate.set_recovery({"small": 40})
    gate.mark_down("small")

    class Ingress(pipeline_ingress.PipelineIngressMixin):
        def engine_gate(self):
            return gate

    Ingress()._raise_if_engine_down("deepseek-r1")  # a live model: the step runs
    with pytest.raises(pipeline_ingress.EngineDown) as raised:
        Ingress()._raise_if_engine_down("small")
    assert (raised.value.model_id, raised.value.retry_after_s) == ("small", 40)
