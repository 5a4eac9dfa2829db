"""The one error type for a bad `models` stack config (or a bad `ModelSpec` built in code)."""

from __future__ import annotations

from collections.abc import Iterable


class ModelConfigError(ValueError):
    """Every problem found in the model configuration, reported at once.

    Each problem is one line of the form ``<key>[<i>].<field>: <what is wrong>; found <value>; allowed <...>``
    so that the fix can be made without reading code. `problems` keeps the lines for tests and for callers
    that want to re-wrap them (the infrastructure side turns them into its own `ConfigError`).
    """

    def __init__(self, problems: Iterable[str]):
        self.problems: tuple[str, ...] = tuple(problems)
        count = len(self.problems)
        super().__init__(
            f"invalid model configuration ({count} problem{'s' if count != 1 else ''}):\n"
            + "\n".join(f"  - {problem}" for problem in self.problems)
        )
