"""The README's deploy walkthrough matches the stack it walks through, and names the fields vLLM really returns."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def test_the_first_request_asks_the_selected_stack_for_a_model_it_serves():
    deploy = _section("## Deploying for real")
    stack = re.search(r"pulumi stack select --create (\w+)", deploy).group(1)
    first = deploy[deploy.index("A first request"):]
    models = {m["id"] for m in yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["llmserve:models"]}
    asked = re.findall(r'"model": "([^"]+)"', first) + re.findall(r'model="([^"]+)"', first)
    assert asked and set(asked) <= models, f"walkthrough selects {stack} ({sorted(models)}) but asks for {asked}"


def test_reasoning_is_read_from_the_field_vllm_returns():
    assert "reasoning_content`)" not in README and "message.reasoning" in README
    sdk = re.search(r"```python\n(.*?)```", _section("## Deploying for real"), re.S).group(1)
    assert "reasoning" in sdk and "reasoning_content" not in sdk


def test_prerequisites_list_kubectl_and_teardown_covers_deletion_protection():
    deploy = _section("## Deploying for real")
    prerequisites = deploy[:deploy.index("Then, with a local state backend")]
    assert "`kubectl`" in prerequisites
    teardown = deploy[deploy.index("### Tearing a stack down"):]
    for needle in ("pulumi config set llmserve:deletionProtection false", "pulumi destroy",
                   "pulumi stack rm --preserve-config"):
        assert needle in teardown, needle
