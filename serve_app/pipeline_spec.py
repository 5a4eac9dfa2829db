"""Multi-model pipelines: the `pipelines` stack config parsed and checked, and the form the ingress receives.

A pipeline is an OpenAI model id (`id`) whose chat completions run ordered `steps` over the stack's models:

* ``guard``: allow or deny. By a model (``model`` and a ``verdict`` rule, see `serve_app.pipelines`) or by a
  rule (``patterns``, Python regular expressions searched in the text). ``check: input`` (the default) screens
  the conversation's user messages, ``check: output`` the answer of the step before. A deny answers at once,
  ``finish_reason: content_filter`` with ``message``; no later step runs.
* ``route``: picks a model, then calls it like ``generate``. By ``rules`` (the first that matches wins:
  ``minPromptChars``, the conversation's characters, or ``pattern``, searched in the last user message) or by a
  ``classifier`` model whose answer's first line names one of ``choices`` (label -> model); ``default``
  otherwise.
* ``generate``: calls ``model`` with the conversation; ``template`` (optional) replaces the last user message,
  with ``{input}`` (that message's text) and ``{previous}`` (the answer of the model step before) filled in.

Shipped to the cluster (`serve_app.bundle`): standard library only. The same `parse_pipelines` checks the stack
config at deploy time (infra/config/sections/pipelines.py) and reads the ingress's ``user_config`` on the
cluster, so the two cannot disagree on what a pipeline means.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PIPELINES_KEY = "pipelines"  # in the ingress deployment's user_config, next to "models"
KINDS = ("guard", "route", "generate")
VERDICTS = ("llamaGuard",)  # how a guard model's answer becomes allow/deny (serve_app.pipelines.parse_verdict)
CHECKS = ("input", "output")
TEMPLATE_FIELDS = ("input", "previous")
DEFAULT_DENY_MESSAGE = "This request was refused by the service's content policy."
# Ids clients put in `model`: like the model ids (letters, digits, '.', '_', '-'), at most 128 characters.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_STEP_KEYS: Mapping[str, tuple[str, ...]] = {
    "guard": ("kind", "model", "verdict", "patterns", "check", "message"),
    "route": ("kind", "rules", "classifier", "choices", "default", "template"),
    "generate": ("kind", "model", "template"),
}
_RULE_KEYS = ("model", "minPromptChars", "pattern")
_MAX_SHOWN = 80


@dataclass(frozen=True)
class RouteRule:
    """One rule of a ``route`` step: `model` when the prompt has `min_prompt_chars` or more, or matches `pattern`."""

    model: str
    min_prompt_chars: int | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class Step:
    """One step of a pipeline (see the module docstring for what each field means per kind)."""

    kind: str
    model: str | None = None
    verdict: str | None = None
    patterns: tuple[str, ...] = ()
    check: str = "input"
    message: str = DEFAULT_DENY_MESSAGE
    template: str | None = None
    rules: tuple[RouteRule, ...] = ()
    classifier: str | None = None
    choices: tuple[tuple[str, str], ...] = ()
    default: str | None = None

    @property
    def answers(self) -> bool:
        """Whether the step produces an answer (``generate`` and ``route`` do; a guard only decides)."""
        return self.kind != "guard"

    def models(self) -> tuple[str, ...]:
        """Every model this step may call, in config order, without repeats."""
        names = [self.model, self.classifier, *(rule.model for rule in self.rules)]
        names += [model for _, model in self.choices] + [self.default]
        return tuple(dict.fromkeys(name for name in names if name is not None))

    def as_config(self) -> dict[str, Any]:
        """The step as the stack config writes it, defaults filled in (the ingress's ``user_config`` form)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "guard":
            out.update(check=self.check, message=self.message)
            out.update(
                {"model": self.model, "verdict": self.verdict} if self.model else {"patterns": list(self.patterns)}
            )
        elif self.kind == "generate":
            out["model"] = self.model
        else:
            out["default"] = self.default
            if self.classifier:
                out.update(classifier=self.classifier, choices=dict(self.choices))
            else:
                out["rules"] = [_rule_config(rule) for rule in self.rules]
        if self.template is not None:
            out["template"] = self.template
        return out


@dataclass(frozen=True)
class Pipeline:
    """A pipeline: the model id clients use, and its steps."""

    pipeline_id: str
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def models(self) -> tuple[str, ...]:
        """Every model the pipeline may call, in step order, without repeats."""
        return tuple(dict.fromkeys(model for step in self.steps for model in step.models()))

    def as_config(self) -> dict[str, Any]:
        return {"id": self.pipeline_id, "steps": [step.as_config() for step in self.steps]}


def _rule_config(rule: RouteRule) -> dict[str, Any]:
    out: dict[str, Any] = {"model": rule.model}
    if rule.min_prompt_chars is not None:
        out["minPromptChars"] = rule.min_prompt_chars
    if rule.pattern is not None:
        out["pattern"] = rule.pattern
    return out


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def problem(path: str, what: str, found: Any, allowed: str) -> str:
    """One problem line: the key path, what is wrong, the value found and what is allowed."""
    return f"{path}: {what}; found {shown(found)}; allowed: {allowed}"


def template_problems(template: Any, path: str, has_previous: bool) -> list[str]:
    """What is wrong with a template: not text, an unknown or malformed placeholder, or ``{previous}`` where no
    model step came before."""
    allowed = "text with the placeholders " + ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
    if not isinstance(template, str) or not template.strip():
        return [problem(path, "must be non-empty text", template, allowed)]
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        return [
            problem(
                path, f"is not a valid template ({error}; write {{{{ and }}}} for literal braces)", template, allowed
            )
        ]
    problems = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            problems.append(problem(path, f"has an unknown placeholder {{{name}}}", template, allowed))
        elif name == "previous" and not has_previous:
            problems.append(
                problem(
                    path,
                    "uses {previous} but no model step answers before this one",
                    template,
                    "{previous} only after a generate or route step",
                )
            )
    return problems


def _regex_problems(pattern: Any, path: str) -> list[str]:
    if not isinstance(pattern, str) or not pattern:
        return [problem(path, "must be a non-empty regular expression", pattern, "a Python regular expression")]
    try:
        re.compile(pattern)
    except re.error as error:
        return [problem(path, f"is not a valid regular expression ({error})", pattern, "a Python regular expression")]
    return []


class _Checker:
    """Collects the problems of one pipelines value; `models` are the stack's model ids (None: not checked)."""

    def __init__(self, models: Iterable[str] | None):
        self.models = None if models is None else tuple(models)
        self.problems: list[str] = []

    def model(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not value:
            self.problems.append(problem(path, "must name a model", value, self._allowed_models()))
            return None
        if self.models is not None and value not in self.models:
            self.problems.append(problem(path, "names no model of the stack", value, self._allowed_models()))
            return None
        return value

    def _allowed_models(self) -> str:
        return "a model id of models: " + ", ".join(self.models) if self.models else "a model id of models"

    def text(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problems.append(problem(path, "must be non-empty text", value, "text"))
            return None
        return value

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str | None:
        if value not in choices:
            self.problems.append(problem(path, "is not one of the choices", value, ", ".join(choices)))
            return None
        return str(value)

    def unknown_keys(self, item: Mapping[str, Any], path: str, known: Sequence[str]) -> None:
        for name in item:
            if name not in known:
                self.problems.append(problem(f"{path}.{name}", "is not a key here", name, ", ".join(known)))


def parse_pipelines(
    raw: Any, models: Iterable[str] | None = None, key: str = "pipelines"
) -> tuple[tuple[Pipeline, ...], list[str]]:
    """The pipelines of `raw` (the decoded `pipelines` value, or None for none) and every problem found.

    `models`: the stack's model ids, which steps may name and pipeline ids may not take (None skips both checks,
    for a caller that reports bad models elsewhere). The pipelines are returned only when there is no problem.
    """
    if raw is None:
        return (), []
    if isinstance(raw, Mapping) or not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        return (), [problem(key, "must be a list of pipeline objects", raw, "a list of objects with keys id, steps")]
    check = _Checker(models)
    pipelines: list[Pipeline] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        path = f"{key}[{index}]"
        if not isinstance(item, Mapping):
            check.problems.append(problem(path, "must be an object", item, "an object with keys id, steps"))
            continue
        check.unknown_keys(item, path, ("id", "steps"))
        pipeline_id = _pipeline_id(check, item.get("id"), f"{path}.id", seen, index, key)
        steps = _steps(check, item.get("steps"), f"{path}.steps")
        if pipeline_id is not None and steps is not None:
            pipelines.append(Pipeline(pipeline_id, steps))
    if check.problems:
        return (), check.problems
    return tuple(pipelines), []


def _pipeline_id(check: _Checker, value: Any, path: str, seen: dict[str, int], index: int, key: str) -> str | None:
    allowed = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
    if not isinstance(value, str) or not _ID.fullmatch(value):
        check.problems.append(problem(path, "must be an OpenAI model id", value, allowed))
        return None
    if check.models is not None and value in check.models:
        check.problems.append(
            problem(
                path,
                "equals a model id; clients could not tell the two apart",
                value,
                "an id that no model of models has",
            )
        )
        return None
    if value in seen:
        check.problems.append(problem(path, f"repeats the id of {key}[{seen[value]}]", value, "a unique id"))
        return None
    seen[value] = index
    return value


def _steps(check: _Checker, value: Any, path: str) -> tuple[Step, ...] | None:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes, Mapping)) or not value:
        check.problems.append(
            problem(path, "must list at least one step", value, "a non-empty list of steps of kind " + ", ".join(KINDS))
        )
        return None
    start = len(check.problems)
    steps: list[Step] = []
    for index, item in enumerate(value):
        # judged from the kinds written, so that a bad earlier step does not also make a later {previous} wrong
        answered = any(isinstance(before, Mapping) and before.get("kind") != "guard" for before in value[:index])
        step = _step(check, item, f"{path}[{index}]", answered=answered)
        if step is not None:
            steps.append(step)
    if len(check.problems) > start:
        return None
    if not any(step.answers for step in steps):
        check.problems.append(
            problem(
                path, "has no step that answers", [step.kind for step in steps], "at least one generate or route step"
            )
        )
        return None
    return tuple(steps)


def _step(check: _Checker, item: Any, path: str, answered: bool) -> Step | None:
    if not isinstance(item, Mapping):
        check.problems.append(problem(path, "must be an object", item, "an object with a kind: " + ", ".join(KINDS)))
        return None
    kind = check.choice(item.get("kind"), f"{path}.kind", KINDS)
    if kind is None:
        return None
    start = len(check.problems)
    check.unknown_keys(item, path, _STEP_KEYS[kind])
    template = item.get("template")
    if template is not None:
        check.problems.extend(template_problems(template, f"{path}.template", answered))
    if kind == "guard":
        step = _guard(check, item, path, answered)
    elif kind == "generate":
        step = Step("generate", model=check.model(item.get("model"), f"{path}.model"), template=template)
    else:
        step = _route(check, item, path, template)
    return step if len(check.problems) == start else None


def _guard(check: _Checker, item: Mapping[str, Any], path: str, answered: bool) -> Step | None:
    step_check = check.choice(item.get("check", "input"), f"{path}.check", CHECKS)
    if step_check == "output" and not answered:
        check.problems.append(
            problem(
                f"{path}.check",
                "is output but no step answers before this guard",
                "output",
                "input, or output after a generate or route step",
            )
        )
    message = check.text(item.get("message", DEFAULT_DENY_MESSAGE), f"{path}.message")
    model, patterns = item.get("model"), item.get("patterns")
    if (model is None) == (patterns is None):
        check.problems.append(
            problem(
                path,
                "needs exactly one of model (with a verdict) or patterns",
                sorted(item),
                "model and verdict, or patterns",
            )
        )
        return None
    if model is not None:
        if "verdict" not in item:
            check.problems.append(
                problem(f"{path}.verdict", "is missing: a guard model needs a verdict rule", None, ", ".join(VERDICTS))
            )
            return None
        verdict = check.choice(item["verdict"], f"{path}.verdict", VERDICTS)
        return Step(
            "guard",
            model=check.model(model, f"{path}.model"),
            verdict=verdict,
            check=step_check or "input",
            message=message or DEFAULT_DENY_MESSAGE,
        )
    if "verdict" in item:
        check.problems.append(
            problem(f"{path}.verdict", "applies to a guard model only", item["verdict"], "no verdict with patterns")
        )
    if not isinstance(patterns, Sequence) or isinstance(patterns, (str, bytes)) or not patterns:
        check.problems.append(
            problem(
                f"{path}.patterns",
                "must list at least one pattern",
                patterns,
                "a non-empty list of Python regular expressions",
            )
        )
        return None
    for index, pattern in enumerate(patterns):
        check.problems.extend(_regex_problems(pattern, f"{path}.patterns[{index}]"))
    return Step(
        "guard",
        patterns=tuple(str(pattern) for pattern in patterns),
        check=step_check or "input",
        message=message or DEFAULT_DENY_MESSAGE,
    )


def _route(check: _Checker, item: Mapping[str, Any], path: str, template: str | None) -> Step | None:
    default = check.model(item.get("default"), f"{path}.default")
    rules, classifier = item.get("rules"), item.get("classifier")
    if (rules is None) == (classifier is None):
        check.problems.append(
            problem(
                path,
                "needs exactly one of rules or classifier (with choices)",
                sorted(item),
                "rules, or classifier and choices",
            )
        )
        return None
    if classifier is not None:
        choices = item.get("choices")
        if not isinstance(choices, Mapping) or not choices:
            check.problems.append(
                problem(
                    f"{path}.choices", "must map at least one label to a model", choices, "a map of label -> model id"
                )
            )
            return None
        pairs = tuple(
            (str(label).strip().lower(), check.model(model, f"{path}.choices.{label}") or "")
            for label, model in choices.items()
        )
        return Step(
            "route",
            classifier=check.model(classifier, f"{path}.classifier"),
            choices=pairs,
            default=default,
            template=template,
        )
    if not isinstance(rules, Sequence) or isinstance(rules, (str, bytes)) or not rules:
        check.problems.append(
            problem(
                f"{path}.rules",
                "must list at least one rule",
                rules,
                "a non-empty list of {model, minPromptChars or pattern}",
            )
        )
        return None
    parsed = tuple(_rule(check, rule, f"{path}.rules[{index}]") for index, rule in enumerate(rules))
    return Step("route", rules=tuple(rule for rule in parsed if rule is not None), default=default, template=template)


def _rule(check: _Checker, item: Any, path: str) -> RouteRule | None:
    allowed = "an object with model and one of minPromptChars, pattern"
    if not isinstance(item, Mapping):
        check.problems.append(problem(path, "must be an object", item, allowed))
        return None
    check.unknown_keys(item, path, _RULE_KEYS)
    model = check.model(item.get("model"), f"{path}.model")
    chars, pattern = item.get("minPromptChars"), item.get("pattern")
    if (chars is None) == (pattern is None):
        check.problems.append(problem(path, "needs exactly one of minPromptChars or pattern", sorted(item), allowed))
        return None
    if chars is not None and (isinstance(chars, bool) or not isinstance(chars, int) or chars < 1):
        check.problems.append(problem(f"{path}.minPromptChars", "must be a positive integer", chars, "1 or more"))
        return None
    if pattern is not None:
        check.problems.extend(_regex_problems(pattern, f"{path}.pattern"))
    return RouteRule(model or "", min_prompt_chars=chars, pattern=pattern)
