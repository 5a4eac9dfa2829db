"""`llmserve:pipelines` in the stack config: read into `ServingConfig.pipelines`, every problem a config error
naming the key before any resource exists (the rules themselves: tests/serve_app/test_pipeline_spec.py)."""

from __future__ import annotations

from serve_app.pipeline_spec import Pipeline, Step

R1 = "deepseek-r1"  # the model of the stack the fixtures start from (tests/support/inputs.py)


def test_pipelines_are_read_into_the_serving_settings(parse_config):
    config = parse_config(
        pipelines=[
            {
                "id": "r1-guarded",
                "steps": [{"kind": "guard", "patterns": ["(?i)secret"]}, {"kind": "generate", "model": R1}],
            }
        ]
    )
    assert config.serving.pipelines == (
        Pipeline("r1-guarded", (Step("guard", patterns=("(?i)secret",)), Step("generate", model=R1))),
    )


def test_no_pipelines_by_default(parse_config):
    assert parse_config().serving.pipelines == ()


def test_a_pipeline_naming_an_unknown_model_is_a_config_error(config_problems):
    problems = config_problems(pipelines=[{"id": "p", "steps": [{"kind": "generate", "model": "deepseek-r2"}]}])
    assert (
        "llmserve:pipelines[0].steps[0].model: names no model of the stack; found 'deepseek-r2'; allowed: a "
        "model id of models: deepseek-r1" in problems
    )


def test_a_pipeline_id_equal_to_a_model_id_is_a_config_error(config_problems):
    problems = config_problems(pipelines=[{"id": R1, "steps": [{"kind": "generate", "model": R1}]}])
    assert "llmserve:pipelines[0].id: equals a model id" in problems


def test_pipelines_that_are_not_a_list_are_a_config_error(config_problems):
    assert "llmserve:pipelines: expected a YAML/JSON list of objects; found 'not json'" in config_problems(
        pipelines="not json"
    )
    assert "llmserve:pipelines: must be a list of pipeline objects; found {'id': 'x'}" in config_problems(
        pipelines={"id": "x"}
    )


def test_pipeline_problems_are_reported_with_the_other_keys_problems(config_problems):
    problems = config_problems(gpuNodeCount=-1, pipelines=[{"id": "p", "steps": []}])
    assert (
        "llmserve:gpuNodeCount" in problems and "llmserve:pipelines[0].steps: must list at least one step" in problems
    )
