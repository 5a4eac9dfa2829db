"""Running a pipeline (`serve_app.pipeline_spec`) over plain OpenAI dicts: verdicts, rules, templates, usage.

Shipped to the cluster (`serve_app.bundle`), standard library only, and tested without Ray: the ingress
(`serve_app.pipeline_ingress`) hands `PipelineRun` two functions that call a model's deployment, one for a
whole answer (a chat completion as a dict) and one for a stream (``data: ...`` server-sent events).

The documented rules:

* **Verdict** (``verdict: llamaGuard``, `parse_verdict`): the first non-blank line of the guard model's answer,
  trimmed and lower-cased, is ``safe`` (allow) or ``unsafe`` (deny); Llama Guard 3 answers ``safe``, or
  ``unsafe`` and the violated categories on the next line (meta-llama/Llama-Guard-3-8B model card, "Llama Guard 3
  ... generates text in its output that indicates whether a given prompt or response is safe or unsafe"). Anything
  else is **unparseable and denies** (fail closed: a guard that cannot be read protects nothing); the denial
  counts with reason ``unparseable``.
* **Patterns**: each is searched (`re.search`) in the text checked: for ``check: input`` every user message of
  the conversation, for ``check: output`` the answer before; any match denies.
* **Templates**: ``{input}`` is the last user message's text, ``{previous}`` the answer of the model step
  before; the rendered text replaces the last user message (the rest of the conversation is kept).
* **Route**: ``minPromptChars`` counts the characters of every message's text; ``pattern`` is searched in the
  last user message; a classifier's answer is matched by its first line (trimmed, lower-cased, without
  trailing ``.!:``) against the ``choices`` labels; no match takes ``default``.
* **Answer**: guards and classifiers are asked for at most `GUARD_MAX_TOKENS` tokens at temperature 0, with
  the conversation only; a ``generate`` (or a route's call) gets the client's parameters. Earlier steps run to
  completion; the last step streams when the client asks for a stream and no guard follows it (after an
  output guard the checked answer is sent as one chunk).
* **Usage**: ``usage`` is the sum over every model call; the extension field ``llmserve_pipeline`` lists, per
  step that ran, its index, kind, model, decision and usage. In a stream both ride on the final usage chunk,
  which is sent when the client asks for it (``stream_options.include_usage``), as OpenAI's API does.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from serve_app.pipeline_spec import Pipeline, Step

EXTENSION_FIELD = "llmserve_pipeline"
GUARD_MAX_TOKENS = 16
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
CONTENT_FILTER = "content_filter"

# (model id, request) -> a chat completion as a dict; (model id, request) -> server-sent events, `data: ...\n\n`.
Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
Stream = Callable[[str, dict[str, Any]], AsyncIterator[str]]


class PipelineRequestError(ValueError):
    """A request a pipeline cannot serve (the ingress answers 400 with this message)."""


def parse_verdict(rule: str | None, answer: str) -> str:
    """``allow``, ``deny`` or ``unparseable`` (which denies) for a guard model's `answer` (module docstring)."""
    first = next((line.strip().lower() for line in answer.splitlines() if line.strip()), "")
    if rule == "llamaGuard":
        return {"safe": "allow", "unsafe": "deny"}.get(first, "unparseable")
    return "unparseable"


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text: its content string, or its text parts joined by newlines."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def user_texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    return [message_text(message) for message in messages if message.get("role") == "user"]


def pattern_denies(patterns: Sequence[str], texts: Sequence[str]) -> bool:
    return any(re.search(pattern, text) for pattern in patterns for text in texts)


def render_template(template: str, messages: Sequence[Mapping[str, Any]], previous: str) -> list[dict[str, Any]]:
    """The conversation with its last user message replaced by the rendered `template` (appended if none)."""
    texts = user_texts(messages)
    text = template.format_map({"input": texts[-1] if texts else "", "previous": previous})
    out = [dict(message) for message in messages]
    for index in range(len(out) - 1, -1, -1):
        if out[index].get("role") == "user":
            out[index] = {"role": "user", "content": text}
            return out
    return [*out, {"role": "user", "content": text}]


def route_by_rules(step: Step, messages: Sequence[Mapping[str, Any]]) -> str:
    chars = sum(len(message_text(message)) for message in messages)
    texts = user_texts(messages)
    for rule in step.rules:
        if rule.min_prompt_chars is not None and chars >= rule.min_prompt_chars:
            return rule.model
        if rule.pattern is not None and texts and re.search(rule.pattern, texts[-1]):
            return rule.model
    return str(step.default)


def route_by_label(step: Step, answer: str) -> str:
    first = next((line.strip() for line in answer.splitlines() if line.strip()), "")
    return dict(step.choices).get(first.rstrip(".!:").strip().lower(), str(step.default))


def add_usage(total: Mapping[str, int], usage: Mapping[str, Any] | None) -> dict[str, int]:
    """`total` plus `usage` (an OpenAI ``usage`` object or None), over prompt, completion and total tokens."""
    usage = usage or {}
    return {name: int(total.get(name, 0)) + int(usage.get(name) or 0) for name in USAGE_FIELDS}


def answer_text(response: Mapping[str, Any]) -> str:
    choices = response.get("choices") or [{}]
    return message_text(choices[0].get("message") or {})


@dataclass
class StepRecord:
    """What one step did, for the extension field and the metrics."""

    step: int
    kind: str
    model: str | None
    decision: str | None = None
    usage: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "kind": self.kind,
            "model": self.model,
            "decision": self.decision,
            "usage": self.usage,
        }


class Recorder(Protocol):
    """Where a run reports its steps and its outcome (`serve_app.pipeline_ingress` records Ray metrics)."""

    def step(self, pipeline: str, record: StepRecord, seconds: float) -> None: ...

    def request(self, pipeline: str, outcome: str, seconds: float) -> None: ...


class PipelineRun:
    """One chat completion request through one pipeline; `run()` returns the answer as a dict, or an async
    iterator of server-sent events when the request asks for a stream."""

    def __init__(
        self,
        pipeline: Pipeline,
        request: Mapping[str, Any],
        call: Call,
        stream: Stream,
        recorder: Recorder,
        clock: Callable[[], float] = time.monotonic,
    ):
        if int(request.get("n") or 1) != 1:
            raise PipelineRequestError(f"pipeline {pipeline.pipeline_id!r} answers one choice; found n={request['n']}")
        self.pipeline, self.request, self.call, self.stream = pipeline, dict(request), call, stream
        self.recorder, self.clock = recorder, clock
        self.records: list[StepRecord] = []
        self.started: float | None = clock()  # None once the outcome is reported
        self.wants_stream = bool(request.get("stream"))
        self.wants_usage = bool((request.get("stream_options") or {}).get("include_usage"))

    async def run(self) -> dict[str, Any] | AsyncIterator[str]:
        messages = list(self.request.get("messages") or [])
        previous: dict[str, Any] | None = None
        last_answer = max(index for index, step in enumerate(self.pipeline.steps) if step.answers)
        streams_last = self.wants_stream and last_answer == len(self.pipeline.steps) - 1
        try:
            for index, step in enumerate(self.pipeline.steps):
                if step.kind == "guard":
                    refusal = await self._guard(index, step, messages, previous)
                    if refusal is not None:
                        return refusal
                    continue
                model = await self._route(index, step, messages) if step.kind == "route" else str(step.model)
                prompt = (
                    render_template(step.template, messages, answer_text(previous or {})) if step.template else messages
                )
                if streams_last and index == last_answer:
                    return self._rewrite(self.stream(model, self._generate_request(model, prompt, True)), index, model)
                previous = await self._timed(index, "generate", model, self._generate_request(model, prompt, False))
        except BaseException:
            self._finish("error")
            raise
        assert previous is not None  # parse_pipelines: every pipeline has a step that answers
        self._finish("answered")
        return self._respond(previous)

    # --- steps -------------------------------------------------------------------------------------------

    async def _guard(
        self, index: int, step: Step, messages: list[dict[str, Any]], previous: dict[str, Any] | None
    ) -> dict[str, Any] | AsyncIterator[str] | None:
        answer = answer_text(previous or {})
        if step.model is None:
            texts = user_texts(messages) if step.check == "input" else [answer]
            decision = "deny" if pattern_denies(step.patterns, texts) else "allow"
            record = StepRecord(index, "guard", None, decision)
            self.records.append(record)
            self.recorder.step(self.pipeline.pipeline_id, record, 0.0)
        else:
            checked = messages if step.check == "input" else [*messages, {"role": "assistant", "content": answer}]
            await self._timed(
                index,
                "guard",
                step.model,
                self._short_request(step.model, checked),
                lambda text: parse_verdict(step.verdict, text),
            )
            decision = str(self.records[-1].decision)
        if decision == "allow":
            return None
        self._finish("denied")
        return self._respond(self._refusal(step.message))

    async def _route(self, index: int, step: Step, messages: list[dict[str, Any]]) -> str:
        if step.classifier is None:
            model = route_by_rules(step, messages)
            record = StepRecord(index, "route", None, model)
            self.records.append(record)
            self.recorder.step(self.pipeline.pipeline_id, record, 0.0)
            return model
        await self._timed(
            index,
            "route",
            step.classifier,
            self._short_request(step.classifier, messages),
            lambda text: route_by_label(step, text),
        )
        return str(self.records[-1].decision)

    async def _timed(
        self, index: int, kind: str, model: str, request: dict[str, Any], decide: Callable[[str], str] | None = None
    ) -> dict[str, Any]:
        """Call `model`, record the step (with what `decide` makes of the answer) and report it."""
        started = self.clock()
        response = await self.call(model, request)
        record = StepRecord(index, kind, model, usage=response.get("usage"))
        if decide is not None:
            record.decision = decide(answer_text(response))
        self.records.append(record)
        self.recorder.step(self.pipeline.pipeline_id, record, self.clock() - started)
        return response

    # --- requests and answers ------------------------------------------------------------------------------

    def _short_request(self, model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": model,
            "messages": messages,
            "max_tokens": GUARD_MAX_TOKENS,
            "temperature": 0.0,
            "stream": False,
        }

    def _generate_request(self, model: str, messages: list[dict[str, Any]], stream: bool) -> dict[str, Any]:
        request = {name: value for name, value in self.request.items() if name not in ("stream", "stream_options")}
        request.update(model=model, messages=messages, stream=stream)
        if stream:  # always asked for, to count the tokens; passed on only when the client asked too
            request["stream_options"] = {"include_usage": True}
        return request

    def usage(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for record in self.records:
            total = add_usage(total, record.usage)
        return add_usage(total, None)

    def extension(self) -> dict[str, Any]:
        return {"id": self.pipeline.pipeline_id, "steps": [record.as_json() for record in self.records]}

    def _refusal(self, message: str) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": message},
            "finish_reason": CONTENT_FILTER,
            "logprobs": None,
        }
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "choices": [choice],
        }

    def _respond(self, response: dict[str, Any]) -> dict[str, Any] | AsyncIterator[str]:
        """`response` as the pipeline's answer: its model id, the summed usage and the extension field."""
        answer = {
            **response,
            "model": self.pipeline.pipeline_id,
            "usage": self.usage(),
            EXTENSION_FIELD: self.extension(),
        }
        return self._one_chunk_stream(answer) if self.wants_stream else answer

    async def _one_chunk_stream(self, answer: dict[str, Any]) -> AsyncIterator[str]:
        choice = answer["choices"][0]
        base = {
            "id": answer["id"],
            "object": "chat.completion.chunk",
            "created": answer["created"],
            "model": answer["model"],
        }
        delta = {"role": "assistant", "content": choice["message"].get("content")}
        yield _event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        yield _event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
        if self.wants_usage:
            yield _event({**base, "choices": [], "usage": answer["usage"], EXTENSION_FIELD: answer[EXTENSION_FIELD]})
        yield "data: [DONE]\n\n"

    async def _rewrite(self, events: AsyncIterator[str], index: int, model: str) -> AsyncIterator[str]:
        """The last step's stream with the pipeline's model id; its usage chunk carries the totals."""
        record = StepRecord(index, "generate", model)
        self.records.append(record)
        started, outcome = self.clock(), "error"
        try:
            async for chunk in events:
                for data in _sse_data(chunk):
                    if data == "[DONE]":
                        continue
                    event = json.loads(data)
                    if isinstance(event, dict) and "choices" in event:
                        event["model"] = self.pipeline.pipeline_id
                        if event.get("usage") is not None and not event["choices"]:
                            record.usage = event["usage"]
                            if not self.wants_usage:
                                continue
                            event.update(usage=self.usage(), **{EXTENSION_FIELD: self.extension()})
                    yield _event(event)
            outcome = "answered"
        finally:
            self.recorder.step(self.pipeline.pipeline_id, record, self.clock() - started)
            self._finish(outcome)
        yield "data: [DONE]\n\n"

    def _finish(self, outcome: str) -> None:
        if self.started is not None:
            self.recorder.request(self.pipeline.pipeline_id, outcome, self.clock() - self.started)
            self.started = None  # reported once


def _event(data: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _sse_data(chunk: str) -> list[str]:
    """The ``data:`` payloads of one chunk of server-sent events (vLLM sends one or more per chunk)."""
    return [line[len("data:") :].strip() for line in chunk.splitlines() if line.startswith("data:")]
