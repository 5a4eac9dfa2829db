"""The prefix-cache-aware router forgets cold prefixes: its prefix tree is bounded.

Ray 2.60's PrefixCacheAffinityRouter.initialize_state() defaults `do_eviction` to False
(ray/llm/_internal/serve/routing_policies/prefix_aware/prefix_aware_router.py, lines 59-66), so its prefix tree,
a detached actor, keeps every prompt's text for good. The limits below are those Ray documents in
doc/source/serve/llm/user-guides/prefix-aware-routing.md ("Memory management parameters": 400,000 / 360,000
characters, every 10 s), pinned here as literals.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

with warnings.catch_warnings():  # Ray's own pydantic deprecation warnings at import
    warnings.simplefilter("ignore", DeprecationWarning)
    from ray.llm._internal.serve.routing_policies.prefix_aware.prefix_aware_router import PrefixCacheAffinityRouter
    from ray.llm._internal.serve.routing_policies.prefix_aware.prefix_tree import PrefixTree

from serve_app.builder import build_serve_config, model_llm_configs
from serve_app.spec import parse_models

DOCUMENTED = {
    "do_eviction": True,
    "eviction_threshold_chars": 400_000,
    "eviction_target_chars": 360_000,
    "eviction_interval_secs": 10,
}


def router_kwargs() -> dict[str, Any]:
    """The router kwargs of a model that can have two replicas (routing on), as the Serve config has them."""
    model = {"id": "small", "source": "Qwen/Qwen2.5-0.5B-Instruct", "acceleratorType": "L4"}
    model |= {"maxReplicas": 2, "targetOngoingRequests": 8}
    (llm,) = model_llm_configs(build_serve_config(parse_models([model])))
    return llm["deployment_config"]["request_router_config"]["request_router_kwargs"]


def test_the_router_evicts_with_the_documented_limits():
    kwargs = router_kwargs()
    assert {key: kwargs.get(key) for key in DOCUMENTED} == DOCUMENTED, kwargs
    assert kwargs["imbalanced_threshold"] == 10


def test_ray_takes_the_eviction_settings_by_these_names():
    """Ray's own initialize_state() accepts the kwargs and turns eviction on (a misspelt name is a TypeError)."""
    router = PrefixCacheAffinityRouter.__new__(PrefixCacheAffinityRouter)
    router._deployment_id = None
    router.initialize_state(**router_kwargs(), tree_actor=object())
    assert router._do_eviction is True
    assert (router._eviction_threshold_chars, router._eviction_target_chars) == (400_000, 360_000)
    assert router._eviction_interval_secs == 10


def test_the_tree_is_cut_back_to_the_target_once_a_replica_passes_the_threshold():
    """Ray's eviction loop with these limits (a 50 ms interval instead of 10 s): 450,000 characters of distinct
    prompts for one replica shrink to at most 360,000, the oldest prompts go first, and a recent one stays."""
    kwargs = router_kwargs()
    tree = PrefixTree()
    tree.add_tenants(["replica-1"], time.time())
    # 45 prompts of 10,000 characters that share no prefix (each starts with its own character)
    prompts = [chr(ord("A") + i) + "x" * 9_999 for i in range(45)]
    for age, prompt in enumerate(prompts):
        tree.insert(prompt, "replica-1", float(age))
    assert tree.tenant_to_char_count["replica-1"] == 450_000
    tree.start_eviction_loop(kwargs["eviction_threshold_chars"], kwargs["eviction_target_chars"], 0.05)
    try:
        deadline = time.monotonic() + 10
        while tree.tenant_to_char_count["replica-1"] > 360_000 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        tree.stop_eviction_loop()
    assert tree.tenant_to_char_count["replica-1"] <= 360_000
    matched, tenants = tree.prefix_match(prompts[-1])
    assert matched == prompts[-1] and tenants == ["replica-1"], "the most recent prompt was evicted"
    matched, _ = tree.prefix_match(prompts[0])
    assert len(matched) < 10_000, "the oldest prompt survived the eviction"
