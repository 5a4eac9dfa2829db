"""The README and docs/ stay short, linked and true to the tree.

The README fits on a few screens and opens with the two set-up commands; every relative link in it and in
docs/ reaches a file of this repository (and a heading, when it names one); every repository path the pages
name in backticks exists; lines stay within 120 characters outside code blocks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
GENERATED = {ROOT / "docs" / "configuration.md"}  # written from the key tables: its tables set its widths

SETUP_COMMANDS = (
    "python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements.txt"
    " && .venv/bin/python -m infra plan prod",
    "python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements/test.txt"
    " && .venv/bin/python -m pytest",
)
# Four screens: the set-up commands, the stacks, the short deploy path, and one example per feature that its
# issue asks the README to show (a pipeline call, a real bench report, measured quotas and recovery).
MAX_README_LINES = 180
MAX_LINE = 120
# Code spans that name a file or folder of this repository; upstream paths (vLLM's, KubeRay's) start otherwise.
REPO_PATH = re.compile(r"(?:infra|serve_app|staging|local_run|policy|scripts|tests|docs|\.ci)/[\w./-]*")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _prose_and_code(text: str) -> tuple[list[tuple[int, str]], list[str]]:
    """(line number, line) outside fenced code blocks, and the lines inside them, in order."""
    prose, code, fenced = [], [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            code.append(line)
        else:
            prose.append((number, line))
    return prose, code


def _without_code_spans(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    for _, line in _prose_and_code(page.read_text(encoding="utf-8"))[0]:
        if match := re.match(r"#{1,6} (.+)", line):
            slug, n = _slug(match.group(1)), 1
            while slug in anchors:
                slug, n = f"{_slug(match.group(1))}-{n}", n + 1
            anchors.add(slug)
    return anchors


def _links(page: Path) -> list[tuple[int, str]]:
    return [
        (number, target)
        for number, line in _prose_and_code(page.read_text(encoding="utf-8"))[0]
        for target in LINK.findall(_without_code_spans(line))
    ]


def test_the_pages_exist():
    names = {page.name for page in PAGES}
    assert {
        "README.md",
        "architecture.md",
        "capacity-and-cost.md",
        "model-weights.md",
        "gpu-capacity.md",
        "deploying.md",
        "operations.md",
        "security.md",
        "local-run.md",
        "development.md",
    } <= names, names


def test_the_readme_fits_on_a_few_screens():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to docs/ (at most {MAX_README_LINES})"


def test_the_readme_opens_with_the_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    _prose, code = _prose_and_code(text)
    commands = [line.strip() for line in code if line.strip() and not line.lstrip().startswith("#")]
    assert tuple(commands[:2]) == SETUP_COMMANDS, commands[:2]
    assert text.index("```") < text.index("\n## "), "the set-up commands come before the first section"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for number, target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if ROOT not in linked.parents and linked != ROOT:
            broken.append(f"{number}: {target} leaves the repository")
        elif not linked.exists():
            if linked not in GENERATED:  # a missing generated page is reported once, below
                broken.append(f"{number}: {target} does not exist")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{number}: {target} names no heading of {linked.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_generated_configuration_reference_that_the_pages_link_to_exists():
    linking = sorted(
        str(page.relative_to(ROOT))
        for page in PAGES
        for _, target in _links(page)
        if (page.parent / target.partition("#")[0]).resolve() in GENERATED
    )
    assert linking, "no page links to the configuration reference"
    missing = [str(path.relative_to(ROOT)) for path in sorted(GENERATED) if not path.exists()]
    assert not missing, f"{missing} is generated from the key tables and linked from {sorted(set(linking))}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_repository_path_named_exists(page):
    named = {span for span in re.findall(r"`([^`\s]+)`", page.read_text(encoding="utf-8")) if REPO_PATH.fullmatch(span)}
    missing = sorted(span for span in named if not (ROOT / span).exists())
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize(
    "page", [page for page in PAGES if page not in GENERATED], ids=lambda page: str(page.relative_to(ROOT))
)
def test_lines_stay_within_120_characters_outside_code_blocks(page):
    long = [
        f"{number}: {len(line)}"
        for number, line in _prose_and_code(page.read_text(encoding="utf-8"))[0]
        if len(line) > MAX_LINE
    ]
    assert not long, f"{page.relative_to(ROOT)} has lines over {MAX_LINE} characters: {long}"


def test_the_slug_is_githubs():
    assert _slug("Before `pulumi up`: `plan --against`") == "before-pulumi-up-plan---against"
    assert _slug("`capacity.json`") == "capacityjson"
    assert _slug("Smoke test: `python -m infra smoke <stack>`") == "smoke-test-python--m-infra-smoke-stack"


def test_a_broken_link_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n[ok](#title) [gone](missing.md) `[not a link](x.md)`\n```\n[in code](also-missing.md)\n```\n"
    )
    assert _links(page) == [(3, "#title"), (3, "missing.md")]
    assert _anchors(page) == {"title"}


def test_the_teardown_empties_the_model_store_and_the_how_tos_a_new_user_needs_exist():
    """`pulumi destroy` stops at a bucket that holds weights: the teardown applies modelStoreForceDestroy first.
    Serving another model, a gated repository and a local config.json each have their how-to."""
    page = (ROOT / "docs" / "deploying.md").read_text()
    teardown = page.split("## Tearing a stack down", 1)[1]
    commands = teardown.split("```bash", 1)[1].split("```", 1)[0]
    force, up, destroy = (
        commands.index(step) for step in ("modelStoreForceDestroy true", "pulumi up", "pulumi destroy")
    )
    assert force < up < destroy, commands
    assert {"serving-a-different-model", "a-gated-repository-hftoken"} <= _anchors(ROOT / "docs" / "deploying.md")
    assert "capacity-of-a-model-the-planner-does-not-know-a-local-configjson" in _anchors(
        ROOT / "docs" / "deploying.md"
    )


def test_every_stack_output_is_listed_in_the_deploying_page():
    """`pulumi up` prints these; a new output must be explained where users look them up."""
    names = set(re.findall(r'pulumi\.export\(\s*"([a-z_]+)"', (ROOT / "__main__.py").read_text(encoding="utf-8")))
    assert {"api_key", "tenant_keys", "gcs_redis_address"} <= names, names  # the parse still finds them
    section = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8").split("## Stack outputs", 1)[1]
    missing = sorted(name for name in names if f"`{name}`" not in section.split("\n## ", 1)[0])
    assert not missing, f"docs/deploying.md#stack-outputs does not list {missing}"
