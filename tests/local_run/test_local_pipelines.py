"""The local runner serves the stack's pipelines too, checked as the plan checks them."""

from __future__ import annotations

import pytest

from local_run.errors import LocalRunError
from local_run.serve_config import local_serve_config, stack_pipelines, stack_serving


def test_the_dev_stacks_pipelines_reach_the_local_ingress(tmp_path):
    models, auth = stack_serving("dev")
    pipelines = stack_pipelines("dev", models)
    assert [pipeline.pipeline_id for pipeline in pipelines] == ["distill-chain", "distill-guarded"]
    paths = {model.model_id: tmp_path / model.model_id for model in models}
    config = local_serve_config(models, auth, paths, 8000, pipelines)
    (ingress,) = [app for app in config["applications"] if app["name"] == "llm"]
    assert [p["id"] for p in ingress["deployments"][0]["user_config"]["pipelines"]] == [
        "distill-chain",
        "distill-guarded",
    ]


def test_a_bad_pipeline_stops_the_local_runner_with_the_key(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: llmserve\nruntime: python\n")
    (tmp_path / "Pulumi.x.yaml").write_text("config:\n  llmserve:pipelines:\n    - id: p\n      steps: []\n")
    models, _ = stack_serving("dev")
    with pytest.raises(LocalRunError, match=r"llmserve:pipelines\[0\].steps: must list at least one step"):
        stack_pipelines("x", models, root=tmp_path)
