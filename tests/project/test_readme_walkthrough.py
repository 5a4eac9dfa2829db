"""The deploy walkthrough (the README's short path and docs/deploying.md) matches the stack it walks through, and
names the fields vLLM really returns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DEPLOYING = (ROOT / "docs" / "deploying.md").read_text()
PAGES = {"README.md": README, "docs/deploying.md": DEPLOYING}


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_first_request_asks_the_selected_stack_for_a_model_it_serves(page):
    text = PAGES[page]
    stack = re.search(r"pulumi stack select --create (\w+)", text).group(1)
    first = text[text.index("A first request") :]
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    # a pipeline's id is a model id too (docs/pipelines.md)
    models = {m["id"] for m in config["llmserve:models"] + config.get("llmserve:pipelines", [])}
    asked = re.findall(r'"model": "([^"]+)"', first) + re.findall(r'model="([^"]+)"', first)
    assert asked and set(asked) <= models, f"{page} selects {stack} ({sorted(models)}) but asks for {asked}"


def test_reasoning_is_read_from_the_field_vllm_returns():
    docs = [README, *(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))]
    assert not any("reasoning_content`)" in text for text in docs) and "message.reasoning" in DEPLOYING
    sdk = re.search(r"```python\n(.*?)```", DEPLOYING, re.S).group(1)
    assert "reasoning" in sdk and "reasoning_content" not in sdk


def test_prerequisites_list_kubectl_and_teardown_covers_deletion_protection():
    deploy = _section(DEPLOYING, "## Deploying for real")
    prerequisites = deploy[: deploy.index("Then, with a local state backend")]
    assert "`kubectl`" in prerequisites
    teardown = _section(DEPLOYING, "## Tearing a stack down")
    for needle in (
        "pulumi config set llmserve:deletionProtection false",
        "pulumi destroy",
        "pulumi stack rm --preserve-config",
    ):
        assert needle in teardown, needle
