"""Staging against a real GCS emulator and a real moto S3 server (tests/staging/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from staging.__main__ import main as staging_main
from staging.copy import Stager
from staging.layout import MANIFEST_NAME, model_prefix
from staging.sources import HuggingFaceSource, LocalSource, S3Source, StagingError, open_source

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PREFIX = model_prefix("tiny-model", "v1")


def source_files(snapshot: Path) -> dict[str, bytes]:
    return {
        path.relative_to(snapshot).as_posix(): path.read_bytes()
        for path in sorted(snapshot.rglob("*"))
        if path.is_file() and path.name != ".gitattributes"
    }


def stored(bucket, prefix=PREFIX) -> dict[str, bytes]:
    return {
        blob.name[len(prefix) :]: blob.download_as_bytes()
        for blob in bucket.client.list_blobs(bucket.name, prefix=prefix)
    }


def manifest(bucket, prefix=PREFIX) -> dict | None:
    blob = bucket.get_blob(prefix + MANIFEST_NAME)
    return None if blob is None else json.loads(blob.download_as_bytes())


class FlakySource:
    """A source that fails to fetch the named files (once each), like a dropped connection mid-copy."""

    def __init__(self, inner, failing: set[str]):
        self.inner, self.failing = inner, set(failing)
        self.description, self.revision = inner.description, inner.revision
        self.fetched: list[str] = []

    def files(self):
        return self.inner.files()

    def fetch(self, file, scratch):
        self.fetched.append(file.path)
        if file.path in self.failing:
            self.failing.discard(file.path)
            raise ConnectionError("connection reset by peer")
        return self.inner.fetch(file, scratch)


def test_full_copy_stores_every_file_verified_and_the_manifest_lists_them(bucket, snapshot, scratch):
    result = Stager(LocalSource(snapshot, "v1"), bucket, PREFIX, workers=4, scratch=scratch).run()

    expected = source_files(snapshot)
    assert len(expected) == 9 and sum(name.endswith(".safetensors") for name in expected) == 4
    assert {name: data for name, data in stored(bucket).items() if name != MANIFEST_NAME} == expected
    assert sorted(result.copied) == sorted(expected) and result.skipped == [] and result.manifest_written
    assert result.bytes_copied == sum(len(data) for data in expected.values())
    body = manifest(bucket)
    assert body["revision"] == "v1" and body["format"] == 1
    assert [entry["path"] for entry in body["files"]] == sorted(expected)
    for entry in body["files"]:
        data = expected[entry["path"]]
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
        blob = bucket.get_blob(PREFIX + entry["path"])
        assert entry["crc32c"] == blob.crc32c == blob.metadata["crc32c"]


def test_second_run_copies_nothing_and_leaves_the_manifest_alone(bucket, snapshot, scratch):
    Stager(LocalSource(snapshot, "v1"), bucket, PREFIX, scratch=scratch).run()
    generation = bucket.get_blob(PREFIX + MANIFEST_NAME).generation
    source = FlakySource(LocalSource(snapshot, "v1"), failing=set())

    again = Stager(source, bucket, PREFIX, scratch=scratch).run()

    assert again.copied == [] and again.replaced == [] and again.bytes_copied == 0
    assert len(again.skipped) == 9 and source.fetched == []
    assert not again.manifest_written
    assert bucket.get_blob(PREFIX + MANIFEST_NAME).generation == generation


def test_an_interrupted_copy_writes_no_manifest_and_a_rerun_copies_only_what_is_missing(bucket, snapshot, scratch):
    broken = {"model-00002-of-00004.safetensors", "tokenizer.json"}
    with pytest.raises(StagingError) as raised:
        Stager(FlakySource(LocalSource(snapshot, "v1"), broken), bucket, PREFIX, workers=3, scratch=scratch).run()
    assert "2 of 9 file(s) were not staged" in str(raised.value) and "no manifest written" in str(raised.value)
    assert manifest(bucket) is None
    assert set(stored(bucket)) == set(source_files(snapshot)) - broken

    resumed = Stager(LocalSource(snapshot, "v1"), bucket, PREFIX, scratch=scratch).run()

    assert sorted(resumed.copied) == sorted(broken) and len(resumed.skipped) == 7
    assert resumed.manifest_written and len(manifest(bucket)["files"]) == 9


def test_the_manifest_is_the_last_object_written(bucket, snapshot, scratch, monkeypatch):
    from google.cloud.storage import Blob

    writes: list[str] = []
    for method in ("upload_from_filename", "upload_from_string"):
        original = getattr(Blob, method)

        def recording(self, *args, _original=original, **kwargs):
            writes.append(self.name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Blob, method, recording)
    Stager(LocalSource(snapshot, "v1"), bucket, PREFIX, workers=4, scratch=scratch).run()

    data_writes = [name for name in writes if ".write-probe-" not in name]
    assert data_writes[-1] == PREFIX + MANIFEST_NAME
    assert data_writes.count(PREFIX + MANIFEST_NAME) == 1 and len(data_writes) == 10


def test_a_corrupt_object_is_detected_the_manifest_withdrawn_and_the_object_recopied(
    bucket, snapshot, scratch, monkeypatch
):
    Stager(LocalSource(snapshot, "v1"), bucket, PREFIX, scratch=scratch).run()
    shard = "model-00003-of-00004.safetensors"
    good = (snapshot / shard).read_bytes()
    # Bit rot: same size, same recorded metadata, different bytes (so the server's CRC32C changes).
    original = bucket.get_blob(PREFIX + shard)
    rotten = bucket.blob(PREFIX + shard)
    rotten.metadata = dict(original.metadata)
    rotten.upload_from_string(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    generation = bucket.get_blob(PREFIX + shard).generation
    # And a truncated tokenizer.
    truncated = bucket.blob(PREFIX + "tokenizer.json")
    truncated.metadata = dict(bucket.get_blob(PREFIX + "tokenizer.json").metadata)
    truncated.upload_from_string(b"{")

    from google.cloud.storage import Blob

    preconditions: dict[str, int] = {}
    upload = Blob.upload_from_filename

    def recording(self, *args, **kwargs):
        preconditions[self.name] = kwargs.get("if_generation_match")
        return upload(self, *args, **kwargs)

    monkeypatch.setattr(Blob, "upload_from_filename", recording)
    withdrawn = []
    delete = Blob.delete
    monkeypatch.setattr(Blob, "delete", lambda self, *a, **k: (withdrawn.append(self.name), delete(self, *a, **k)))

    repaired = Stager(LocalSource(snapshot, "v1"), bucket, PREFIX, scratch=scratch).run()

    assert sorted(repaired.replaced) == [shard, "tokenizer.json"] and repaired.copied == []
    assert (
        stored(bucket)[shard] == good and stored(bucket)["tokenizer.json"] == (snapshot / "tokenizer.json").read_bytes()
    )
    # Replaced under the generation that was inspected, never blindly.
    assert preconditions[PREFIX + shard] == generation
    assert PREFIX + MANIFEST_NAME in withdrawn and repaired.manifest_written and manifest(bucket) is not None


def test_new_objects_are_created_with_a_does_not_exist_precondition(bucket, snapshot, scratch, monkeypatch):
    from google.cloud.storage import Blob

    seen = []
    upload = Blob.upload_from_filename
    monkeypatch.setattr(
        Blob,
        "upload_from_filename",
        lambda self, *a, **k: (seen.append(k.get("if_generation_match")), upload(self, *a, **k)),
    )
    Stager(LocalSource(snapshot, "v1"), bucket, PREFIX, scratch=scratch).run()
    assert seen == [0] * 9


def test_an_unwritable_target_is_refused_before_anything_is_fetched(storage_client, snapshot, scratch):
    source = FlakySource(LocalSource(snapshot, "v1"), failing=set())
    with pytest.raises(StagingError, match=r"target gs://no-such-bucket-here/tiny-model/v1/ is not writable"):
        Stager(source, storage_client.bucket("no-such-bucket-here"), PREFIX, scratch=scratch).run()
    assert source.fetched == []


class FakeClock:
    """Monotonic time that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def refuse_probes(monkeypatch, times: int, error: Exception) -> list[str]:
    """The write probe's upload is refused `times` times (like a grant that has not propagated), then works."""
    from google.cloud.storage import Blob

    refused: list[str] = []
    upload = Blob.upload_from_string

    def maybe_refuse(self, *args, **kwargs):
        if ".write-probe-" in self.name and len(refused) < times:
            refused.append(self.name)
            raise error
        return upload(self, *args, **kwargs)

    monkeypatch.setattr(Blob, "upload_from_string", maybe_refuse)
    return refused


def forbidden():
    from google.api_core.exceptions import Forbidden

    return Forbidden("stager@p.iam.gserviceaccount.com does not have storage.objects.create access")


def metadata_server_refusal():
    from google.auth.exceptions import RefreshError

    return RefreshError("Failed to retrieve http://metadata.google.internal/... Status: 403 Response: ...")


@pytest.mark.parametrize("error", [forbidden, metadata_server_refusal])
def test_a_403_is_retried_until_the_grant_arrives(error, bucket, snapshot, scratch, monkeypatch, caplog):
    """The in-cluster Job starts right after its IAM grants, which take minutes to propagate: a 403 from GCS,
    or a token the metadata server refuses, is retried with backoff (5, 10, 20, 40 s) and the copy goes on."""
    caplog.set_level(logging.WARNING, logger="staging")
    refused = refuse_probes(monkeypatch, 4, error())
    clock = FakeClock()
    result = Stager(
        LocalSource(snapshot, "v1"), bucket, PREFIX, scratch=scratch, access_wait=600, clock=clock, sleep=clock.sleep
    ).run()
    assert len(refused) == 4 and clock.sleeps == [5, 10, 20, 40]
    assert result.manifest_written and stored(bucket).keys() == {*source_files(snapshot), MANIFEST_NAME}
    warnings = [r.getMessage() for r in caplog.records if "no write access" in r.getMessage()]
    assert len(warnings) == 4 and "IAM grants can take minutes to propagate" in warnings[0], warnings


def test_a_refusal_that_outlasts_the_wait_fails_after_600_seconds_without_fetching(
    bucket, snapshot, scratch, monkeypatch
):
    refuse_probes(monkeypatch, 10**6, forbidden())
    source = FlakySource(LocalSource(snapshot, "v1"), failing=set())
    clock = FakeClock()
    stager = Stager(source, bucket, PREFIX, scratch=scratch, access_wait=600, clock=clock, sleep=clock.sleep)
    with pytest.raises(StagingError, match=r"is not writable \(still refused after 600 s\).*roles/storage.objectUser"):
        stager.run()
    assert clock.now == 600, "waited exactly the access wait, no longer"
    assert max(clock.sleeps) == 60 and len(clock.sleeps) <= 15, clock.sleeps  # backoff capped at 60 s
    assert source.fetched == [] and stored(bucket) == {}


def test_without_an_access_wait_a_refusal_fails_at_once(bucket, snapshot, scratch, monkeypatch):
    """By hand (`python -m staging`, default --access-wait-seconds 0) a missing grant fails fast."""
    refuse_probes(monkeypatch, 1, forbidden())
    clock = FakeClock()
    with pytest.raises(StagingError, match=r"is not writable: .*does not have storage.objects.create access"):
        Stager(LocalSource(snapshot, "v1"), bucket, PREFIX, scratch=scratch, clock=clock, sleep=clock.sleep).run()
    assert clock.sleeps == []


def test_a_local_directory_without_config_json_is_refused(tmp_path, snapshot):
    (snapshot / "config.json").unlink()
    with pytest.raises(StagingError, match=r"has no config.json"):
        LocalSource(snapshot, "v1")
    with pytest.raises(StagingError, match=r"is not a directory"):
        LocalSource(tmp_path / "missing", "v1")


def test_progress_is_logged_with_bytes_rate_and_eta(bucket, snapshot, scratch, caplog):
    caplog.set_level(logging.INFO, logger="staging")
    Stager(LocalSource(snapshot, "v1"), bucket, PREFIX, scratch=scratch, progress_interval=0).run()
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("copied ")]
    assert len(lines) == 9
    assert lines[-1].startswith("copied 9/9 files, ") and "(100.0%)" in lines[-1] and "/s, ETA 0s" in lines[-1]


# --- Hugging Face: the planning and verification logic, with a fake Hub API (no network) -------------------


class FakeHubApi:
    """The two HfApi methods the source uses, answering from a local snapshot like the Hub would: LFS files
    (safetensors) carry their sha256, the others their git blob id."""

    def __init__(self, snapshot: Path, corrupt: set[str] = frozenset()):
        self.snapshot, self.corrupt = snapshot, set(corrupt)
        self.calls: list[tuple] = []

    def list_repo_tree(self, repo_id, *, recursive, revision, repo_type):
        self.calls.append(("list_repo_tree", repo_id, revision, recursive))
        entries = [SimpleNamespace(path="figures")]  # a folder: no size
        for path in sorted(self.snapshot.rglob("*")):
            data = path.read_bytes()
            lfs = path.suffix == ".safetensors"
            git_oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            entries.append(
                SimpleNamespace(
                    path=path.relative_to(self.snapshot).as_posix(),
                    size=len(data),
                    blob_id=git_oid,
                    lfs=SimpleNamespace(sha256=hashlib.sha256(data).hexdigest(), size=len(data)) if lfs else None,
                )
            )
        return entries

    def hf_hub_download(self, repo_id, filename, *, revision, repo_type, local_dir):
        self.calls.append(("hf_hub_download", repo_id, filename, revision))
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.snapshot / filename, target)
        if filename in self.corrupt:
            data = bytearray(target.read_bytes())
            data[-1] ^= 0xFF
            target.write_bytes(bytes(data))
        return str(target)


def test_hf_source_lists_lfs_sha256_and_git_ids_pinned_to_the_commit(snapshot):
    api = FakeHubApi(snapshot)
    files = {file.path: file for file in HuggingFaceSource("org/tiny", COMMIT, api=api).files()}
    assert ".gitattributes" not in files and "figures" not in files and len(files) == 9
    shard = files["model-00001-of-00004.safetensors"]
    assert shard.sha256 == hashlib.sha256((snapshot / shard.path).read_bytes()).hexdigest() and shard.git_oid is None
    assert files["config.json"].sha256 is None and len(files["config.json"].git_oid) == 40
    assert api.calls == [("list_repo_tree", "org/tiny", COMMIT, True)]


def test_hf_copy_records_the_hub_digests_and_skips_on_the_second_run(bucket, snapshot, scratch):
    prefix = model_prefix("tiny", COMMIT)
    api = FakeHubApi(snapshot)
    first = Stager(HuggingFaceSource("org/tiny", COMMIT, api=api), bucket, prefix, scratch=scratch).run()
    assert len(first.copied) == 9 and manifest(bucket, prefix)["source"] == f"hf://org/tiny@{COMMIT}"
    shard = bucket.get_blob(prefix + "model-00004-of-00004.safetensors")
    assert (
        shard.metadata["sha256"]
        == hashlib.sha256((snapshot / "model-00004-of-00004.safetensors").read_bytes()).hexdigest()
    )
    assert list(scratch.iterdir()) == []  # fetched files are deleted after upload

    api.calls.clear()
    second = Stager(HuggingFaceSource("org/tiny", COMMIT, api=api), bucket, prefix, scratch=scratch).run()
    assert second.copied == [] and [call[0] for call in api.calls] == ["list_repo_tree"]


def test_a_download_that_does_not_match_the_hub_sha256_is_never_uploaded(bucket, snapshot, scratch):
    prefix = model_prefix("tiny", COMMIT)
    bad = "model-00002-of-00004.safetensors"
    with pytest.raises(
        StagingError,
        match=r"model-00002-of-00004.safetensors: fetched .* has sha256 .*; the source "
        r"publishes",
    ):
        Stager(
            HuggingFaceSource("org/tiny", COMMIT, api=FakeHubApi(snapshot, {bad})), bucket, prefix, scratch=scratch
        ).run()
    assert bucket.get_blob(prefix + bad) is None and manifest(bucket, prefix) is None


def test_a_non_lfs_file_is_checked_against_its_git_blob_id(bucket, snapshot, scratch):
    prefix = model_prefix("tiny", COMMIT)
    with pytest.raises(StagingError, match=r"config.json: fetched config.json has git blob id"):
        Stager(
            HuggingFaceSource("org/tiny", COMMIT, api=FakeHubApi(snapshot, {"config.json"})),
            bucket,
            prefix,
            scratch=scratch,
        ).run()


def test_hf_revision_must_be_a_commit():
    with pytest.raises(StagingError, match=r"revision 'main' of org/tiny is not a commit id"):
        HuggingFaceSource("org/tiny", "main", api=object())


# --- S3 source against moto in server mode --------------------------------------------------------------------


def upload_to_s3(s3_client, snapshot: Path, bucket: str, prefix: str) -> None:
    s3_client.create_bucket(Bucket=bucket)
    for name, data in source_files(snapshot).items():
        extra = {"ChecksumAlgorithm": "SHA256"} if name.endswith(".safetensors") else {}
        s3_client.put_object(Bucket=bucket, Key=prefix + name, Body=data, **extra)


def test_s3_source_copies_into_the_store_with_s3_checksums_verified(bucket, snapshot, scratch, s3_client):
    upload_to_s3(s3_client, snapshot, "weights", "models/tiny/")
    source = S3Source("s3://weights/models/tiny", "2026-11", client=s3_client)
    files = {file.path: file for file in source.files()}
    assert len(files) == 9
    shard = files["model-00001-of-00004.safetensors"]
    assert shard.sha256 == hashlib.sha256((snapshot / shard.path).read_bytes()).hexdigest()

    prefix = model_prefix("tiny", "2026-11")
    result = Stager(source, bucket, prefix, scratch=scratch).run()
    assert len(result.copied) == 9 and stored(bucket, prefix)["config.json"] == (snapshot / "config.json").read_bytes()
    assert manifest(bucket, prefix)["source"] == "s3://weights/models/tiny/"
    assert (
        Stager(S3Source("s3://weights/models/tiny/", "2026-11", client=s3_client), bucket, prefix, scratch=scratch)
        .run()
        .copied
        == []
    )


def test_s3_uris_need_a_bucket_and_a_snapshot(s3_client, snapshot):
    for uri in ("s3://", "s3:///models/tiny"):
        with pytest.raises(StagingError, match=r"names no valid bucket"):
            S3Source(uri, "v1", client=s3_client)
    upload_to_s3(s3_client, snapshot, "no-config", "m/")
    s3_client.delete_object(Bucket="no-config", Key="m/config.json")
    with pytest.raises(StagingError, match=r"s3://no-config/m/ has no config.json"):
        S3Source("s3://no-config/m", "v1", client=s3_client).files()


# --- the command ------------------------------------------------------------------------------------------------


def test_the_command_stages_a_local_directory(bucket, snapshot, storage_client, capsys):
    code = staging_main(
        [
            "--source",
            str(snapshot),
            "--revision",
            "v1",
            "--bucket",
            bucket.name,
            "--model-id",
            "tiny-model",
            "--workers",
            "2",
        ],
        storage_client=storage_client,
    )
    assert code == 0 and manifest(bucket) is not None
    assert (
        staging_main(
            ["--source", str(snapshot), "--revision", "v1", "--bucket", bucket.name, "--model-id", "tiny-model"],
            storage_client=storage_client,
        )
        == 0
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--source", "org/tiny", "--revision", "main"], "is not a commit id"),
        (["--source", "https://example.com/m", "--revision", "v1"], "unsupported source"),
        (["--source", "s3://", "--revision", "v1"], "names no valid bucket"),
        (["--source", "org/tiny", "--revision", COMMIT, "--model-id", "../x"], "cannot name a folder"),
    ],
)
def test_the_command_refuses_bad_arguments_with_exit_code_2(argv, message, caplog):
    full = ["--bucket", "b", "--model-id", "tiny", *argv]
    assert staging_main(full, hf_api=object(), s3_client=object()) == 2
    assert message in caplog.text


def test_open_source_picks_the_source_kind(snapshot, s3_client):
    assert isinstance(open_source(str(snapshot), "v1"), LocalSource)
    assert isinstance(open_source("s3://weights/m", "v1", s3_client=s3_client), S3Source)
    assert isinstance(open_source("org/tiny", COMMIT, hf_api=object()), HuggingFaceSource)


# --- the local run's model store (python -m local_run <stack> --weights-store) --------------------------


def test_the_local_run_serves_models_read_back_from_a_store_after_the_manifest_check(snapshot, capsys):
    from local_run.store import serve_from_local_store

    store, served = serve_from_local_store({"tiny/model": snapshot})
    try:
        mount = served["tiny/model"]
        assert mount.name == "model" and mount.parent.name == "tiny"
        served_files = source_files(mount)
        assert json.loads(served_files.pop(MANIFEST_NAME))["revision"] == "local"
        assert served_files == source_files(snapshot)
        assert not (mount / "config.json").stat().st_mode & 0o222  # read-only, like the FUSE mount
        output = capsys.readouterr().out
        assert "staged tiny/model: 9 files" in output and f"weights ok: {mount}: 9 files, revision local" in output
        workdir, process = store.workdir, store.process
    finally:
        store.close()
    assert not workdir.exists() and process.poll() is not None
