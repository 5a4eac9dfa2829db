"""The project's OpenAI ingress: Ray Serve LLM's `OpenAiIngress`, told its models by the Serve config, plus
API-key authentication.

Runs on the cluster only (it imports Ray Serve LLM, which needs vLLM; the ray-llm image has both).
`serve_app.apps.build_ingress_app` deploys it, named by the ingress application's args::

    args: {ingress_cls: serve_app.ingress:AuthenticatedOpenAiIngress,
           ingress_kwargs: {api_key_file: /etc/llmserve/api-keys/keys, api_key_reload_s: 10.0}}

How it hooks in (read from the Ray 2.60.0 source):

* The models live in applications of their own (one per model, see `serve_app.builder`), so Ray's
  `OpenAiIngress` cannot be handed their deployments at construction. The ingress deployment's
  ``user_config`` names them instead (``models``: id, application, deployment, context length), and
  Serve calls `reconfigure` with it when the replica starts and again, without a restart, whenever the
  config changes (a lightweight update, `ray/serve/_private/deployment_state.py`). `reconfigure` sets the
  handles and model cards `OpenAiIngress` serves from: `serve.get_deployment_handle(deployment, app)` and
  Ray's own `to_model_metadata`.
* ``GET /v1/llmserve/config`` (`served_config`) answers with the hash of the Serve config the replica was
  given (``serve_config_hash``) and the status of that config's applications, from `serve.status()`.
* `make_fastapi_ingress` subclasses the class, attaches the OpenAI routes to a FastAPI app of Ray's making
  and wraps the result with `serve.ingress(app)`. On each replica, Serve runs the constructor and then, in
  `_initialize_asgi_callable`, calls the instance's ``__serve_build_asgi_app__`` when it has one and serves
  whatever ASGI app that returns (`ray/serve/_private/replica.py`). That hook is where the FastAPI app exists
  but has not started, so ``app.add_middleware`` is still allowed. The middleware wraps the whole app, so
  every route, including any that a later Ray version adds, is protected.
* Fail closed: the constructor raises if the key file is missing, empty or weak (the replica never
  starts); afterwards the file is re-read every `api_key_reload_s` seconds, so a rotated Secret reaches the
  running replica without a restart (the rules for a bad re-read are in `serve_app.auth`), and `check_health`
  fails the replica if the middleware is somehow not installed (for example if a future Ray stopped calling
  the hook).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve
from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
from ray.llm._internal.serve.core.ingress.ingress import OpenAiIngress

from serve_app.admission import Admission, admission_from_entry
from serve_app.auth import ApiKeyFile, ApiKeyVerifier, api_key_auth_installed, install_api_key_auth
from serve_app.contract import (
    ADMISSION_KEY,
    CONFIG_HASH_KEY,
    DEFAULT_API_KEY_FILE,
    DEFAULT_API_KEY_RELOAD_S,
    MODELS_KEY,
    config_marker_name,
)
from serve_app.engine_health import RECOVERY_KEY
from serve_app.engine_watch import EngineGatedIngress
from serve_app.pipeline_ingress import PipelineIngressMixin
from serve_app.pipeline_spec import PIPELINES_KEY
from serve_app.tenant_metrics import RayUsageSink
from serve_app.tenants import TenantKeyFile
from serve_app.usage import AdmissionMiddleware


class ConfiguredOpenAiIngress(PipelineIngressMixin, EngineGatedIngress, OpenAiIngress):
    """`OpenAiIngress` whose models (and pipelines, `serve_app.pipeline_ingress`) come from its ``user_config``
    (see the module docstring); a model whose engine died answers 503 with Retry-After until it is replaced
    (`serve_app.engine_watch`)."""

    def __init__(self, **kwargs: Any):
        super().__init__({}, {}, **kwargs)
        self._serve_config_hash: str | None = None
        self._model_routes: dict[str, tuple[str, str]] = {}  # model id -> (application, deployment)
        self._admission = Admission({})  # tenants' quotas and the models' overload bound (serve_app.admission)
        self._usage_sink = RayUsageSink()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve's hook: the models and the config hash, at start and after every config change."""
        models = {model["id"]: model for model in user_config[MODELS_KEY]}
        routes = {model_id: (model["app"], model["deployment"]) for model_id, model in models.items()}
        self._configure_pipelines(user_config.get(PIPELINES_KEY), set(routes))  # raises on a bad one
        handles = {
            # Not checked against the controller: the model's application may still be building.
            model_id: serve.get_deployment_handle(deployment, app_name=app, _check_exists=False)
            for model_id, (app, deployment) in routes.items()
        }
        cards = {model_id: to_model_metadata(model_id, _card_config(model)) for model_id, model in models.items()}
        # A handle configured for streaming stays valid while its model is served by the same deployment.
        configured = {
            model_id: handle
            for model_id, handle in self._configured_serve_handles.items()
            if model_id in routes and routes[model_id] == self._model_routes.get(model_id)
        }
        self._default_serve_handles, self._model_cards = handles, cards
        self._configured_serve_handles, self._model_routes = configured, routes
        self._serve_config_hash = user_config[CONFIG_HASH_KEY]
        self.set_recovery_estimates(user_config.get(RECOVERY_KEY, {}))
        tenants, capacity, wait_s = admission_from_entry(user_config.get(ADMISSION_KEY) or {})
        self._admission.configure(tenants, capacity)
        self._admission.wait_s = wait_s

    def __serve_build_asgi_app__(self) -> Any:
        """Serve's replica hook (see the module docstring): Ray's FastAPI app with admission and usage metrics."""
        self.app.add_middleware(AdmissionMiddleware, admission=lambda: self._admission, sink=self._usage_sink)
        return self.app

    async def served_config(self) -> dict[str, Any]:
        """``GET /v1/llmserve/config``: the Serve config this replica serves and the status of its applications."""
        digest = self._serve_config_hash
        names = [config_marker_name(str(digest)), serve.get_replica_context().app_name]
        names += sorted({app for app, _ in self._model_routes.values()})
        statuses = await asyncio.get_running_loop().run_in_executor(None, _application_statuses)
        return {CONFIG_HASH_KEY: digest, "applications": {name: statuses.get(name, "NOT_STARTED") for name in names}}


def _card_config(model: dict[str, Any]) -> LLMConfig:
    """Just enough of the model's LLMConfig for Ray's `to_model_metadata` (id and context length)."""
    engine_kwargs = {} if model.get("max_model_len") is None else {"max_model_len": model["max_model_len"]}
    return LLMConfig(model_loading_config={"model_id": model["id"]}, engine_kwargs=engine_kwargs)


def _application_statuses() -> dict[str, str]:
    """Every Serve application's status (RUNNING, DEPLOYING, DEPLOY_FAILED, ...), from the Serve controller."""
    return {name: str(getattr(app.status, "value", app.status)) for name, app in serve.status().applications.items()}


class AuthenticatedOpenAiIngress(ConfiguredOpenAiIngress):
    """`ConfiguredOpenAiIngress` that requires ``Authorization: Bearer <key>`` on every route."""

    def __init__(
        self,
        *,
        api_key_file: str = DEFAULT_API_KEY_FILE,
        api_key_reload_s: float = DEFAULT_API_KEY_RELOAD_S,
        tenant_key_file: str | None = None,
        **kwargs: Any,
    ):
        # Read the keys before anything else: a replica without keys must not start.
        tenant_keys = None if tenant_key_file is None else TenantKeyFile(tenant_key_file, api_key_reload_s)
        self._api_key_verifier = ApiKeyVerifier(ApiKeyFile(api_key_file, api_key_reload_s), tenant_keys)
        super().__init__(**kwargs)

    def __serve_build_asgi_app__(self) -> Any:
        """Serve's replica hook: return the app to serve, here with the key check outermost (it names the
        tenant that admission then uses)."""
        return install_api_key_auth(super().__serve_build_asgi_app__(), self._api_key_verifier)

    async def check_health(self) -> None:
        if not api_key_auth_installed(self.app):
            raise RuntimeError(
                "API-key middleware is not installed on the ingress app; refusing to serve without auth "
                "(did Ray stop calling __serve_build_asgi_app__?)"
            )
        await super().check_health()
