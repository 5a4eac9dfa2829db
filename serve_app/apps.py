"""The Serve applications of the config `serve_app.builder` renders, built on the cluster.

Serve's build task imports each application's ``import_path`` (a function of one argument, the
application's ``args``; `ray/serve/_private/api.py` call_user_app_builder_with_args_if_necessary) on a Ray
node whose PYTHONPATH has the files of `serve_app.bundle.cluster_sources()`:

* `build_model_app`: one model, Ray Serve LLM's own `build_llm_deployment` of the LLMConfig that is the
  whole of ``args`` (the same call `build_openai_app` makes per model; Ray names the deployment
  ``LLMServer:<id>``). One application per model: Serve derives one code version for all deployments of an
  application from its args, so models sharing an application restart together.
* `build_ingress_app`: the OpenAI ingress (`serve_app.ingress`) with Ray's routes plus
  ``GET /v1/llmserve/config``; ``args`` hold only the class and its constructor keywords, so no model change
  restarts it (the models reach it through ``user_config``).
* `build_config_marker`: an application that exists only for its name, ``config-<hash of the config>``;
  `pulumi up` waits for that name to be RUNNING. Its one deployment scales between 0 and 1 replicas and
  nothing ever calls it, so it starts no actor.
"""

from __future__ import annotations

import importlib
from typing import Any

from ray import serve
from ray.llm._internal.serve.core.ingress.ingress import DEFAULT_ENDPOINTS, make_fastapi_ingress
from ray.serve.deployment import Application
from ray.serve.llm import LLMConfig, build_llm_deployment

from serve_app.contract import INGRESS_CLS_ARG, INGRESS_DEPLOYMENT, INGRESS_KWARGS_ARG, SERVED_CONFIG_ROUTE
from serve_app.engine_replica import WatchedLLMServer


def build_model_app(args: dict[str, Any]) -> Application:
    """One model's application: ``args`` is its LLMConfig. The deployment keeps Ray's name, ``LLMServer:<id>``
    (Ray prefixes the class's name unless told otherwise), and runs `WatchedLLMServer`, which leaves as soon as
    its engine dies (`serve_app.engine_replica`)."""
    return build_llm_deployment(
        LLMConfig.model_validate(args), name_prefix="LLMServer:", deployment_cls=WatchedLLMServer
    )


def build_ingress_app(args: dict[str, Any]) -> Application:
    """The OpenAI ingress application; its deployment options come from the config's ``deployments``."""
    module_name, _, class_name = args[INGRESS_CLS_ARG].partition(":")
    ingress_cls = getattr(importlib.import_module(module_name), class_name)
    endpoints = {**DEFAULT_ENDPOINTS, "served_config": lambda app: app.get(SERVED_CONFIG_ROUTE)}
    deployment = serve.deployment(name=INGRESS_DEPLOYMENT)(make_fastapi_ingress(ingress_cls, endpoint_map=endpoints))
    return deployment.bind(**args.get(INGRESS_KWARGS_ARG, {}))


class ConfigMarker:
    """Never started (0 replicas, no caller): the application exists for its name alone."""


def build_config_marker(args: dict[str, Any]) -> Application:
    """The marker application: one deployment that never starts a replica."""
    autoscaling = {"min_replicas": 0, "max_replicas": 1}
    return serve.deployment(name="ConfigMarker", autoscaling_config=autoscaling)(ConfigMarker).bind()
