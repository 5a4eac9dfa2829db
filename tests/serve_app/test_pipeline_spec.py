"""`serve_app.pipeline_spec`: every rule of the `pipelines` config is refused with the key path, the value found
and what is allowed; a good config reads back to the same pipelines from the ingress's `user_config` form."""

from __future__ import annotations

import pytest

from serve_app.pipeline_spec import DEFAULT_DENY_MESSAGE, Pipeline, RouteRule, Step, parse_pipelines

KEY = "llmserve:pipelines"
MODELS = ("big", "small")


def problems(raw):
    pipelines, found = parse_pipelines(raw, MODELS, key=KEY)
    assert found, f"accepted: {pipelines}"
    assert pipelines == (), "pipelines are returned only without problems"
    return "\n".join(found)


def generate(model="big", **extra):
    return {"kind": "generate", "model": model, **extra}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # an unknown model, wherever a model is named
        (
            [{"id": "p", "steps": [generate("huge")]}],
            f"{KEY}[0].steps[0].model: names no model of the stack; found "
            "'huge'; allowed: a model id of models: big, small",
        ),
        (
            [{"id": "p", "steps": [{"kind": "guard", "model": "nope", "verdict": "llamaGuard"}, generate()]}],
            f"{KEY}[0].steps[0].model: names no model of the stack; found 'nope'",
        ),
        (
            [{"id": "p", "steps": [{"kind": "route", "rules": [{"model": "x", "pattern": "a"}], "default": "big"}]}],
            f"{KEY}[0].steps[0].rules[0].model: names no model of the stack; found 'x'",
        ),
        (
            [{"id": "p", "steps": [{"kind": "route", "rules": [{"model": "big", "pattern": "a"}], "default": "y"}]}],
            f"{KEY}[0].steps[0].default: names no model of the stack; found 'y'",
        ),
        (
            [
                {
                    "id": "p",
                    "steps": [{"kind": "route", "classifier": "c", "choices": {"hard": "big"}, "default": "big"}],
                }
            ],
            f"{KEY}[0].steps[0].classifier: names no model of the stack; found 'c'",
        ),
        (
            [
                {
                    "id": "p",
                    "steps": [{"kind": "route", "classifier": "small", "choices": {"hard": "z"}, "default": "big"}],
                }
            ],
            f"{KEY}[0].steps[0].choices.hard: names no model of the stack; found 'z'",
        ),
        # a pipeline id equal to a model id, or to another pipeline's
        (
            [{"id": "small", "steps": [generate()]}],
            f"{KEY}[0].id: equals a model id; clients could not tell the two "
            "apart; found 'small'; allowed: an id that no model of models has",
        ),
        (
            [{"id": "p", "steps": [generate()]}, {"id": "p", "steps": [generate()]}],
            f"{KEY}[1].id: repeats the id of {KEY}[0]; found 'p'",
        ),
        ([{"id": "has space", "steps": [generate()]}], f"{KEY}[0].id: must be an OpenAI model id; found 'has space'"),
        # empty steps, or none that answers
        ([{"id": "p", "steps": []}], f"{KEY}[0].steps: must list at least one step; found []"),
        ([{"id": "p"}], f"{KEY}[0].steps: must list at least one step; found None"),
        (
            [{"id": "p", "steps": [{"kind": "guard", "patterns": ["x"]}]}],
            f"{KEY}[0].steps: has no step that answers; found ['guard']; allowed: at least one generate or route step",
        ),
        # a guard without a verdict rule, or without anything to decide with
        (
            [{"id": "p", "steps": [{"kind": "guard", "model": "small"}, generate()]}],
            f"{KEY}[0].steps[0].verdict: is missing: a guard model needs a verdict rule; found None; "
            "allowed: llamaGuard",
        ),
        (
            [{"id": "p", "steps": [{"kind": "guard", "model": "small", "verdict": "yes/no"}, generate()]}],
            f"{KEY}[0].steps[0].verdict: is not one of the choices; found 'yes/no'; allowed: llamaGuard",
        ),
        (
            [{"id": "p", "steps": [{"kind": "guard"}, generate()]}],
            f"{KEY}[0].steps[0]: needs exactly one of model (with a verdict) or patterns",
        ),
        (
            [{"id": "p", "steps": [{"kind": "guard", "patterns": []}, generate()]}],
            f"{KEY}[0].steps[0].patterns: must list at least one pattern",
        ),
        (
            [{"id": "p", "steps": [{"kind": "guard", "patterns": ["(unclosed"]}, generate()]}],
            f"{KEY}[0].steps[0].patterns[0]: is not a valid regular expression",
        ),
        (
            [{"id": "p", "steps": [{"kind": "guard", "patterns": ["x"], "check": "output"}, generate()]}],
            f"{KEY}[0].steps[0].check: is output but no step answers before this guard",
        ),
        # templates with unknown placeholders, or {previous} with nothing before it
        (
            [{"id": "p", "steps": [generate(template="Say {question}")]}],
            f"{KEY}[0].steps[0].template: has an unknown placeholder {{question}}; found 'Say {{question}}'; "
            "allowed: text with the placeholders {input}, {previous}",
        ),
        (
            [{"id": "p", "steps": [generate(template="{input.upper}")]}],
            f"{KEY}[0].steps[0].template: has an unknown placeholder {{input.upper}}",
        ),
        (
            [{"id": "p", "steps": [generate(template="Say {input")]}],
            f"{KEY}[0].steps[0].template: is not a valid template",
        ),
        (
            [{"id": "p", "steps": [generate(template="{previous}")]}],
            f"{KEY}[0].steps[0].template: uses {{previous}} but no model step answers before this one",
        ),
        # shape
        ({"id": "p"}, f"{KEY}: must be a list of pipeline objects"),
        (
            [{"id": "p", "steps": [{"kind": "summarize", "model": "big"}]}],
            f"{KEY}[0].steps[0].kind: is not one of the choices; found 'summarize'; allowed: guard, route, generate",
        ),
        (
            [{"id": "p", "steps": [generate(maxTokens=5)]}],
            f"{KEY}[0].steps[0].maxTokens: is not a key here; found 'maxTokens'; allowed: kind, model, template",
        ),
        (
            [{"id": "p", "steps": [{"kind": "route", "rules": [{"model": "big"}], "default": "big"}]}],
            f"{KEY}[0].steps[0].rules[0]: needs exactly one of minPromptChars or pattern",
        ),
        (
            [
                {
                    "id": "p",
                    "steps": [{"kind": "route", "rules": [{"model": "big", "minPromptChars": 0}], "default": "big"}],
                }
            ],
            f"{KEY}[0].steps[0].rules[0].minPromptChars: must be a positive integer; found 0",
        ),
    ],
)
def test_a_bad_pipeline_is_refused_naming_its_key(raw, expected):
    assert expected in problems(raw)


def test_every_problem_is_reported_at_once():
    found = problems([{"id": "big", "steps": [generate("huge", template="{x}")]}, {"id": "q", "steps": []}])
    assert f"{KEY}[0].id" in found and f"{KEY}[0].steps[0].model" in found and f"{KEY}[0].steps[0].template" in found
    assert f"{KEY}[1].steps" in found


def test_no_pipelines_is_the_default():
    assert parse_pipelines(None, MODELS, key=KEY) == ((), [])


GOOD = [
    {
        "id": "guarded",
        "steps": [
            {"kind": "guard", "model": "small", "verdict": "llamaGuard"},
            {"kind": "guard", "patterns": ["(?i)secret"], "message": "No."},
            generate("big"),
            {"kind": "guard", "model": "small", "verdict": "llamaGuard", "check": "output"},
        ],
    },
    {
        "id": "cascade",
        "steps": [
            {
                "kind": "route",
                "rules": [{"model": "big", "minPromptChars": 2000}, {"model": "big", "pattern": "prove"}],
                "default": "small",
            },
            generate("small", template="Summarize '{input}':\n\n{previous}"),
        ],
    },
    {
        "id": "classified",
        "steps": [{"kind": "route", "classifier": "small", "choices": {"Hard": "big"}, "default": "small"}],
    },
]


def test_a_good_config_parses_and_reads_back_from_its_user_config_form():
    pipelines, found = parse_pipelines(GOOD, MODELS, key=KEY)
    assert found == []
    guarded, cascade, classified = pipelines
    assert guarded.steps[0] == Step(
        "guard", model="small", verdict="llamaGuard", check="input", message=DEFAULT_DENY_MESSAGE
    )
    assert guarded.steps[1] == Step("guard", patterns=("(?i)secret",), message="No.")
    assert guarded.steps[3].check == "output"
    assert cascade.steps[0].rules == (RouteRule("big", min_prompt_chars=2000), RouteRule("big", pattern="prove"))
    assert classified.steps[0].choices == (("hard", "big"),), "labels match case-insensitively"
    assert guarded.models() == ("small", "big") and cascade.models() == ("big", "small")
    again, found = parse_pipelines([pipeline.as_config() for pipeline in pipelines], MODELS, key=KEY)
    assert found == [] and again == pipelines


def test_references_are_not_checked_when_the_models_are_unknown():
    pipelines, found = parse_pipelines([{"id": "p", "steps": [generate("anything")]}], None, key=KEY)
    assert found == [] and pipelines == (Pipeline("p", (Step("generate", model="anything"),)),)


def test_a_bad_step_is_reported_once_not_again_by_the_template_after_it():
    found = problems([{"id": "p", "steps": [generate("huge"), generate("small", template="{previous}")]}])
    assert f"{KEY}[0].steps[0].model: names no model" in found
    assert "{previous}" not in found, "the template is fine; only the step before it is bad"
