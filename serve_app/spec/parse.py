"""The entry points: `parse_models` for the stack config's `models` value, `validate_models` for specs built in code.
Both run stage 1 (`serve_app.spec.shape`) on every model and stage 2 (`serve_app.spec.rules`) on those that pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from configkit import shown
from serve_app.errors import ModelConfigError
from serve_app.presets import PRESETS
from serve_app.spec.keys import KEYS, KEYS_BY_NAME, problem
from serve_app.spec.model import ModelSpec, with_preset, with_profile
from serve_app.spec.rules import rule_problems
from serve_app.spec.shape import key_problems, unknown_key_problem


def parse_models(raw: Any, key: str = "models") -> tuple[ModelSpec, ...]:
    """Parse and validate the `models` stack config value into ModelSpecs, presets applied.

    `raw` is the decoded value (``pulumi.Config().require_object("models")``): a non-empty list of
    objects with the keys in `KEYS`. Raises `ModelConfigError` listing every problem found.
    """
    if isinstance(raw, Mapping) or not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ModelConfigError(
            [
                problem(
                    key,
                    "must be a list of model objects",
                    shown(raw),
                    "a list of objects with keys " + ", ".join(KEYS_BY_NAME),
                )
            ]
        )
    if not raw:
        raise ModelConfigError([problem(key, "must list at least one model", "[]", "1 or more model objects")])

    problems: list[str] = []
    parsed: list[tuple[int, ModelSpec]] = []
    for index, item in enumerate(raw):
        path = f"{key}[{index}]"
        if not isinstance(item, Mapping):
            problems.append(
                problem(
                    path,
                    "must be an object (a map of keys)",
                    shown(item),
                    "an object with keys " + ", ".join(KEYS_BY_NAME),
                )
            )
            continue
        item_problems = [unknown_key_problem(path, name) for name in item if name not in KEYS_BY_NAME]
        field_problems, kwargs = key_problems(path, item, present=set(item))
        item_problems.extend(field_problems)
        if item_problems:
            problems.extend(item_problems)
            continue
        preset = kwargs.pop("preset", KEYS_BY_NAME["preset"].default)
        profile = kwargs.pop("profile", KEYS_BY_NAME["profile"].default)
        parsed.append((index, with_profile(with_preset(ModelSpec(**kwargs), preset), profile)))

    problems.extend(rule_problems(key, parsed))
    if problems:
        raise ModelConfigError(problems)
    return tuple(spec for _, spec in parsed)


def validate_models(models: Sequence[ModelSpec], key: str = "models") -> None:
    """Run every check of `parse_models` on ModelSpecs built in code; raises `ModelConfigError`."""
    problems: list[str] = []
    if not models:
        problems.append(problem(key, "must list at least one model", "[]", "1 or more ModelSpec"))
    indexed: list[tuple[int, ModelSpec]] = []
    for index, spec in enumerate(models):
        path = f"{key}[{index}]"
        if not isinstance(spec, ModelSpec):
            problems.append(problem(path, "must be a ModelSpec", shown(spec), "serve_app.spec.ModelSpec"))
            continue
        values = {config_key.name: getattr(spec, config_key.field) for config_key in KEYS}
        values["preset"] = None  # the resolved name, not a choice; checked below
        field_problems, _ = key_problems(path, values, present=set(values))
        if spec.preset is not None and spec.preset not in PRESETS:
            field_problems.append(
                problem(f"{path}.preset", "unknown preset", shown(spec.preset), "None or one of " + ", ".join(PRESETS))
            )
        problems.extend(field_problems)
        if not field_problems:
            indexed.append((index, spec))
    problems.extend(rule_problems(key, indexed))
    if problems:
        raise ModelConfigError(problems)
