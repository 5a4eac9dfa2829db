"""One local dev server for the whole e2e tier.

Starting `python -m local_run dev` (Ray, the Serve controller, the ingress, the config marker) costs about a
minute on a 2-core machine, and CI's budget is 20 minutes, so every module that only needs *a* running dev
server shares one, through the `dev_server` fixture. Ray runs once per machine, so a test that starts a Ray of
its own (another server, another flag) asks for `no_dev_server`, which stops the shared one first and checks
that it stopped cleanly.

Order: pytest runs the tests that use the shared server first (in their usual order), then those marked
`mutates_dev_server` (they change the served config, the keys or a replica, and leave the server still
serving), then everything else. A test that only reads must not depend on the state a mutating test leaves.
"""

from __future__ import annotations

from typing import Any

import pytest

from local_run.errors import LocalRunError
from local_run.launcher import LaunchedServer
from local_run.server import free_port

DEV_STACK = "dev"
READY_TIMEOUT_S = 600

_shared: dict[str, Any] = {}  # "launched": LaunchedServer, "info": its ready JSON, "error": why it never came up


def _dev_server_info() -> dict:
    if "error" in _shared:
        pytest.fail(f"the shared local {DEV_STACK} server did not come up: {_shared['error']}")
    if "info" not in _shared:
        launched = LaunchedServer(DEV_STACK, free_port(), ready_timeout_s=READY_TIMEOUT_S)
        try:
            _shared["info"] = launched.wait_ready()
        except LocalRunError as error:
            launched.stop()
            _shared["error"] = str(error)
            pytest.fail(f"the shared local {DEV_STACK} server did not come up: {error}")
        _shared["launched"] = launched
    info: dict = _shared["info"]
    return info


def stop_dev_server() -> list[str]:
    """Stop the shared server if it runs; the problems found (unclean exit, Ray processes left behind)."""
    launched = _shared.pop("launched", None)
    _shared.pop("info", None)
    if launched is None:
        return []
    import psutil  # in the e2e environment only

    problems = []
    exit_code = launched.stop()
    if exit_code != 0:
        problems.append(f"the shared {DEV_STACK} server did not stop cleanly ({exit_code}):\n{launched.output[-4000:]}")
    strays = [
        f"{process.pid} {process.info['name']}"
        for process in psutil.process_iter(["name"])
        if process.info["name"] in ("gcs_server", "raylet", "dashboard")
    ]
    if strays:
        problems.append(f"Ray processes left behind by the shared server: {strays}")
    return problems


@pytest.fixture
def dev_server() -> dict:
    """The shared dev server's ready JSON: base_url, api_key, api_key_file, models, serve_config_file, ..."""
    return _dev_server_info()


@pytest.fixture(scope="module")
def no_dev_server() -> None:
    """For a test that starts its own Ray: the shared server is stopped, cleanly, before it runs."""
    problems = stop_dev_server()
    assert not problems, "\n".join(problems)


def _order(item: pytest.Item) -> int:
    if "dev_server" not in getattr(item, "fixturenames", ()):
        return 2
    return 1 if item.get_closest_marker("mutates_dev_server") else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_order)  # stable: each group keeps the files' and tests' own order


def pytest_sessionfinish(session: pytest.Session) -> None:
    problems = stop_dev_server()
    if problems:
        print("\n".join(problems))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
