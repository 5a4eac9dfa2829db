"""Stand-ins for the Ray Serve LLM modules the shipped ingress imports, which need vLLM (absent from the unit
environment). Only the names `serve_app.ingress` and `serve_app.pipeline_ingress` use, with the fields they read."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

INGRESS_UTILS_MODULE = "ray.llm._internal.serve.core.ingress.utils"


class _Fields:
    def __init__(self, **fields: Any):
        self.__dict__.update(fields)

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return dict(self.__dict__)


class ChatCompletionRequest(_Fields):
    """Ray's is vLLM's pydantic model; the ingress reads `model` and dumps what the client set."""

    model: str | None = None


class ModelCard(_Fields):
    pass


class ModelList(_Fields):
    pass


class ErrorResponse(_Fields):
    pass


class OpenAIHTTPException(Exception):
    def __init__(self, status_code: int, message: str, type: str = "Unknown"):
        super().__init__(message)
        self.status_code, self.message, self.type = status_code, message, type


def install(setitem: Callable[[Any, str, Any], None], modules: Any, api_models: types.ModuleType) -> None:
    """Add the pipeline ingress's names to `api_models` and stand in Ray LLM's ingress utils."""
    for cls in (ChatCompletionRequest, ModelCard, ModelList, ErrorResponse, OpenAIHTTPException):
        setattr(api_models, cls.__name__, cls)
    utils = types.ModuleType(INGRESS_UTILS_MODULE)
    utils._sanitize_chat_completion_request = lambda request: request  # type: ignore[attr-defined]
    setitem(modules, INGRESS_UTILS_MODULE, utils)
