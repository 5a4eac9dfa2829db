"""The model store on one machine, for `python -m local_run <stack> --weights-store`.

Starts `gcp-storage-emulator` on 127.0.0.1, stages each model directory into it with the real stager, and
gives back a read-only copy of the staged folder, fetched from the store, to serve from: the stand-in for the
GCS FUSE mount the GPU workers get. What the cluster does before serving (the manifest check) runs on it
too, so the local run exercises staging, the manifest and serving from the store's bytes. Needs
google-cloud-storage and gcp-storage-emulator (in requirements/local.txt).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from staging.layout import model_prefix
from staging.sources import LocalSource, StagingError

if TYPE_CHECKING:
    from google.cloud import storage

BUCKET = "llmserve-local-models"
REVISION = "local"


class LocalModelStore:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.process: subprocess.Popen | None = None
        self._previous_host: str | None = None
        self.bucket: storage.Bucket | None = None  # made by start()

    def start(self) -> LocalModelStore:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        binary = Path(sys.executable).parent / "gcp-storage-emulator"
        command = [
            str(binary) if binary.exists() else shutil.which("gcp-storage-emulator") or "gcp-storage-emulator",
            "start",
            "--host=127.0.0.1",
            f"--port={port}",
            "--in-memory",
        ]
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "gcs-emulator.log").open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    # The refused connection is only the symptom; the emulator's log says why it is not up.
                    raise StagingError(f"the GCS emulator did not start on 127.0.0.1:{port}") from None
                time.sleep(0.05)
        self._previous_host = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
        client = storage.Client(project="llmserve-local", credentials=AnonymousCredentials())
        self.bucket = client.create_bucket(BUCKET)
        return self

    def stage(self, model_id: str, directory: Path) -> Path:
        """Stage `directory` as `gs://<bucket>/<model_id>/local/` and return a read-only copy fetched back."""
        from staging.copy import Stager

        if self.bucket is None:
            raise StagingError("the local model store is not started: call start() before stage()")
        bucket = self.bucket
        prefix = model_prefix(model_id, REVISION)
        logging.getLogger("staging").setLevel(logging.WARNING)  # the local run prints its own summary
        result = Stager(LocalSource(directory, REVISION), bucket, prefix, workers=4, scratch=self.workdir).run()
        mount = self.workdir / "mnt" / "models" / model_id
        for blob in bucket.client.list_blobs(bucket.name, prefix=prefix):
            target = mount / blob.name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
            target.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        print(
            f"staged {model_id}: {result.files} files, {result.bytes_copied} bytes into "
            f"gs://{bucket.name}/{prefix} (emulator); serving from {mount}",
            flush=True,
        )
        return mount

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._previous_host is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = self._previous_host
        for path in sorted(self.workdir.rglob("*"), reverse=True):
            if path.is_file():
                path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        shutil.rmtree(self.workdir, ignore_errors=True)
