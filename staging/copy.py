"""Copy a source into `gs://<bucket>/<model>/<revision>/`: parallel, verified, resumable, marked complete last.

For every file of the source:
1. look at the object already there: same size, the same source digest in its metadata, and the server's
   CRC32C equal to the one recorded when it was uploaded -> skip it; anything else -> (re)copy it;
2. fetch the file to scratch space, hash it once (SHA-256, CRC32C, git blob id), refuse it if it does not
   match the source's published digest;
3. upload it with a generation precondition (0 = "must not exist", or the generation of the corrupt object
   being replaced) so two stagers never overwrite each other blindly, then check the server's CRC32C.
Only when every file is in place and verified is the manifest written. A run that finds a corrupt object
under an existing manifest deletes the manifest first: nothing half-copied is ever marked complete.
Re-running is the resume: finished objects are skipped by step 1.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import hashlib
import json
import logging
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import google_crc32c
from google.api_core import exceptions as gcs_errors
from google.auth import exceptions as auth_errors

from staging.layout import MANIFEST_FORMAT, MANIFEST_NAME
from staging.sources import Source, SourceFile, StagingError, remove_fetched

log = logging.getLogger("staging")
READ_BLOCK = 8 * 1024 * 1024
UPLOAD_CHUNK = 64 * 1024 * 1024  # resumable-upload chunk; a failed chunk is retried, not the whole shard
META_SHA256 = "sha256"
META_CRC32C = "crc32c"
META_GIT_OID = "git-oid"
META_SOURCE = "source"
# Refused for now, maybe granted in a minute: IAM grants propagate "typically in 2 minutes, but could
# potentially take 7 minutes or longer" (https://cloud.google.com/iam/docs/access-change-propagation), and the
# in-cluster Job starts right after its bucket grant and its Workload Identity binding are created. GCS then
# answers 403, or the GKE metadata server refuses the token (google-auth raises RefreshError).
ACCESS_ERRORS = (gcs_errors.Forbidden, auth_errors.RefreshError)
ACCESS_RETRY_FIRST = 5.0  # seconds before the first retry; doubled each time, up to ACCESS_RETRY_MAX
ACCESS_RETRY_MAX = 60.0


@dataclass(frozen=True)
class Digests:
    sha256: str
    crc32c: str  # base64 of the big-endian CRC32C, as GCS reports it
    git_oid: str


@dataclass
class StagingResult:
    target: str
    files: int = 0
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # corrupt or different objects that were re-copied
    bytes_copied: int = 0
    manifest_written: bool = False


def file_digests(path: Path) -> Digests:
    """SHA-256, CRC32C and the git blob id of a file, in one read."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    crc = google_crc32c.Checksum()
    git = hashlib.sha1(b"blob " + str(size).encode() + b"\0")
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            sha256.update(block)
            crc.update(block)
            git.update(block)
    return Digests(sha256.hexdigest(), base64.b64encode(crc.digest()).decode(), git.hexdigest())


class Progress:
    """Bytes, rate and ETA in the log, once per finished file and at most every `interval` seconds."""

    def __init__(self, total_bytes: int, total_files: int, interval: float = 10.0):
        self.total_bytes, self.total_files, self.interval = total_bytes, total_files, interval
        self.done_bytes = self.done_files = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, size: int, path: str) -> None:
        with self._lock:
            self.done_bytes += size
            self.done_files += 1
            now = time.monotonic()
            if self.done_files < self.total_files and now - self._last < self.interval:
                return
            self._last = now
            log.info("%s", self.line(path, now))

    def line(self, path: str = "", now: Optional[float] = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-6)
        rate = self.done_bytes / elapsed
        left = self.total_bytes - self.done_bytes
        eta = f"{left / rate:.0f}s" if rate > 0 else "unknown"
        percent = 100.0 * self.done_bytes / self.total_bytes if self.total_bytes else 100.0
        return (f"copied {self.done_files}/{self.total_files} files, {_human(self.done_bytes)} of "
                f"{_human(self.total_bytes)} ({percent:.1f}%), {_human(rate)}/s, ETA {eta}"
                + (f" (last: {path})" if path else ""))


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{count:.0f} B"
        count /= 1024
    return f"{count:.1f} TiB"


class Stager:
    """Stages one `source` into `bucket` (a `google.cloud.storage.Bucket`) under `prefix` ("model/rev/")."""

    def __init__(self, source: Source, bucket: Any, prefix: str, *, workers: int = 8,
                 scratch: Optional[Path] = None, progress_interval: float = 10.0, access_wait: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        """`access_wait`: how many seconds a refused first access (403) is retried before giving up."""
        if not prefix.endswith("/"):
            prefix += "/"
        self.source, self.bucket, self.prefix = source, bucket, prefix
        self.workers = max(1, workers)
        self.scratch = scratch
        self.progress_interval = progress_interval
        self.access_wait, self._clock, self._sleep = max(0.0, access_wait), clock, sleep
        self.target = f"gs://{bucket.name}/{prefix}"

    # --- the run ---------------------------------------------------------------------------------------

    def run(self) -> StagingResult:
        self.check_writable()
        files = self.source.files()
        result = StagingResult(self.target, files=len(files))
        log.info("staging %s -> %s: %d files, %s", self.source.description, self.target, len(files),
                 _human(sum(file.size for file in files)))

        existing = self._in_parallel(self._existing_state, files)
        to_copy = [(file, state) for file, state in zip(files, existing) if state is not True]
        result.skipped = [file.path for file, state in zip(files, existing) if state is True]
        manifest = self.bucket.get_blob(self.prefix + MANIFEST_NAME)
        if manifest is not None and to_copy:
            # It says "complete" about objects that are not all there or not all right: withdraw it first.
            log.warning("manifest %s exists but %d object(s) are missing or wrong; removing it until the copy "
                        "is complete", self.target + MANIFEST_NAME, len(to_copy))
            self._delete(manifest)
            manifest = None
        log.info("%d file(s) already staged and verified, %d to copy (%s)", len(result.skipped), len(to_copy),
                 _human(sum(file.size for file, _ in to_copy)))

        progress = Progress(sum(file.size for file, _ in to_copy), len(to_copy), self.progress_interval)
        failures: list[str] = []
        with tempfile.TemporaryDirectory(prefix="staging-", dir=self.scratch) as scratch:
            with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
                futures = {pool.submit(self._copy_one, file, state, Path(scratch)): file for file, state in to_copy}
                for future in concurrent.futures.as_completed(futures):
                    file = futures[future]
                    try:
                        replaced = future.result()
                    except Exception as error:  # noqa: BLE001 - every failure is reported, none is fatal alone
                        failures.append(f"{file.path}: {error}")
                        log.error("failed: %s: %s", file.path, error)
                        continue
                    (result.replaced if replaced else result.copied).append(file.path)
                    result.bytes_copied += file.size
                    progress.add(file.size, file.path)
        if failures:
            raise StagingError(f"{len(failures)} of {len(files)} file(s) were not staged into {self.target}; "
                               f"no manifest written, re-run to resume:\n  " + "\n  ".join(sorted(failures)))

        result.manifest_written = self._write_manifest(files, manifest)
        log.info("done: %s complete; %d copied, %d replaced, %d skipped, %s transferred%s", self.target,
                 len(result.copied), len(result.replaced), len(result.skipped), _human(result.bytes_copied),
                 "" if result.manifest_written else " (manifest already up to date)")
        return result

    def check_writable(self) -> None:
        """Refuse an unwritable target up front, not after hours of downloading. A refusal (403) is retried
        for `access_wait` seconds, with backoff: a grant made just before the run may not have propagated."""
        probe = self.bucket.blob(f"{self.prefix}.write-probe-{uuid.uuid4().hex}")
        uploaded = False
        deadline = self._clock() + self.access_wait
        delay = ACCESS_RETRY_FIRST
        while True:
            try:
                if not uploaded:
                    probe.upload_from_string(b"", if_generation_match=0)
                    uploaded = True
                probe.delete()
                return
            except ACCESS_ERRORS as error:
                left = deadline - self._clock()
                if left <= 0:
                    raise self._unwritable(error, waited=self.access_wait) from None
                log.warning("no write access to %s yet (%s); IAM grants can take minutes to propagate: retrying "
                            "in %.0f s (giving up in %.0f s)", self.target, _first_line(error), min(delay, left),
                            left)
                self._sleep(min(delay, left))
                delay = min(delay * 2, ACCESS_RETRY_MAX)
            except gcs_errors.NotFound as error:
                if uploaded:  # the probe is gone already: a delete that was retried after it succeeded
                    return
                raise self._unwritable(error) from None
            except gcs_errors.GoogleAPICallError as error:
                raise self._unwritable(error) from None

    def _unwritable(self, error: Exception, waited: float = 0.0) -> StagingError:
        after = f" (still refused after {waited:.0f} s)" if waited else ""
        return StagingError(f"target {self.target} is not writable{after}: {_first_line(error)}; the staging "
                            f"identity needs roles/storage.objectUser on bucket {self.bucket.name}, which must "
                            f"exist")

    # --- one file ----------------------------------------------------------------------------------------

    def _existing_state(self, file: SourceFile) -> Any:
        """True when the object is there and verified; else None (absent) or the blob to replace."""
        blob = self.bucket.get_blob(self.prefix + file.path)
        if blob is None:
            return None
        if self._matches(blob, file):
            return True
        log.warning("object %s differs from the source or is corrupt (size %s, crc32c %s, recorded %s); "
                    "it will be replaced", self.target + file.path, blob.size, blob.crc32c,
                    (blob.metadata or {}).get(META_CRC32C))
        return blob

    @staticmethod
    def _matches(blob: Any, file: SourceFile, digests: Optional[Digests] = None) -> bool:
        metadata = blob.metadata or {}
        if blob.size != file.size or not blob.crc32c or metadata.get(META_CRC32C) != blob.crc32c:
            return False  # truncated, or the bytes on the server are not the bytes that were verified
        if digests is not None:
            return metadata.get(META_SHA256) == digests.sha256 and blob.crc32c == digests.crc32c
        if file.sha256:
            return metadata.get(META_SHA256) == file.sha256
        if file.git_oid:
            return metadata.get(META_GIT_OID) == file.git_oid
        return META_SHA256 in metadata  # a source without digests (local, plain S3): size + CRC32C

    def _copy_one(self, file: SourceFile, state: Any, scratch: Path) -> bool:
        """Fetch, verify, upload, check. Returns whether an existing object was replaced."""
        local = self.source.fetch(file, scratch)
        try:
            digests = file_digests(local)
            self._verify_source(file, local, digests)
            # Replacing needs the generation we looked at; a new object must not exist yet.
            generation = state.generation if state is not None else 0
            blob = self.bucket.blob(self.prefix + file.path, chunk_size=UPLOAD_CHUNK)
            blob.metadata = {META_SHA256: digests.sha256, META_CRC32C: digests.crc32c,
                             META_GIT_OID: digests.git_oid, META_SOURCE: self.source.description}
            try:
                blob.upload_from_filename(str(local), if_generation_match=generation, checksum="crc32c")
            except gcs_errors.PreconditionFailed:
                # Someone else wrote it meanwhile: accept theirs only if it is exactly these bytes.
                current = self.bucket.get_blob(blob.name)
                if current is not None and self._matches(current, file, digests):
                    return state is not None
                raise StagingError(f"{blob.name} changed while staging (generation precondition failed) and "
                                   f"does not match the source; re-run") from None
            uploaded = self.bucket.get_blob(blob.name)
            if uploaded is None or uploaded.crc32c != digests.crc32c or uploaded.size != file.size:
                raise StagingError(f"{blob.name}: the server's CRC32C/size "
                                   f"({getattr(uploaded, 'crc32c', None)}, {getattr(uploaded, 'size', None)}) "
                                   f"does not match the uploaded file ({digests.crc32c}, {file.size})")
            return state is not None
        finally:
            remove_fetched(local, scratch)

    @staticmethod
    def _verify_source(file: SourceFile, local: Path, digests: Digests) -> None:
        size = local.stat().st_size
        if size != file.size:
            raise StagingError(f"fetched {file.path} has {size} bytes; the source lists {file.size}")
        if file.sha256 and digests.sha256 != file.sha256:
            raise StagingError(f"fetched {file.path} has sha256 {digests.sha256}; the source publishes "
                               f"{file.sha256}")
        if file.git_oid and digests.git_oid != file.git_oid:
            raise StagingError(f"fetched {file.path} has git blob id {digests.git_oid}; the source publishes "
                               f"{file.git_oid}")

    # --- the manifest ------------------------------------------------------------------------------------

    def _write_manifest(self, files: list[SourceFile], existing: Any) -> bool:
        entries = []
        for file in files:
            blob = self.bucket.get_blob(self.prefix + file.path)
            if blob is None or not self._matches(blob, file):
                raise StagingError(f"{self.target}{file.path} is missing or wrong after the copy; no manifest "
                                   f"written")
            entries.append({"path": file.path, "size": file.size, "sha256": blob.metadata[META_SHA256],
                            "crc32c": blob.crc32c})
        body = {"format": MANIFEST_FORMAT, "source": self.source.description, "revision": self.source.revision,
                "files": entries, "total_bytes": sum(file.size for file in files)}
        if existing is not None:
            try:
                if json.loads(existing.download_as_bytes()).get("files") == entries:
                    return False
            except ValueError:
                pass
        body["completed_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        blob = self.bucket.blob(self.prefix + MANIFEST_NAME)
        blob.upload_from_string(json.dumps(body, indent=1, sort_keys=True), content_type="application/json",
                                if_generation_match=existing.generation if existing is not None else 0,
                                checksum="crc32c")
        return True

    # --- helpers -----------------------------------------------------------------------------------------

    def _delete(self, blob: Any) -> None:
        try:
            blob.delete(if_generation_match=blob.generation)
        except gcs_errors.NotFound:
            pass

    def _in_parallel(self, function, items: list) -> list:
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(function, items))
