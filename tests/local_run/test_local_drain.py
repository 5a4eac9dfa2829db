"""The local runner drains stopping replicas for the stack's streamDrainSeconds, as the cluster does."""

from __future__ import annotations

import pytest

from local_run.errors import LocalRunError
from local_run.serve_config import local_serve_config, stack_serving, stack_stream_drain_s


def _stack(tmp_path, config: str):
    (tmp_path / "Pulumi.yaml").write_text("name: llmserve\nruntime: python\n")
    (tmp_path / "Pulumi.x.yaml").write_text(f"config:\n{config}")


def test_the_stacks_drain_seconds_reach_every_local_replica(tmp_path):
    _stack(tmp_path, "  llmserve:streamDrainSeconds: 120\n")
    drain_s = stack_stream_drain_s("x", root=tmp_path)
    models, auth = stack_serving("dev")
    config = local_serve_config(models, auth, {m.model_id: tmp_path for m in models}, 8000, stream_drain_s=drain_s)
    timeouts = {
        app["name"]: (app.get("deployments") or [app.get("args", {}).get("deployment_config", {})])[0].get(
            "graceful_shutdown_timeout_s"
        )
        for app in config["applications"]
        if not app["name"].startswith("config-")
    }
    assert timeouts == {
        "llm": 120,
        "model-deepseek-r1-distill-qwen-1.5b": 120,
        "model-deepseek-r1-distill-qwen-7b": 120,
    }


def test_without_the_key_the_documented_default_of_900_s_applies(tmp_path):
    _stack(tmp_path, "  llmserve:apiAuth: true\n")
    assert stack_stream_drain_s("x", root=tmp_path) == 900


def test_a_drain_that_is_not_a_number_stops_the_local_runner_with_the_key(tmp_path):
    _stack(tmp_path, "  llmserve:streamDrainSeconds: soon\n")
    with pytest.raises(LocalRunError, match=r"llmserve:streamDrainSeconds: found 'soon'"):
        stack_stream_drain_s("x", root=tmp_path)
