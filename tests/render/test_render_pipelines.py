"""Pipelines in what the plan renders: the dev stack's pipelines ride in the ingress deployment's `user_config` of
the RayService's Serve config (valid for Ray 2.60's schemas), change nothing else of it, and are listed with
their models in `capacity.json` and the plan summary."""

from __future__ import annotations

import json

import pytest
import yaml
from ray.serve.schema import DeploymentSchema, ServeDeploySchema

from serve_app.builder import build_serve_config, serve_config_hash, stamp_serve_config
from serve_app.pipeline_spec import Pipeline, Step
from serve_app.spec import parse_models

DEV_PIPELINES = [
    {
        "id": "distill-chain",
        "steps": [
            {"kind": "generate", "model": "deepseek-r1-distill-qwen-7b"},
            {
                "kind": "generate",
                "model": "deepseek-r1-distill-qwen-1.5b",
                "template": "Summarize this answer to '{input}' in two sentences:\n\n{previous}",
            },
        ],
    },
    {
        "id": "distill-guarded",
        "steps": [
            {
                "kind": "guard",
                "check": "input",
                "message": "Requests about passwords and card numbers are refused on this service.",
                "patterns": ["(?i)\\b(password|credit card number)s?\\b"],
            },
            {"kind": "generate", "model": "deepseek-r1-distill-qwen-7b"},
        ],
    },
]


def _ingress(serve_config):
    (app,) = [app for app in serve_config["applications"] if app["name"] == "llm"]
    (deployment,) = app["deployments"]
    return app, deployment


def test_the_dev_plan_carries_its_pipelines_in_the_ingress_user_config(plan_output):
    plan = plan_output("dev")
    docs = list(yaml.safe_load_all((plan.folder / "manifests.yaml").read_text()))
    (rayservice,) = [doc for doc in docs if doc and doc["kind"] == "RayService"]
    serve_config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)
    app, deployment = _ingress(serve_config)
    DeploymentSchema.model_validate(deployment)
    assert deployment["user_config"]["pipelines"] == DEV_PIPELINES
    assert "pipelines" not in json.dumps(app["args"]), "in the args, a pipeline change would restart the ingress"


def test_the_dev_plan_lists_each_pipeline_and_its_models(plan_output):
    plan = plan_output("dev")
    capacity = json.loads((plan.folder / "capacity.json").read_text())
    assert capacity["pipelines"] == [
        {
            "id": "distill-chain",
            "models": ["deepseek-r1-distill-qwen-7b", "deepseek-r1-distill-qwen-1.5b"],
            "steps": ["generate", "generate"],
        },
        {"id": "distill-guarded", "models": ["deepseek-r1-distill-qwen-7b"], "steps": ["guard", "generate"]},
    ]
    assert (
        "    distill-chain: generate -> generate; models deepseek-r1-distill-qwen-7b, "
        "deepseek-r1-distill-qwen-1.5b" in plan.summary
    )
    assert "    distill-guarded: guard -> generate; models deepseek-r1-distill-qwen-7b" in plan.summary


MODELS = parse_models(
    [
        {"id": "big", "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "acceleratorType": "L4"},
        {"id": "small", "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "acceleratorType": "L4"},
    ]
)


def test_a_pipeline_change_touches_only_the_ingress_user_config_and_the_hash():
    """Serve restarts a replica for new args or actor options, and only reconfigures it for a new user_config
    (ray/serve/_private/version.py requires_actor_restart, requires_actor_reconfigure)."""
    one = build_serve_config(MODELS, pipelines=[Pipeline("p", (Step("generate", model="big"),))])
    two = build_serve_config(MODELS, pipelines=[Pipeline("p", (Step("generate", model="small"),))])
    assert serve_config_hash(one) != serve_config_hash(two)
    for config in (one, two):
        _, deployment = _ingress(config)
        deployment["user_config"].pop("pipelines")
        deployment["user_config"].pop("serve_config_hash")
    strip = lambda config: [app for app in config["applications"] if not app["name"].startswith("config-")]  # noqa: E731
    assert strip(one) == strip(two)


def test_pipelines_survive_a_later_stamp():
    config = build_serve_config(MODELS, pipelines=[Pipeline("p", (Step("generate", model="big"),))])
    assert stamp_serve_config(config) == config
    assert _ingress(stamp_serve_config(config))[1]["user_config"]["pipelines"] == [
        {"id": "p", "steps": [{"kind": "generate", "model": "big"}]}
    ]


def test_the_builder_refuses_a_pipeline_over_a_model_it_does_not_serve():
    with pytest.raises(ValueError, match=r"pipelines\[0\].steps\[0\].model: names no model of the stack"):
        build_serve_config(MODELS, pipelines=[Pipeline("p", (Step("generate", model="huge"),))])


def test_a_stamp_refuses_pipelines_over_a_model_an_edit_removed():
    """A rendered config edited afterwards (a CPU rewrite, a hand edit) must not reach the ingress with a
    pipeline whose model is gone: its reconfigure would refuse it and the ingress application would fail."""
    config = build_serve_config(MODELS, pipelines=[Pipeline("p", (Step("generate", model="big"),))])
    config["applications"] = [app for app in config["applications"] if app["name"] != "model-big"]
    with pytest.raises(ValueError, match=r"pipelines\[0\].steps\[0\].model: names no model of the stack"):
        stamp_serve_config(config)
