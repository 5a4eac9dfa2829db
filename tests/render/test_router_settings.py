"""The prefix-aware router's settings as the rendered Serve config carries them to Ray, pinned as literals.

Ray 2.60's `PrefixCacheAffinityRouter.initialize_state` defaults `imbalanced_threshold` to infinity
(`ray/llm/_internal/serve/routing_policies/prefix_aware/prefix_aware_router.py`): a hot prefix would then go
to one replica however long its queue grew. The project sets 10 (fall back to the shortest queue once queue
lengths differ by 10 or more). Only the keys pinned here are asserted: others may join them.
"""

from __future__ import annotations

import inspect

import pytest
import yaml

from serve_app.builder import model_llm_configs

ROUTER = "ray.serve.llm.request_router:PrefixCacheAffinityRouter"


def llm_configs(planned, stack: str) -> dict[str, dict]:
    """Each model's llm_config in the stack's RayService, read back from the serveConfigV2 YAML Ray receives."""
    [service] = [manifest for manifest in planned(stack).manifests() if manifest["kind"] == "RayService"]
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    return {config["model_loading_config"]["model_id"]: config for config in model_llm_configs(serve_config)}


def test_rays_own_default_is_the_unbounded_one_the_pin_replaces():
    from ray.llm._internal.serve.routing_policies.prefix_aware.prefix_aware_router import PrefixCacheAffinityRouter

    default = inspect.signature(PrefixCacheAffinityRouter.initialize_state).parameters["imbalanced_threshold"].default
    assert default == float("inf")


@pytest.mark.parametrize("model", ["deepseek-r1-distill-qwen-1.5b"])  # dev's model with maxReplicas 2
def test_the_prefix_router_falls_back_when_queues_differ_by_ten(planned, model):
    router = llm_configs(planned, "dev")[model]["deployment_config"]["request_router_config"]
    assert router["request_router_class"] == ROUTER
    assert router["request_router_kwargs"]["imbalanced_threshold"] == 10
