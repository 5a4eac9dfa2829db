"""The local runner's logs: where they go (printed before Ray starts) and `--keep-logs`, which keeps them when the
server stops. Pure: the folder handling is tested on a folder laid out as Ray lays out its temp dir; no Ray runs."""

from __future__ import annotations

from pathlib import Path

from local_run.__main__ import _parse_args, log_folder_line
from local_run.serve_config import stack_serving
from local_run.server import LocalServer, clean_workdir, log_dir
from serve_app.builder import build_serve_config


def _server_folder(root: Path) -> Path:
    """A server's folder after a run: Ray's temp dir (a session, `session_latest` pointing at it, a Serve replica
    log), the deployed Serve config, the API key file, the code copy and a compile cache."""
    workdir = root / "llmserve-test"
    session = workdir / "ray" / "session_2026-12-03_12-00-00_000000_1"
    (session / "logs" / "serve").mkdir(parents=True)
    (session / "logs" / "serve" / "replica_default_LLMServer.log").write_text("500 Internal Server Error\n")
    (workdir / "ray" / "session_latest").symlink_to(session)
    (workdir / "serve_config.yaml").write_text("applications: []\n")
    (workdir / "api-keys").mkdir()
    (workdir / "api-keys" / "keys").write_text("secret-key\n")
    (workdir / "pythonpath" / "serve_app").mkdir(parents=True)
    (workdir / "vllm-cache").mkdir()
    return workdir


def test_by_default_the_whole_folder_goes(tmp_path):
    workdir = _server_folder(tmp_path)
    assert clean_workdir(workdir, keep_logs=False) is None
    assert not workdir.exists()


def test_keep_logs_keeps_rays_logs_and_the_serve_config_and_nothing_secret(tmp_path):
    workdir = _server_folder(tmp_path)
    kept = clean_workdir(workdir, keep_logs=True)
    assert kept == workdir / "ray" / "session_latest" / "logs" == log_dir(workdir)
    assert (kept / "serve" / "replica_default_LLMServer.log").read_text() == "500 Internal Server Error\n"
    assert sorted(path.name for path in workdir.iterdir()) == ["ray", "serve_config.yaml"]


def test_keep_logs_when_ray_never_started_keeps_nothing_to_point_at(tmp_path):
    workdir = tmp_path / "llmserve-empty"
    (workdir / "api-keys").mkdir(parents=True)
    (workdir / "api-keys" / "keys").write_text("secret-key\n")
    assert clean_workdir(workdir, keep_logs=True) is None
    assert list(workdir.iterdir()) == []


def test_the_server_knows_its_log_folder_and_removes_its_key_either_way():
    models, auth = stack_serving("dev")
    server = LocalServer(build_serve_config(models, auth=auth), api_key="k" * 40, keep_logs=True)
    assert server.log_dir == server.workdir / "ray" / "session_latest" / "logs"
    assert server.api_key_file.is_file()
    assert server.stop() is None  # never started: no logs
    assert not server.api_key_file.exists()
    server.workdir.rmdir()  # what keep_logs left: the empty folder


def test_the_folder_is_printed_with_what_happens_to_it(tmp_path):
    folder = tmp_path / "ray" / "session_latest" / "logs"
    assert log_folder_line(folder, keep_logs=False) == (
        f"llmserve local: Ray and Serve logs in {folder} (Serve's replica logs in serve/; deleted when the server "
        "stops; --keep-logs keeps them)"
    )
    assert log_folder_line(folder, keep_logs=True).endswith(
        "(Serve's replica logs in serve/; kept when the server stops)"
    )


def test_keep_logs_is_a_flag_off_by_default():
    assert _parse_args(["dev"]).keep_logs is False
    assert _parse_args(["dev", "--keep-logs"]).keep_logs is True
