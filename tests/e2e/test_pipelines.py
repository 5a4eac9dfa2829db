"""End to end: the dev stack's pipelines (Pulumi.dev.yaml `llmserve:pipelines`) on the shared local dev server.

The tiny models answer noise, so the checks do not depend on what they say: `distill-chain` runs both models
whatever the text (the 7B answers, the 1.5B summarizes), and `distill-guarded` denies by a pattern list. That the
denied prompt never reached the 7B is read from the 7B deployment's own request counter, Ray Serve's
`serve_deployment_request_counter` (ray/serve/_private/replica.py), on the server's metrics endpoint.
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.e2e

CHAIN, GUARDED = "distill-chain", "distill-guarded"
BIG, SMALL = "deepseek-r1-distill-qwen-7b", "deepseek-r1-distill-qwen-1.5b"
REFUSAL = "Requests about passwords and card numbers are refused on this service."
REQUEST_TIMEOUT_S = 300  # a model scaled to zero starts on the first request
EXPORT_S = 12  # Ray's metrics export interval (metrics_report_interval_ms, 10 s) and some slack


def client(server, api_key=None):
    import openai

    return openai.OpenAI(
        base_url=server["base_url"], api_key=api_key or server["api_key"], timeout=REQUEST_TIMEOUT_S, max_retries=0
    )


def chat(server, model, content, **extra):
    return client(server).chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=4, **extra
    )


def requests_to(server, model: str) -> float:
    """How many requests the model's deployment has taken, by its replicas' own counter."""
    import httpx

    text = httpx.get(server["metrics_url"], timeout=30).text
    pattern = re.compile(
        r'^ray_serve_deployment_request_counter_total\{[^}]*deployment="LLMServer:'
        + re.escape(model)
        + r'"[^}]*\} (\S+)$',
        re.MULTILINE,
    )
    return sum(float(value) for value in pattern.findall(text))


def settled_requests_to(server, model: str) -> float:
    """The counter once it has not moved for a whole export interval (earlier requests are all counted)."""
    value, since = requests_to(server, model), time.monotonic()
    while time.monotonic() - since < EXPORT_S:
        time.sleep(2)
        current = requests_to(server, model)
        if current != value:
            value, since = current, time.monotonic()
    return value


def test_a_denied_prompt_answers_content_filter_and_never_reaches_the_next_model(dev_server):
    before = settled_requests_to(dev_server, BIG)
    for content in ("What is my password?", "Read me a CREDIT CARD NUMBER"):
        denied = chat(dev_server, GUARDED, content)
        assert denied.choices[0].finish_reason == "content_filter", denied
        assert denied.choices[0].message.content == REFUSAL and denied.model == GUARDED
        assert denied.usage.total_tokens == 0, "a rule decided; no model ran"
    allowed = chat(dev_server, GUARDED, "Why is the sky blue?")  # reaches the 7B after the two denials
    assert allowed.choices[0].finish_reason in ("length", "stop") and allowed.usage.completion_tokens > 0
    deadline = time.monotonic() + 3 * EXPORT_S
    while (after := requests_to(dev_server, BIG)) < before + 1 and time.monotonic() < deadline:
        time.sleep(1)
    # A snapshot that counts the allowed request counts the denied ones too, had they reached the model.
    assert after - before == 1, f"the 7B took {after - before} requests; only the allowed one may reach it"


def test_the_pipelines_are_listed_as_models_with_the_models_they_use(dev_server):
    import httpx

    response = httpx.get(
        f"{dev_server['base_url']}/models", headers={"Authorization": f"Bearer {dev_server['api_key']}"}, timeout=30
    )
    cards = {card["id"]: card for card in response.json()["data"]}
    assert {CHAIN, GUARDED, BIG, SMALL} <= set(cards)
    assert cards[CHAIN]["metadata"]["llmserve_pipeline"] == {"models": [BIG, SMALL], "steps": ["generate", "generate"]}


def test_a_chain_answer_counts_the_tokens_of_both_models(dev_server):
    import httpx

    body = {"model": CHAIN, "messages": [{"role": "user", "content": "Why is the sky blue?"}], "max_tokens": 4}
    response = httpx.post(
        f"{dev_server['base_url']}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {dev_server['api_key']}"},
        timeout=REQUEST_TIMEOUT_S,
    )
    answer = response.json()
    assert response.status_code == 200 and answer["model"] == CHAIN, answer
    steps = answer["llmserve_pipeline"]["steps"]
    assert [(step["step"], step["model"]) for step in steps] == [(0, BIG), (1, SMALL)]
    assert all(step["usage"]["completion_tokens"] > 0 for step in steps), steps
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert answer["usage"][field] == sum(step["usage"][field] for step in steps), (field, answer)


def test_a_streamed_chain_streams_the_last_step_and_ends_with_both_steps_usage(dev_server):
    chunks = list(chat(dev_server, CHAIN, "Count to three.", stream=True, stream_options={"include_usage": True}))
    assert len(chunks) >= 3 and all(chunk.model == CHAIN for chunk in chunks)
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    steps = final.model_extra["llmserve_pipeline"]["steps"]
    assert [step["model"] for step in steps] == [BIG, SMALL]
    assert final.usage.total_tokens == sum(step["usage"]["total_tokens"] for step in steps)
    assert final.usage.completion_tokens == sum(step["usage"]["completion_tokens"] for step in steps) >= 2
    denied = list(chat(dev_server, GUARDED, "my password", stream=True))
    assert denied[0].choices[0].delta.content == REFUSAL and denied[-1].choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize("api_key", ["", "not-the-key-0123456789"], ids=["missing", "wrong"])
def test_a_pipeline_needs_the_api_key(dev_server, api_key):
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"model": CHAIN, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    response = httpx.post(f"{dev_server['base_url']}/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 401, response.text
