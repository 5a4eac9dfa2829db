"""How a problem line quotes a value, and how it suggests the name that was probably meant."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

MAX_SHOWN = 80  # characters of a value quoted in a message; a longer one is cut and ends with "..."


def shown(value: Any) -> str:
    """`value` as a problem line quotes it: Python's repr, with read-only maps and tuples written as the dicts
    and lists they were read from, cut to `MAX_SHOWN` characters."""
    text = repr(_plain(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def closest(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate a misspelt `word` most likely meant, or None: the one that differs only in case, else the
    closest by `difflib` with a similarity of at least `cutoff` (0.6 is difflib's own default)."""
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[matches[0]] if matches else None


def did_you_mean(hint: str | None) -> str:
    """The note a problem line adds after what is wrong: ` (did you mean 'hint'?)`, or nothing without a hint."""
    return f" (did you mean {shown(hint)}?)" if hint else ""
