"""A stack's config as the Pulumi CLI would hand it to the program, read from the YAML files alone.

`Pulumi.yaml` supplies the declared defaults and `Pulumi.<stack>.yaml` the stack's values. No Pulumi import:
the offline plan uses this, and so does the local runner (`python -m local_run.server`), whose environment has
Ray and vLLM but not Pulumi.

How the CLI reads a stack file, and so how this module does (pulumi/pulumi `sdk/go/common/resource/config/
value.go`, `Value.unmarshalValue`):

- a config value that is a scalar reaches the program as the scalar's text, whatever it looks like:
  `gpuAutoscaling: yes` is the string "yes" (not true, as a YAML 1.1 loader such as PyYAML's `safe_load` says),
  `gpuNodeCount: 0x10` is "0x10", `nodeUpgradeFreezeStart: 2026-11-01T00:00:00Z` is that text (not a date);
- a value that is a list or a map reaches it as JSON, its scalars resolved with YAML 1.2's core schema: only
  `true`/`false` (any case of the first letter, or all caps) are booleans, `null`/`~`/empty are null, decimal,
  `0o` octal and `0x` hex are integers, `.inf`/`.nan` are floats (which JSON cannot carry, so the CLI refuses
  them), everything else is a string; whole-valued floats are written as integers, as Go's JSON encoder does;
- `{secure: ...}` is an encrypted value, which the offline plan cannot decrypt and passes as "[secret]".

The parser is PyYAML's composer (already a deploy-time dependency) with the YAML 1.1 type resolution switched
off: every plain scalar is resolved here by the YAML 1.2 core schema's rules, from the node tree, which is
also what lets a top-level scalar keep its text and lets duplicate keys be caught. A stack file the CLI
would refuse, or whose shape is not a config map (a list at the top, `config:` a list, keys that are not
`namespace:key` strings, duplicate keys, ...) raises `StackFileError` naming the file, the line and the fix.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml's parser when the wheel has it
    from yaml import CSafeLoader as _SafeLoader
except ImportError:
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]  # the same interface, in pure Python

PROJECT = "llmserve"  # the project name in Pulumi.yaml, and so the namespace of its config keys
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRET = "[secret]"
# Config namespaces a stack may set: this project's, and those read by the engine and by the providers the
# program uses (pulumi-gcp, pulumi-kubernetes, pulumi-random). Anything else (a misspelt `llmserv:`) is read by
# nobody, so a key there would be silently ignored by `pulumi up` (infra/config/key_checks.py refuses it).
PROVIDER_NAMESPACES = ("gcp", "kubernetes", "random", "pulumi")
CONFIG_NAMESPACES = (PROJECT, *PROVIDER_NAMESPACES)


class StackFileError(Exception):
    """A stack that cannot be read: no `Pulumi.<stack>.yaml`, YAML that does not parse, or a shape that is not
    a config map. The message names the file, the place and what is allowed."""


def known_stacks(root: Path = PROJECT_ROOT) -> list[str]:
    return sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in root.glob("Pulumi.*.yaml"))


def stack_config(stack: str, root: Path = PROJECT_ROOT) -> tuple[dict[str, str], list[str]]:
    """The config map for `stack`, `{"namespace:key": "value"}` with every value a string (structured values as
    JSON, as the engine passes them), plus the secret keys. Encrypted values cannot be read offline and become
    "[secret]"; a structured value with an encrypted part keeps its shape with "[secret]" in that place."""
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise StackFileError(
            f"no stack file {stack_file.name}; known stacks: {', '.join(known_stacks(root)) or 'none'}"
        )
    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    for name, node in _project_declarations(root / "Pulumi.yaml"):
        config[name], secret = _config_value(node, f"Pulumi.yaml: config.{name}")
        if secret:
            secret_keys.add(name)
    for name, node in _stack_values(stack_file):
        config[name], secret = _config_value(node, f"{stack_file.name}: {name}")
        if secret:
            secret_keys.add(name)
        else:
            secret_keys.discard(name)
    return config, sorted(secret_keys)


# --- the two files' shapes ------------------------------------------------------------------------------------


def _project_declarations(path: Path) -> list[tuple[str, yaml.Node]]:
    """(full key, value node) for each `config:` declaration of Pulumi.yaml that gives a value."""
    top = _top_mapping(path)
    block = _mapping_item(top, "config", path.name)
    declarations = []
    for key_node, value_node in _mapping_pairs(block, f"{path.name}: config") if block is not None else []:
        name = key_node.value
        full_name = name if ":" in name else f"{PROJECT}:{name}"
        if isinstance(value_node, yaml.MappingNode) and not _is_secure(value_node):
            fields = {key.value: value for key, value in _mapping_pairs(value_node, f"{path.name}: config.{name}")}
            for field_name in ("default", "value"):
                if field_name in fields:
                    declarations.append((full_name, fields[field_name]))
                    break
        else:
            declarations.append((full_name, value_node))
    return declarations


def _stack_values(path: Path) -> list[tuple[str, yaml.Node]]:
    """(key, value node) for each entry of the stack file's `config:`; keys must be `namespace:key`."""
    top = _top_mapping(path)
    block = _mapping_item(top, "config", path.name)
    if block is None:
        return []
    values = []
    for key_node, value_node in _mapping_pairs(block, f"{path.name}: config"):
        name = key_node.value
        if not re.fullmatch(r"[^:\s]+:[^:\s]+", name):
            raise StackFileError(
                f"{path.name}, line {key_node.start_mark.line + 1}: config key {name!r} is not of the form "
                f"<namespace>:<key>, which the Pulumi CLI refuses; allowed: {PROJECT}:<key> for this project's "
                f"keys (for example {PROJECT}:{name.rsplit(':', 1)[-1] or 'gpuNodeCount'}), or a key in one of "
                f"the namespaces {', '.join(f'{namespace}:' for namespace in CONFIG_NAMESPACES)}"
            )
        values.append((name, value_node))
    return values


def _top_mapping(path: Path) -> yaml.MappingNode | None:
    try:
        node = yaml.compose(path.read_bytes(), Loader=_Yaml12Loader)
    except (yaml.YAMLError, RecursionError) as error:
        raise StackFileError(f"{path.name}: not valid YAML: {error}") from error
    except OSError as error:
        raise StackFileError(f"{path.name}: cannot be read: {error}") from error
    if node is None or _is_null(node):
        return None
    if not isinstance(node, yaml.MappingNode):
        raise StackFileError(f"{path.name}: the top level must be a map with a `config:` key; found {_kind(node)}")
    return node


def _mapping_item(top: yaml.MappingNode | None, key: str, where: str) -> yaml.MappingNode | None:
    if top is None:
        return None
    for key_node, value_node in _mapping_pairs(top, where):
        if key_node.value == key:
            if _is_null(value_node):
                return None
            if not isinstance(value_node, yaml.MappingNode):
                raise StackFileError(
                    f"{where}, line {value_node.start_mark.line + 1}: `{key}:` must be a map of "
                    f"<namespace>:<key>: <value>; found {_kind(value_node)}"
                )
            return value_node
    return None


def _mapping_pairs(node: yaml.MappingNode, where: str) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    """A mapping's pairs, refusing what the CLI cannot turn into a config map: keys that are not strings,
    duplicate keys (the CLI's YAML parser refuses them) and merge keys."""
    seen: dict[str, int] = {}
    pairs = []
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or not isinstance(_resolve_scalar(key_node, where), str):
            raise StackFileError(
                f"{where}, line {line}: keys must be strings; found "
                f"{_describe(key_node, where)}; allowed: a string key (quote it)"
            )
        if key_node.tag == _PLAIN and key_node.value == "<<":
            raise StackFileError(
                f"{where}, line {line}: YAML merge keys (<<) are not supported in stack config; "
                f"allowed: write the keys out"
            )
        if key_node.value in seen:
            raise StackFileError(
                f"{where}, line {line}: duplicate key {key_node.value!r} (first on line "
                f"{seen[key_node.value]}); the Pulumi CLI refuses duplicate keys; allowed: "
                f"each key once"
            )
        seen[key_node.value] = line
        pairs.append((key_node, value_node))
    return pairs


# --- values ---------------------------------------------------------------------------------------------------


def _config_value(node: yaml.Node, where: str) -> tuple[str, bool]:
    """What the engine passes for one config value, and whether it is (or holds) a secret."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag not in (_PLAIN, _STR, _NON_SPECIFIC) and node.tag not in _CORE_TAGS:
            raise StackFileError(
                f"{where}: unsupported YAML tag {node.tag}; allowed: plain values or !!str, "
                f"!!int, !!float, !!bool, !!null"
            )
        if node.tag in _CORE_TAGS:
            _resolve_scalar(node, where)  # `!!int abc` is refused by the CLI's parser too
        # The CLI unmarshals a scalar into a string first, which keeps the text as written; null gives "".
        return ("" if _is_null(node) else node.value), False
    if _is_secure(node):
        return SECRET, True
    value = _construct(node, where, set())
    text = json.dumps(_go_json(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text, _holds_secret(value)


def _construct(node: yaml.Node, where: str, path: set[int]) -> Any:
    if id(node) in path:
        raise StackFileError(
            f"{where}: a YAML alias refers to itself (a recursive structure); allowed: plain, finite values"
        )
    if isinstance(node, yaml.ScalarNode):
        value = _resolve_scalar(node, where)
        if isinstance(value, float) and not math.isfinite(value):
            raise StackFileError(
                f"{where}, line {node.start_mark.line + 1}: {node.value} inside a list or map, "
                f"which the Pulumi CLI cannot pass to the program (JSON has no such numbers); "
                f"allowed: finite numbers"
            )
        return value
    path = path | {id(node)}
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, f"{where}[{index}]", path) for index, item in enumerate(node.value)]
    if _is_secure(node):
        return _SecretPlaceholder()
    assert isinstance(node, yaml.MappingNode)  # PyYAML composes scalars, sequences and mappings, nothing else
    return {key.value: _construct(value, f"{where}.{key.value}", path) for key, value in _mapping_pairs(node, where)}


class _SecretPlaceholder(str):
    """An encrypted part of a structured value: "[secret]" offline, and the reason the key is secret."""

    def __new__(cls) -> _SecretPlaceholder:
        return super().__new__(cls, SECRET)


def _holds_secret(value: Any) -> bool:
    if isinstance(value, _SecretPlaceholder):
        return True
    if isinstance(value, dict):
        return any(_holds_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_secret(item) for item in value)
    return False


def _go_json(value: Any) -> Any:
    """`value` as Go's encoding/json writes it: a whole float below 1e21 has no fraction ("8", not "8.0")."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _go_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_go_json(item) for item in value]
    return value


# YAML 1.2 core schema (yaml.org/spec/1.2.2 §10.3.2), for plain scalars.
_CORE_NULL = re.compile(r"null|Null|NULL|~|")
_CORE_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_CORE_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_CORE_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_CORE_NAN = re.compile(r"\.(nan|NaN|NAN)")
_INT64 = (-(2**63), 2**63 - 1)

_PLAIN = "tag:llmserve.dev,2026:plain"  # a plain scalar without a tag: resolved by the core schema
_NON_SPECIFIC = "!"
_STR = "tag:yaml.org,2002:str"
_CORE_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null")}


class _Yaml12Loader(_SafeLoader):
    """PyYAML's parser and composer without its YAML 1.1 implicit types: every untagged plain scalar gets the
    `_PLAIN` tag and is resolved by `_resolve_scalar`."""


# Its own resolver table, empty: add_implicit_resolver would otherwise start from a copy of YAML 1.1's.
_Yaml12Loader.yaml_implicit_resolvers = {}
_Yaml12Loader.add_implicit_resolver(_PLAIN, re.compile(r"(?s).*"), None)


def _resolve_scalar(node: yaml.ScalarNode, where: str) -> Any:
    text, tag = node.value, node.tag
    if tag in (_STR, _NON_SPECIFIC):
        return text
    if tag == _PLAIN:
        for kind in ("null", "bool", "int", "float"):
            value = _core_value(kind, text)
            if value is not _NO_MATCH:
                return value
        return text
    kind = tag.rsplit(":", 1)[-1]
    if tag in _CORE_TAGS:
        value = _core_value(kind, text)
        if value is not _NO_MATCH:
            return value
        raise StackFileError(f"{where}, line {node.start_mark.line + 1}: {text!r} is not a valid !!{kind}")
    raise StackFileError(
        f"{where}, line {node.start_mark.line + 1}: unsupported YAML tag {tag}; allowed: "
        f"plain values or !!str, !!int, !!float, !!bool, !!null"
    )


_NO_MATCH = object()


def _core_value(kind: str, text: str) -> Any:
    if kind == "null":
        return None if _CORE_NULL.fullmatch(text) else _NO_MATCH
    if kind == "bool":
        return text.lower() == "true" if _CORE_BOOL.fullmatch(text) else _NO_MATCH
    if kind == "int":
        if not _CORE_INT.fullmatch(text):
            return _NO_MATCH
        number = (
            int(text[2:], 8) if text.startswith("0o") else int(text[2:], 16) if text.startswith("0x") else int(text)
        )
        # Go's YAML decoder gives a float64 for an integer too large for int64; so does this reader.
        return number if _INT64[0] <= number <= _INT64[1] else float(number)
    if kind == "float":
        if _CORE_INF.fullmatch(text):
            return -math.inf if text.startswith("-") else math.inf
        if _CORE_NAN.fullmatch(text):
            return math.nan
        return float(text) if _CORE_FLOAT.fullmatch(text) else _NO_MATCH
    return _NO_MATCH


def _is_null(node: yaml.Node) -> bool:
    return (
        isinstance(node, yaml.ScalarNode)
        and node.tag in (_PLAIN, "tag:yaml.org,2002:null")
        and _CORE_NULL.fullmatch(node.value) is not None
    )


def _is_secure(node: yaml.Node) -> bool:
    """`{secure: <ciphertext>}`: how the CLI stores an encrypted value."""
    return (
        isinstance(node, yaml.MappingNode)
        and len(node.value) == 1
        and isinstance(node.value[0][0], yaml.ScalarNode)
        and node.value[0][0].value == "secure"
        and isinstance(node.value[0][1], yaml.ScalarNode)
        and isinstance(_resolve_scalar(node.value[0][1], "secure"), str)
    )


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a map"
    return f"the value {node.value!r}"


def _describe(node: yaml.Node, where: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        return _kind(node)
    value = _resolve_scalar(node, where)
    return f"{node.value!r} ({'null' if value is None else type(value).__name__})"
