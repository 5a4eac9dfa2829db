"""Real storage servers for the staging tests: gcp-storage-emulator and moto's S3 server on 127.0.0.1,
started once per session on free ports and stopped by PID afterwards; and a generated fake snapshot."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command: list[str], port: int, log: Path) -> subprocess.Popen:
    handle = log.open("wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{command[0]} did not listen on 127.0.0.1:{port} within 20 s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """The endpoint of a fresh in-memory GCS emulator; STORAGE_EMULATOR_HOST points at it for the session."""
    port = _free_port()
    process = _start([str(BIN / "gcp-storage-emulator"), "start", "--host=127.0.0.1", f"--port={port}",
                      "--in-memory"], port, tmp_path_factory.mktemp("gcs") / "emulator.log")
    endpoint = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    yield endpoint
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
    _stop(process)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    port = _free_port()
    process = _start([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port,
                     tmp_path_factory.mktemp("s3") / "moto.log")
    yield f"http://127.0.0.1:{port}"
    _stop(process)


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

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test")


def _safetensors(tensors: dict[str, tuple[list[int], int]], seed: int) -> bytes:
    """A valid safetensors file of F32 tensors filled with deterministic bytes."""
    header, offset, payload = {}, 0, bytearray()
    for name, (shape, _) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        size = count * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        payload += bytes((seed * 31 + i * 7) % 251 for i in range(size)) if size < 4096 else \
            (bytes(range(seed % 200, seed % 200 + 50)) * (size // 50 + 1))[:size]
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + bytes(payload)


def make_snapshot(root: Path, shards: int = 4, shard_floats: int = 150_000) -> Path:
    """A fake multi-shard model snapshot (~0.6 MB per shard, ~2.4 MB in all, by default): safetensors shards with an index,
    config, generation config and tokenizer files."""
    root.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for shard in range(1, shards + 1):
        name = f"model-{shard:05d}-of-{shards:05d}.safetensors"
        tensors = {f"model.layers.{shard}.mlp.weight": ([shard_floats // 100, 100], 0),
                   f"model.layers.{shard}.norm.weight": ([100], 0)}
        (root / name).write_bytes(_safetensors(tensors, shard))
        weight_map.update({tensor: name for tensor in tensors})
    (root / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": sum((root / n).stat().st_size for n in set(weight_map.values()))},
         "weight_map": weight_map}, indent=1))
    (root / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                                  "hidden_size": 100, "num_hidden_layers": shards}))
    (root / "generation_config.json").write_text(json.dumps({"do_sample": True, "temperature": 0.6}))
    (root / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}}}))
    (root / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 4096}))
    (root / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    return root


@pytest.fixture
def snapshot(tmp_path) -> Path:
    return make_snapshot(tmp_path / "snapshot")


@pytest.fixture
def scratch(tmp_path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
