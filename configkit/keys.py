"""One config key, declared once with everything its reader and the generated reference need."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

# "array" is a list of strings, "object" a structured value (the stack's list of models), "map" a mapping.
KeyType = Literal["string", "integer", "number", "boolean", "array", "object", "map"]
NUMERIC_TYPES = ("integer", "number")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class Range:
    """The numbers a key allows, with the reason for a bound that is not obvious (`why`)."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    why: str = ""

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.minimum is not None and (value <= self.minimum if self.exclusive_minimum else value < self.minimum):
            return False
        return self.maximum is None or value <= self.maximum

    def words(self) -> str:
        """`0 to 1000` when both ends are included, else the bounds as comparisons: `>= 1`, `> 0 and <= 1`."""
        if self.minimum is not None and self.maximum is not None and not self.exclusive_minimum:
            return f"{_number(self.minimum)} to {_number(self.maximum)}"
        low = "" if self.minimum is None else f"{'>' if self.exclusive_minimum else '>='} {_number(self.minimum)}"
        high = "" if self.maximum is None else f"<= {_number(self.maximum)}"
        return " and ".join(part for part in (low, high) if part)


@dataclass(frozen=True)
class ConfigKey:
    """One config key: its name, type and meaning, its default, and what it allows.

    `default` is the value a reader uses when the key is unset (None: there is none, the key is then `required`
    or stays unset); `default_text` says in words a default that is not a value of its own ("vLLM's, or the
    preset's"). `range` bounds a number, `choices` lists the values a string may take. `field` names the
    attribute of the typed settings that the key fills, where a reader maps keys to fields by name.
    A declaration that contradicts itself (a default outside its range, a range on a string) fails at import.
    """

    name: str
    type: KeyType
    description: str
    default: Any = None
    default_text: str = ""
    required: bool = False
    secret: bool = False
    range: Range | None = None
    choices: tuple[str, ...] | None = None
    field: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.required and (self.default is not None or self.default_text):
            problems.append("a required key has no default")
        if self.range is not None and self.type not in NUMERIC_TYPES:
            problems.append(f"a range needs a number type, not {self.type}")
        if self.choices is not None and self.type != "string":
            problems.append(f"choices need the string type, not {self.type}")
        if self.range is not None and self.default is not None and self.default not in self.range:
            problems.append(f"default {self.default!r} outside {self.range.words()}")
        if self.choices is not None and self.default is not None and self.default not in self.choices:
            problems.append(f"default {self.default!r} not among the choices")
        if problems:
            raise ValueError(f"config key {self.name}: {'; '.join(problems)}")

    @property
    def default_words(self) -> str:
        """The default as the reference states it: words, `required`, `unset`, or the value as JSON."""
        if self.default_text:
            return self.default_text
        if self.default is None:
            return "required" if self.required else "unset"
        return json.dumps(self.default)

    @property
    def allowed_words(self) -> str:
        """What the key allows beyond its type, for the reference: its range (and why), or its choices."""
        if self.range is not None:
            return self.range.words() + (f" ({self.range.why})" if self.range.why else "")
        if self.choices is not None:
            return ", ".join(json.dumps(choice) if choice == "" else choice for choice in self.choices)
        return ""
