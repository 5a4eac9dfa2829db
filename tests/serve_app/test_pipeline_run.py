"""`serve_app.pipelines`: a pipeline run over fake model deployments (no Ray): verdicts, denials that stop the
pipeline before the next model, templates, routes, usage sums, the extension field, the streamed last step, and
what the metrics are told."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from infra.render.metrics import METRICS
from serve_app.pipeline_spec import parse_pipelines
from serve_app.pipelines import (
    EXTENSION_FIELD,
    PipelineRequestError,
    PipelineRun,
    add_usage,
    parse_verdict,
    render_template,
)

MODELS = ("big", "small", "guard")
USAGE = {"big": (20, 7), "small": (10, 5), "guard": (30, 1)}


def pipeline(*steps):
    (parsed,), problems = parse_pipelines([{"id": "pipe", "steps": list(steps)}], MODELS)
    assert problems == []
    return parsed


def usage(model):
    prompt, completion = USAGE[model]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class FakeModels:
    """Each model answers its line of `answers`; every call is kept, with its request."""

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []

    async def call(self, model, request):
        self.calls.append((model, request))
        message = {"role": "assistant", "content": self.answers[model]}
        return {
            "id": f"chatcmpl-{model}",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage(model),
        }

    async def stream(self, model, request):
        self.calls.append((model, request))
        base = {"id": f"chatcmpl-{model}", "object": "chat.completion.chunk", "created": 1, "model": model}
        first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}
        second = {**base, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}
        # vLLM sends several events in one batch (Ray's LLMServer batches them), then usage, then [DONE]
        yield f"data: {json.dumps(first)}\n\ndata: {json.dumps(second)}\n\n"
        if (request.get("stream_options") or {}).get("include_usage"):
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage(model)})}\n\n"
        yield "data: [DONE]\n\n"


class Recorder:
    def __init__(self):
        self.steps, self.requests = [], []

    def step(self, pipeline, record, seconds):
        self.steps.append((pipeline, record.step, record.kind, record.model, record.decision))

    def request(self, pipeline, outcome, seconds):
        self.requests.append((pipeline, outcome))


def run(run_async, steps, models, request=None, recorder=None):
    request = request or {"model": "pipe", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
    recorder = recorder or Recorder()
    result = run_async(PipelineRun(pipeline(*steps), request, models.call, models.stream, recorder).run())
    if isinstance(result, dict):
        return result, recorder

    async def collect():
        return [event async for event in result]

    return run_async(collect()), recorder


def events(chunks):
    return [json.loads(chunk[len("data: ") :]) for chunk in chunks if chunk != "data: [DONE]\n\n"]


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("safe", "allow"),
        ("\n\nsafe", "allow"),  # Llama Guard 3 starts with a blank line
        ("  SAFE  \n", "allow"),
        ("unsafe\nS1", "deny"),
        ("\n\nunsafe\nS10,S11", "deny"),
        ("It is safe", "unparseable"),
        ("safe.", "unparseable"),
        ("", "unparseable"),
    ],
)
def test_a_llama_guard_verdict_is_the_first_non_blank_line(answer, verdict):
    assert parse_verdict("llamaGuard", answer) == verdict


GUARDED = (
    {"kind": "guard", "model": "guard", "verdict": "llamaGuard", "message": "Refused."},
    {"kind": "generate", "model": "big"},
)


def test_a_guard_that_denies_answers_content_filter_and_never_calls_the_next_model(run_async):
    models = FakeModels(guard="\n\nunsafe\nS1", big="never")
    answer, recorder = run(run_async, GUARDED, models)
    assert [model for model, _ in models.calls] == ["guard"], "the denied prompt reached the next model"
    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "content_filter" and choice["message"]["content"] == "Refused."
    assert answer["model"] == "pipe" and answer["usage"] == usage("guard")
    assert answer[EXTENSION_FIELD]["steps"] == [
        {"step": 0, "kind": "guard", "model": "guard", "decision": "deny", "usage": usage("guard")}
    ]
    assert recorder.requests == [("pipe", "denied")]


def test_an_unparseable_verdict_denies(run_async):
    models = FakeModels(guard="I cannot tell", big="never")
    answer, recorder = run(run_async, GUARDED, models)
    assert answer["choices"][0]["finish_reason"] == "content_filter" and len(models.calls) == 1
    assert recorder.steps == [("pipe", 0, "guard", "guard", "unparseable")]


def test_a_guard_model_gets_the_conversation_only_and_a_short_greedy_answer(run_async):
    models = FakeModels(guard="safe", big="Rayleigh scattering.")
    request = {
        "model": "pipe",
        "messages": [{"role": "user", "content": "Why?"}],
        "tools": [{"type": "function"}],
        "max_tokens": 500,
        "temperature": 0.9,
    }
    answer, _ = run(run_async, GUARDED, models, request)
    (_, guard_request), (_, big_request) = models.calls
    assert guard_request == {
        "model": "guard",
        "messages": [{"role": "user", "content": "Why?"}],
        "max_tokens": 16,
        "temperature": 0.0,
        "stream": False,
    }
    assert big_request["tools"] == [{"type": "function"}] and big_request["max_tokens"] == 500
    assert big_request["model"] == "big" and big_request["stream"] is False
    assert answer["choices"][0]["message"]["content"] == "Rayleigh scattering."
    assert (
        answer["usage"]
        == add_usage(usage("guard"), usage("big"))
        == {"prompt_tokens": 50, "completion_tokens": 8, "total_tokens": 58}
    )


def test_a_pattern_guard_screens_every_user_message_and_calls_no_model(run_async):
    steps = ({"kind": "guard", "patterns": ["(?i)password"]}, {"kind": "generate", "model": "big"})
    request = {
        "model": "pipe",
        "messages": [
            {"role": "user", "content": "my PASSWORD is x"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
        ],
    }
    models = FakeModels(big="never")
    answer, recorder = run(run_async, steps, models, request)
    assert models.calls == [] and answer["choices"][0]["finish_reason"] == "content_filter"
    assert answer["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert recorder.steps == [("pipe", 0, "guard", None, "deny")]
    allowed, _ = run(run_async, steps, models)
    assert [model for model, _ in models.calls] == ["big"] and allowed["choices"][0]["finish_reason"] == "stop"


CHAIN = (
    {"kind": "generate", "model": "big"},
    {"kind": "generate", "model": "small", "template": "Summarize '{input}': {previous}"},
)


def test_a_chain_passes_the_answer_through_the_template_and_sums_the_usage(run_async):
    models = FakeModels(big="Because of scattering.", small="Scattering.")
    answer, recorder = run(run_async, CHAIN, models)
    (_, first), (_, second) = models.calls
    assert first["messages"] == [{"role": "user", "content": "Why is the sky blue?"}]
    assert second["messages"] == [
        {"role": "user", "content": "Summarize 'Why is the sky blue?': Because of scattering."}
    ]
    assert answer["model"] == "pipe" and answer["choices"][0]["message"]["content"] == "Scattering."
    assert answer["usage"] == {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
    assert [(s["step"], s["model"], s["usage"]) for s in answer[EXTENSION_FIELD]["steps"]] == [
        (0, "big", usage("big")),
        (1, "small", usage("small")),
    ]
    assert recorder.requests == [("pipe", "answered")]


def test_only_the_last_step_streams_and_its_usage_chunk_carries_the_totals(run_async):
    models = FakeModels(big="Because of scattering.", small="unused when streamed")
    request = {
        "model": "pipe",
        "messages": [{"role": "user", "content": "Why?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks, recorder = run(run_async, CHAIN, models, request)
    (_, first), (_, last) = models.calls
    assert first["stream"] is False and "stream_options" not in first
    assert last["stream"] is True and last["stream_options"] == {"include_usage": True}
    assert chunks[-1] == "data: [DONE]\n\n" and chunks.count("data: [DONE]\n\n") == 1
    parsed = events(chunks)
    assert {event["model"] for event in parsed} == {"pipe"}
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in parsed if e["choices"]) == "Hello"
    assert parsed[-1]["choices"] == [] and parsed[-1]["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
    }
    assert [s["model"] for s in parsed[-1][EXTENSION_FIELD]["steps"]] == ["big", "small"]
    assert recorder.requests == [("pipe", "answered")] and len(recorder.steps) == 2


def test_a_stream_without_include_usage_gets_no_usage_chunk(run_async):
    request = {"model": "pipe", "messages": [{"role": "user", "content": "Why?"}], "stream": True}
    chunks, _ = run(run_async, CHAIN, FakeModels(big="x", small="y"), request)
    assert all(event["choices"] for event in events(chunks)), "sent a usage chunk the client did not ask for"


def test_a_denial_streams_as_one_content_filter_chunk(run_async):
    request = {
        "model": "pipe",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks, _ = run(run_async, GUARDED, FakeModels(guard="unsafe", big="never"), request)
    parsed = events(chunks)
    assert parsed[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Refused."}
    assert parsed[1]["choices"][0]["finish_reason"] == "content_filter"
    assert parsed[2]["usage"] == usage("guard") and chunks[-1] == "data: [DONE]\n\n"


def test_an_output_guard_checks_the_answer_and_can_withhold_it(run_async):
    steps = (
        {"kind": "generate", "model": "big"},
        {"kind": "guard", "model": "guard", "verdict": "llamaGuard", "check": "output"},
    )
    models = FakeModels(big="a bad answer", guard="unsafe")
    answer, _ = run(run_async, steps, models)
    (_, guard_request) = models.calls[1]
    assert guard_request["messages"][-1] == {"role": "assistant", "content": "a bad answer"}
    assert answer["choices"][0]["finish_reason"] == "content_filter"
    assert "a bad answer" not in json.dumps(answer)
    models = FakeModels(big="a good answer", guard="safe")
    request = {"model": "pipe", "messages": [{"role": "user", "content": "x"}], "stream": True}
    chunks, _ = run(run_async, steps, models, request)
    assert [c["model"] for c in [call[1] for call in models.calls]] == ["big", "guard"]
    assert events(chunks)[0]["choices"][0]["delta"]["content"] == "a good answer", "checked, then sent as one chunk"


@pytest.mark.parametrize(("prompt", "model"), [("x" * 50, "big"), ("please prove it", "big"), ("hi", "small")])
def test_a_route_by_rules_takes_the_first_rule_that_matches(run_async, prompt, model):
    steps = (
        {
            "kind": "route",
            "default": "small",
            "rules": [{"model": "big", "minPromptChars": 40}, {"model": "big", "pattern": "prove"}],
        },
    )
    models = FakeModels(big="B", small="S")
    _, recorder = run(run_async, steps, models, {"model": "pipe", "messages": [{"role": "user", "content": prompt}]})
    assert [m for m, _ in models.calls] == [model]
    assert recorder.steps[0] == ("pipe", 0, "route", None, model)


@pytest.mark.parametrize(("label", "model"), [("Hard.", "big"), ("\neasy\nbecause", "small"), ("no idea", "small")])
def test_a_route_by_classifier_reads_the_label_on_its_first_line(run_async, label, model):
    steps = ({"kind": "route", "classifier": "guard", "choices": {"hard": "big", "easy": "small"}, "default": "small"},)
    models = FakeModels(guard=label, big="B", small="S")
    answer, _ = run(run_async, steps, models)
    assert [m for m, _ in models.calls] == ["guard", model]
    assert answer["usage"]["total_tokens"] == usage("guard")["total_tokens"] + usage(model)["total_tokens"]


def test_a_template_replaces_the_last_user_message_and_keeps_the_rest():
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
    ]
    assert render_template("{input}|{previous}|{{literal}}", messages, "P") == [
        *messages[:3],
        {"role": "user", "content": "Q2|P|{literal}"},
    ]


def test_more_than_one_choice_is_a_client_error():
    with pytest.raises(PipelineRequestError, match="answers one choice; found n=2"):
        PipelineRun(pipeline(*CHAIN), {"model": "pipe", "messages": [], "n": 2}, None, None, Recorder())


def test_a_failing_model_call_is_counted_as_an_error(run_async):
    class Broken(FakeModels):
        async def call(self, model, request):
            raise RuntimeError("engine dead")

    recorder = Recorder()
    with pytest.raises(RuntimeError, match="engine dead"):
        run(run_async, CHAIN, Broken(), recorder=recorder)
    assert recorder.requests == [("pipe", "error")]


def test_the_ingress_registers_exactly_the_listed_pipeline_metrics():
    """The names infra/render/metrics.py lists (and the dashboard queries) are the names the ingress registers,
    with Ray's `ray_` prefix and a counter's `_total`."""
    source = (Path(__file__).resolve().parents[2] / "serve_app" / "pipeline_ingress.py").read_text()
    registered = {
        f"ray_{node.args[0].value}" + ("_total" if node.func.attr == "Counter" else "")
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("Counter", "Histogram", "Gauge")
    }
    listed = {metric.name for metric in METRICS if "pipeline" in metric.name}
    assert registered == listed and len(listed) == 6
