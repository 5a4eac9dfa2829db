"""Reading single config values: raw text (as the Pulumi engine passes it) to a typed value, or a problem.

`ValueReader` never raises: each bad value becomes one problem line naming the key, the value found (shortened)
and what is allowed, and the reader returns None for it, so that the rules that depend on the value can be
skipped (the section readers in `infra/config/sections/` do that). Every key is read through its declaration (type,
range, choices), so a key added to CONFIG_KEYS gets those checks without code of its own.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from configkit import ConfigKey, closest, did_you_mean, shown
from infra.config.stackfiles import PROJECT
from infra.config.stackfiles import SECRET as OFFLINE_SECRET

T = TypeVar("T")


def read_cleanly(*values: Any) -> bool:
    """Every value a rule depends on was read cleanly (a bad or missing one was read as None)."""
    return all(value is not None for value in values)


def clean(value: T | None) -> T:
    """`value`, of a reader that recorded no problem since it read it. `ValueReader.get` gives None only after
    recording the key's problem (every key is required or has a default), and a section reader gives None only
    when a problem is recorded for it or for a section it needs; so with no problem, nothing is None. A None here
    is a reader that broke that rule, raised as such instead of passed on as a setting."""
    if value is None:
        raise AssertionError("a config value read as None, yet no problem was recorded for it")
    return value


class ValueReader:
    """Typed access to the project's config values, collecting a problem per bad value.

    `keys` maps each key name to its declaration, whose type, range and choices every value is checked against.
    """

    def __init__(self, values: Mapping[str, Any], keys: Mapping[str, ConfigKey]):
        self._values = values
        self._keys = keys
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.reported: set[str] = set()  # keys whose problem is already told; reading them gives None silently

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def get(self, name: str) -> Any:
        """The typed value of `name` (its default when unset), or None when it is missing or bad: of another type,
        out of its range, or not one of its choices."""
        key = self._keys[name]
        raw = self._values.get(name)
        if raw == OFFLINE_SECRET and not key.secret:
            if name not in self.reported:
                self.problem(
                    f"{PROJECT}:{name}: stored encrypted, which the offline plan cannot read, and it is "
                    f"not a secret; allowed: a plain value (`pulumi config set {PROJECT}:{name} <value>`)"
                )
            return None
        if raw is None:
            if key.required:
                self.problem(f"{PROJECT}:{name}: required but not set ({key.description})")
            return key.default
        try:
            value = _COERCE[key.type](raw)
        except (ValueError, TypeError, RecursionError):
            value = None
        if value is None:  # not of the key's type, or JSON `null` (`pulumi config set <key> null` stores "null")
            allowed = f"; allowed: {key.range.words()}" if key.range is not None else ""
            self.problem(f"{PROJECT}:{name}: expected {_TYPE_WORDS[key.type]}; found {shown(raw)}{allowed}")
            return None
        if key.range is not None and value not in key.range:
            why = f" ({key.range.why})" if key.range.why else ""
            self.problem(f"{PROJECT}:{name}: out of range; found {shown(value)}; allowed: {key.range.words()}{why}")
            return None
        if key.choices is not None and value not in key.choices:
            choices = ", ".join(choice or '"" (unset)' for choice in key.choices)
            self.problem(
                f"{PROJECT}:{name}: unknown value {shown(value)}{did_you_mean(closest(value, key.choices))}; "
                f"allowed: {choices}"
            )
            return None
        return value

    def matching(self, name: str, check: Callable[[str], bool], what: str) -> str | None:
        """A string that is empty or passes `check`; `what` says what is allowed."""
        value: str | None = self.get(name)  # `name` is a string key, so get gives a str or None
        if value and not check(value):
            self.problem(f"{PROJECT}:{name}: expected {what}; found {shown(value)}")
            return None
        return value

    def cidr(self, name: str) -> ipaddress.IPv4Network | None:
        return self.parse_cidr(f"{PROJECT}:{name}", self.get(name))

    def cidr_list(self, name: str) -> list[ipaddress.IPv4Network] | None:
        """The CIDRs of an array key; None if any is bad or one is listed twice."""
        values = self.get(name)
        if values is None:
            return None
        parsed = [self.parse_cidr(f"{PROJECT}:{name}[{index}]", value) for index, value in enumerate(values)]
        networks = [network for network in parsed if network is not None]
        if len(networks) < len(parsed):
            return None
        seen: dict[ipaddress.IPv4Network, int] = {}
        duplicate = False
        for index, network in enumerate(networks):
            if network in seen:
                self.problem(
                    f"{PROJECT}:{name}[{index}]: {network} is listed twice (also at [{seen[network]}]); "
                    f"allowed: each CIDR once"
                )
                duplicate = True
            seen.setdefault(network, index)
        return None if duplicate else networks

    def parse_cidr(self, where: str, value: Any) -> ipaddress.IPv4Network | None:
        if value is None:
            return None
        try:
            network = ipaddress.ip_network(value, strict=True)
        except (ValueError, TypeError):
            self.problem(
                f"{where}: expected an IPv4 CIDR with no host bits set, like 10.0.0.0/20; found {shown(value)}"
            )
            return None
        if not isinstance(network, ipaddress.IPv4Network):
            self.problem(f"{where}: expected an IPv4 CIDR; found {shown(value)}")
            return None
        return network


def to_bool(raw: Any) -> bool:
    """The YAML 1.2 core schema's booleans (true, True, TRUE and the same for false); not yes/no/on/off."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return raw.lower() == "true"
    raise ValueError(raw)


def to_int(raw: Any) -> int:
    """A whole number written in decimal digits (as `pulumi.Config.get_int` and YAML 1.2 read it)."""
    if isinstance(raw, bool):
        raise ValueError(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if math.isfinite(raw) and raw.is_integer():
            return int(raw)
        raise ValueError(raw)
    text = str(raw).strip()
    if not re.fullmatch(r"[-+]?[0-9]{1,30}", text):
        raise ValueError(raw)
    return int(text)


def to_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError(raw)
    return raw


def to_str_list(raw: Any) -> list[str]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(raw)
    return value


def to_json(raw: Any) -> Any:
    return json.loads(raw) if isinstance(raw, str) else raw


_COERCE: dict[str, Callable[[Any], Any]] = {
    "string": to_str,
    "integer": to_int,
    "boolean": to_bool,
    "array": to_str_list,
    "object": to_json,
}
_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "boolean": "true or false",
    "array": "a list of strings",
    "object": "a YAML/JSON list of objects",
}
