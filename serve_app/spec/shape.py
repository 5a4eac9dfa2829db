"""Stage 1 of the validation: each key of one model object on its own (known, present, type, range, choices,
format, engine options and environment variables)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from configkit import ConfigKey, closest, did_you_mean, shown
from serve_app.spec.engine import engine_kwargs_problems, env_var_problems
from serve_app.spec.keys import KEYS, KEYS_BY_NAME, problem
from serve_app.versions_data import (
    RAY_GPU_ACCELERATOR_TYPES,
    RAY_TPU_ACCELERATOR_TYPES,
    VLLM_ENGINE_ARG_NAMES,
    VLLM_FRONTEND_ARG_NAMES,
)

_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_REMOTE_SCHEMES: tuple[str, ...] = ("gs://", "s3://", "abfss://", "azure://")


def _type_problem(path: str, key: ConfigKey, value: Any) -> str | None:
    expected = key.type
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "map": isinstance(value, Mapping),
    }[expected]
    if ok and expected == "number" and not math.isfinite(value):
        ok = False
    if ok:
        return None
    article = "an" if expected[0] in "aeiou" else "a"
    return problem(
        path, f"must be {article} {expected}", f"{shown(value)} ({type(value).__name__})", f"{article} {expected}"
    )


# Pulumi carries numbers as doubles (protobuf Struct), which hold integers exactly only up to 2**53.
_LARGEST_EXACT_INTEGER = 2**53


def _range_problem(path: str, key: ConfigKey, value: float) -> str | None:
    if key.type == "integer" and abs(value) > _LARGEST_EXACT_INTEGER:
        return problem(
            path,
            "too large to pass through Pulumi exactly (its numbers are doubles)",
            shown(value),
            f"integers up to 2**53 ({_LARGEST_EXACT_INTEGER})",
        )
    if key.range is None or value in key.range:
        return None
    noun = "integers" if key.type == "integer" else "numbers"
    return problem(path, "out of range", shown(value), f"{noun} {key.range.words()}")


def _string_problems(path: str, key: ConfigKey, value: str) -> list[str]:
    if key.choices is not None and value not in key.choices:
        hint = closest(value, key.choices, cutoff=0.75)
        return [problem(path, "unknown value" + did_you_mean(hint), shown(value), "one of " + ", ".join(key.choices))]
    if key.field == "model_id" and not _MODEL_ID.match(value):
        return [
            problem(
                path,
                "not a valid model id",
                shown(value),
                "1-128 characters: letters, digits, '.', '_', '-', '/', starting with a letter or "
                "digit (no ':' or spaces)",
            )
        ]
    if key.field == "model_source":
        return _source_problems(path, value)
    if key.field == "accelerator_type":
        return _accelerator_problems(path, value)
    if key.field == "reasoning_parser" and not value:
        return [problem(path, "must not be empty", shown(value), "a vLLM reasoning parser name, or leave unset")]
    return []


def _source_problems(path: str, value: str) -> list[str]:
    if value.startswith(_REMOTE_SCHEMES):
        scheme, _, rest = value.partition("://")
        if not rest.split("/")[0]:
            return [problem(path, f"{scheme}:// URI without a bucket", shown(value), f"{scheme}://<bucket>/<path>")]
        return []
    if "://" in value:
        return [
            problem(
                path,
                "unsupported URI scheme",
                shown(value),
                "a Hugging Face id, an absolute path, or a URI starting with " + ", ".join(_REMOTE_SCHEMES),
            )
        ]
    if value.startswith("/") or _HF_ID.match(value):
        return []
    return [
        problem(
            path,
            "not a Hugging Face id, absolute path or supported URI",
            shown(value),
            "org/name, /absolute/path, or " + ", ".join(f"{scheme}..." for scheme in _REMOTE_SCHEMES),
        )
    ]


def _accelerator_problems(path: str, value: str) -> list[str]:
    if value in RAY_GPU_ACCELERATOR_TYPES:
        return []
    if value == "A10":  # Ray rewrites it, but say the canonical name so that node resources match
        return [problem(path, "Ray calls this GPU A10G", shown(value), '"A10G"')]
    if value in RAY_TPU_ACCELERATOR_TYPES:
        return [
            problem(
                path,
                "TPUs are not supported by this project's serve config (GPU only)",
                shown(value),
                "a Ray GPU accelerator name",
            )
        ]
    hint = None
    for separator in ("-", " ", "_"):  # "H100-80GB", "nvidia-h100-80gb" -> "H100"
        for part in value.split(separator):
            hint = hint or next((name for name in RAY_GPU_ACCELERATOR_TYPES if name.lower() == part.lower()), None)
    hint = hint or closest(value, sorted(RAY_GPU_ACCELERATOR_TYPES), cutoff=0.6)
    what = "not a Ray accelerator name" + did_you_mean(hint)
    common = ("A100", "A100-80G", "B200", "H100", "H200", "L4", "L40S")
    return [problem(path, what, shown(value), "one of the names in ray.util.accelerators, e.g. " + ", ".join(common))]


def key_problems(path: str, values: Mapping[str, Any], *, present: set[str]) -> tuple[list[str], dict[str, Any]]:
    """Check the documented keys of one model object; returns problems and ModelSpec keyword arguments.

    `values` maps config keys to values; `present` is the set of keys that were written (null = unset).
    """
    problems: list[str] = []
    kwargs: dict[str, Any] = {}
    for key in KEYS:
        at = f"{path}.{key.name}"
        value = values.get(key.name)
        if key.name not in present or value is None:
            if key.required:
                problems.append(problem(at, "required key is missing", "nothing", f"a {key.type}"))
            continue
        type_problem = _type_problem(at, key, value)
        if type_problem is not None:
            problems.append(type_problem)
            continue
        if key.type in ("integer", "number"):
            range_problem = _range_problem(at, key, value)
            if range_problem is not None:
                problems.append(range_problem)
                continue
        if key.type == "string":
            string_problems = _string_problems(at, key, value)
            if string_problems:
                problems.extend(string_problems)
                continue
        if key.field == "engine_kwargs":
            engine_problems = engine_kwargs_problems(at, value)
            if engine_problems:
                problems.extend(engine_problems)
                continue
        if key.field == "env_vars":
            env_problems, value = env_var_problems(at, value)
            if env_problems:
                problems.extend(env_problems)
                continue
        kwargs[key.field] = value
    return problems, kwargs


def unknown_key_problem(path: str, name: Any) -> str:
    at = f"{path}.{name}"
    if not isinstance(name, str):
        return problem(at, "unknown key", shown(name), "one of " + ", ".join(KEYS_BY_NAME))
    camel = _snake_to_camel(name)
    hint = camel if camel in KEYS_BY_NAME else closest(name, KEYS_BY_NAME, cutoff=0.75)
    if hint is not None:
        return problem(at, "unknown key" + did_you_mean(hint), shown(name), "one of " + ", ".join(KEYS_BY_NAME))
    engine_name = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if engine_name in VLLM_ENGINE_ARG_NAMES or engine_name in VLLM_FRONTEND_ARG_NAMES:
        return problem(
            at,
            f"unknown key; {engine_name!r} is a vLLM option: put it under engineKwargs",
            shown(name),
            f"engineKwargs: {{{engine_name}: ...}}",
        )
    return problem(at, "unknown key", shown(name), "one of " + ", ".join(KEYS_BY_NAME))


def _snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
