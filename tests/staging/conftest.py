"""Fixtures for the staging tests: real storage servers on 127.0.0.1 (gcp-storage-emulator and moto's S3
server), started once per session on free ports and stopped by PID afterwards, and a generated fake snapshot.
The code behind them is in tests/support (object_stores.py, snapshots.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.object_stores import BIN, free_port, start_server, stop_server
from tests.support.snapshots import make_snapshot


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """The endpoint of a fresh in-memory GCS emulator; STORAGE_EMULATOR_HOST points at it for the session."""
    port = free_port()
    process = start_server(
        [str(BIN / "gcp-storage-emulator"), "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
        port,
        tmp_path_factory.mktemp("gcs") / "emulator.log",
    )
    endpoint = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    yield endpoint
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
    stop_server(process)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    port = free_port()
    process = start_server(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, tmp_path_factory.mktemp("s3") / "moto.log"
    )
    yield f"http://127.0.0.1:{port}"
    stop_server(process)


@pytest.fixture
def storage_client(gcs_emulator):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials())


@pytest.fixture
def bucket(storage_client, request):
    """A new, empty bucket per test (names unique per test)."""
    name = "t-" + request.node.name.lower().replace("_", "-")[:50].strip("-")
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    return storage_client.create_bucket(name)


@pytest.fixture
def s3_client(s3_endpoint):
    import boto3

    return boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )


@pytest.fixture
def snapshot(tmp_path) -> Path:
    return make_snapshot(tmp_path / "snapshot")


@pytest.fixture
def scratch(tmp_path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
