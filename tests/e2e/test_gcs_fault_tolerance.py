"""GCS fault tolerance on one machine: a Ray head whose GCS keeps its tables in a real Redis, wired the way the
staging and prod stacks wire Memorystore (infra/render/gcs_ft.py): a `rediss://` address, the server's CA in
RAY_REDIS_CA_CERT, a password (AUTH). A trivial Serve deployment answers with its process id; the gcs_server
process is killed and started again with its own command line and environment (what the head pod's restart
does to the GCS), while a client keeps sending requests.

Shown: every request during the outage is answered, by the same replica process before, during and after; the
restarted GCS finds the node, the Serve application and its replica in Redis. Not shown here: the pod-level
restart of a whole head on GKE (new pod, image, `ray start`), which KubeRay drives; docs/operations.md models it.

Needs Debian's `redis-server` (with TLS; .ci/run installs it) and the heavy environment:
    .venv-local/bin/python -m pytest -m e2e tests/e2e/test_gcs_fault_tolerance.py
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from local_run.server import free_port

pytestmark = pytest.mark.e2e

OUTAGE_S = 3.0  # how long the GCS stays down: long enough for dozens of requests to cross it
REQUEST_EVERY_S = 0.05

DEPLOY = """
import os, sys, ray
from ray import serve

ray.init(address=sys.argv[1], logging_level="ERROR")

@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Pid:
    def __call__(self, request):
        return str(os.getpid())

serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[2])})
serve.run(Pid.bind(), name="pid", route_prefix="/")
"""

STATUS = """
import json, sys, ray
from ray import serve

ray.init(address=sys.argv[1], logging_level="ERROR")
applications = serve.status().applications
print(json.dumps({
    "alive_nodes": sum(1 for node in ray.nodes() if node["Alive"]),
    "pid_app": applications["pid"].status.value if "pid" in applications else None,
}))
"""


def _tls_files(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it, as Memorystore's per-instance CA signs its
    server's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("llmserve test CA", ca_key, "llmserve test CA", ca_key, ca=True)
    server_cert = certificate("127.0.0.1", server_key, "llmserve test CA", ca_key, ca=False)
    files = {"ca": folder / "ca.crt", "cert": folder / "server.crt", "key": folder / "server.key"}
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


def _wait_for_port(port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s} s")


def _get(url: str) -> tuple[int | str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except Exception as error:
        return type(error).__name__, str(error)


def _python(script: str, *args: str, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _gcs_server(gcs_port: int):
    import psutil

    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "gcs_server" and f"--gcs_server_port={gcs_port}" in (process.info["cmdline"] or []):
            return process
    raise AssertionError(f"no gcs_server process with --gcs_server_port={gcs_port}")


@pytest.fixture
def redis(tmp_path):
    """redis-server with TLS only (the client need not present a certificate, as with Memorystore's
    SERVER_AUTHENTICATION) and a password; (port, password, TLS files)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: apt-get install redis-server (Debian's build has TLS)"
    files, port, password = _tls_files(tmp_path), free_port(), secrets.token_hex(16)
    # Not on the command line (where ps shows it): redis-server reads a config file.
    config = tmp_path / "redis.conf"
    config.write_text(
        f"port 0\ntls-port {port}\nbind 127.0.0.1\ntls-cert-file {files['cert']}\ntls-key-file {files['key']}\n"
        f'tls-ca-cert-file {files["ca"]}\ntls-auth-clients no\nrequirepass {password}\nsave ""\n'
        f"appendonly no\ndir {tmp_path}\n"
    )
    server = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, 10, "redis-server")
        yield port, password, files
    finally:
        server.terminate()
        server.wait(10)


def test_serve_keeps_answering_while_the_gcs_restarts_from_redis(no_dev_server, redis, tmp_path):
    started = time.monotonic()
    redis_port, password, files = redis
    gcs_port, http_port = free_port(), free_port()
    address = f"127.0.0.1:{gcs_port}"
    env = {
        **os.environ,
        "RAY_REDIS_ADDRESS": f"rediss://127.0.0.1:{redis_port}",
        "RAY_REDIS_CA_CERT": str(files["ca"]),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    head = [*ray_cli, "start", "--head", f"--port={gcs_port}", "--num-cpus=1", "--include-dashboard=false"]
    subprocess.run([*head, f"--redis-password={password}"], env=env, check=True, capture_output=True, timeout=120)
    try:
        _python(DEPLOY, address, str(http_port), env=env)
        url = f"http://127.0.0.1:{http_port}/"
        status, replica_pid = _get(url)
        assert status == 200, replica_pid
        before = json.loads(_python(STATUS, address, env=env))
        assert before == {"alive_nodes": 1, "pid_app": "RUNNING"}

        seen: list[tuple[float, int | str, str]] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                seen.append((time.monotonic(), *_get(url)))
                time.sleep(REQUEST_EVERY_S)

        sender = threading.Thread(target=client, daemon=True)
        sender.start()
        gcs = _gcs_server(gcs_port)
        command, gcs_env, cwd = gcs.cmdline(), gcs.environ(), gcs.cwd()
        killed = time.monotonic()
        gcs.send_signal(signal.SIGKILL)
        gcs.wait(10)
        time.sleep(OUTAGE_S)
        restarted_at = time.monotonic()
        subprocess.Popen(
            command, env=gcs_env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        after = json.loads(_python(STATUS, address, env=env))
        answered_at = time.monotonic()
        time.sleep(1)
        stop.set()
        sender.join(10)

        # The GCS found its node, the Serve application and the replica in Redis: the same process answers.
        assert after == {"alive_nodes": 1, "pid_app": "RUNNING"}, after
        outage = [entry for entry in seen if killed <= entry[0] <= restarted_at]
        assert len(outage) >= OUTAGE_S / (REQUEST_EVERY_S + 0.1), f"too few requests during the outage: {outage}"
        failed = [entry for entry in seen if entry[1] != 200 or entry[2] != replica_pid]
        assert not failed, f"requests that failed or reached another replica: {failed[:5]} ({len(failed)})"
        keys = subprocess.run(
            ["redis-cli", "--tls", "--cacert", str(files["ca"]), "-p", str(redis_port), "--no-auth-warning", "DBSIZE"],
            env={**os.environ, "REDISCLI_AUTH": password},
            capture_output=True,
            text=True,
            check=True,
        )
        assert int(keys.stdout.strip()) > 0, "the GCS wrote nothing to Redis"
        print(
            f"\nGCS down {restarted_at - killed:.1f} s, back (GCS answering, Serve RUNNING) "
            f"{answered_at - restarted_at:.1f} s after its restart; {len(seen)} requests, {len(outage)} during "
            f"the outage, 0 failed; test {time.monotonic() - started:.1f} s"
        )
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120, check=False)
