"""The project's OpenAI ingress: Ray Serve LLM's `OpenAiIngress` plus API-key authentication.

Runs on the cluster only (it imports Ray Serve LLM, which needs vLLM; the ray-llm image has both). The
builder selects it with::

    ingress_cls_config:
      ingress_cls: serve_app.ingress:AuthenticatedOpenAiIngress
      ingress_extra_kwargs: {api_key_file: /etc/llmserve/api-keys/keys, api_key_reload_s: 10.0}

How it hooks in (read from the Ray 2.60.0 source):

* `build_openai_app` loads `ingress_cls`, passes it through `make_fastapi_ingress`, which subclasses it,
  attaches the OpenAI routes to a FastAPI app of Ray's making and wraps the result with
  `serve.ingress(app)`; the deployment is bound with
  ``(llm_deployments=..., model_cards=..., lora_paths=..., **ingress_extra_kwargs)``.
* On each replica, Serve runs the constructor and then, in `_initialize_asgi_callable`, calls the
  instance's ``__serve_build_asgi_app__`` when it has one and serves whatever ASGI app that returns
  (`ray/serve/_private/replica.py`). That hook is where the FastAPI app exists but has not started, so
  ``app.add_middleware`` is still allowed. The middleware wraps the whole app, so every route, including
  any that a later Ray version adds, is protected.
* Fail closed: the constructor raises if the key file is missing, empty or weak (the replica never
  starts); afterwards the file is re-read every `api_key_reload_s` seconds, so a rotated Secret reaches the
  running replica without a restart (the rules for a bad re-read are in `serve_app.auth`), and `check_health` fails the replica if the middleware is somehow not installed (for example
  if a future Ray stopped calling the hook).
"""

from __future__ import annotations

from typing import Any

from ray.llm._internal.serve.core.ingress.ingress import OpenAiIngress

from serve_app.auth import ApiKeyVerifier, api_key_auth_installed, install_api_key_auth
from serve_app.contract import DEFAULT_API_KEY_FILE, DEFAULT_API_KEY_RELOAD_S


class AuthenticatedOpenAiIngress(OpenAiIngress):
    """`OpenAiIngress` that requires ``Authorization: Bearer <key>`` on every OpenAI route."""

    def __init__(
        self,
        llm_deployments: dict[str, Any],
        model_cards: dict[str, Any],
        *,
        api_key_file: str = DEFAULT_API_KEY_FILE,
        api_key_reload_s: float = DEFAULT_API_KEY_RELOAD_S,
        **kwargs: Any,
    ):
        # Read the keys before anything else: a replica without keys must not start.
        self._api_key_verifier = ApiKeyVerifier.from_file(api_key_file, api_key_reload_s)
        super().__init__(llm_deployments, model_cards, **kwargs)

    def __serve_build_asgi_app__(self) -> Any:
        """Serve's replica hook: return the app to serve, here Ray's FastAPI app with the key check added."""
        return install_api_key_auth(self.app, self._api_key_verifier)

    async def check_health(self) -> None:
        if not api_key_auth_installed(self.app):
            raise RuntimeError(
                "API-key middleware is not installed on the ingress app; refusing to serve without auth "
                "(did Ray stop calling __serve_build_asgi_app__?)"
            )
        await super().check_health()
