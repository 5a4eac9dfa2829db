"""The one error type a user should ever see for bad stack config."""

from __future__ import annotations

try:
    from pulumi import RunError
except ImportError:  # `python -m infra smoke` reads a stack's config where Pulumi is not installed
    RunError = Exception  # type: ignore[misc,assignment]  # the same class name, without Pulumi's printing


class ConfigError(RunError):
    """Invalid stack configuration, found before any resource is created.

    A `pulumi.RunError` so that `pulumi up` prints the message without a Python stack trace. Each problem is
    one line that names the config key, the value found and what is allowed.
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {problem}" for problem in self.problems))
