"""A key table as Markdown, for the generated reference: one row per key, straight from its declaration."""

from __future__ import annotations

from collections.abc import Iterable

from configkit.keys import ConfigKey

TYPE_WORDS = {"array": "list of strings", "object": "list of objects"}


def markdown_table(keys: Iterable[ConfigKey], *, secret_column: bool = False) -> str:
    """Columns key, type, default, allowed (range or choices), secret (when asked for) and description."""
    header = ["key", "type", "default", "allowed", *(["secret"] if secret_column else []), "description"]
    rows = [header, ["---"] * len(header)]
    for key in keys:
        secret = ["yes" if key.secret else "no"] if secret_column else []
        rows.append(
            [
                f"`{key.name}`",
                TYPE_WORDS.get(key.type, key.type),
                key.default_words,
                key.allowed_words,
                *secret,
                key.description,
            ]
        )
    return "".join("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |\n" for row in rows)
