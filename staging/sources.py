"""Where weights come from: a Hugging Face repo at a commit, a local directory, or an S3(-compatible) prefix.

Each source lists its files with what it knows about them (size, and a digest where the source publishes
one) and fetches one file to a local path. The copier (staging/copy.py) does the verifying: a file whose
bytes do not match the source's own digest is never uploaded.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Protocol

from staging.layout import HF_COMMIT, split_uri


class StagingError(Exception):
    """A problem that stops staging, with a message meant for the operator."""


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative, "/"-separated
    size: int
    sha256: Optional[str] = None  # hex, when the source publishes it (HF LFS files, S3 full-object checksums)
    git_oid: Optional[str] = None  # HF non-LFS files: the git blob id


class Source(Protocol):
    description: str
    revision: str

    def files(self) -> list[SourceFile]: ...

    def fetch(self, file: SourceFile, scratch: Path) -> Path:
        """A local path holding the file's bytes (inside `scratch` unless the source is already local)."""
        ...


DEFAULT_EXCLUDES = (".gitattributes",)


def _excluded(path: str, excludes: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in excludes)


class HuggingFaceSource:
    """A Hub repo at one commit. `api` is an `huggingface_hub.HfApi` (tests inject a fake with the same two
    methods, `list_repo_tree` and `hf_hub_download`)."""

    def __init__(self, repo_id: str, revision: str, *, api: Any = None, token: Optional[str] = None,
                 excludes: Iterable[str] = DEFAULT_EXCLUDES):
        if not HF_COMMIT.fullmatch(revision):
            raise StagingError(f"revision {revision!r} of {repo_id} is not a commit id; pin a 40-character "
                               f"commit (HfApi().model_info({repo_id!r}).sha) so the store path never changes "
                               f"content")
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        self.api = api
        self.repo_id = repo_id
        self.revision = revision
        self.excludes = tuple(excludes)
        self.description = f"hf://{repo_id}@{revision}"

    def files(self) -> list[SourceFile]:
        listed = []
        for entry in self.api.list_repo_tree(self.repo_id, recursive=True, revision=self.revision,
                                             repo_type="model"):
            if not hasattr(entry, "size") or entry.size is None or _excluded(entry.path, self.excludes):
                continue  # a folder, or excluded
            lfs = getattr(entry, "lfs", None)
            sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
            listed.append(SourceFile(entry.path, int(entry.size), sha256=sha256,
                                     git_oid=None if sha256 else getattr(entry, "blob_id", None)))
        if not listed:
            raise StagingError(f"{self.description} lists no files")
        return sorted(listed, key=lambda file: file.path)

    def fetch(self, file: SourceFile, scratch: Path) -> Path:
        return Path(self.api.hf_hub_download(self.repo_id, file.path, revision=self.revision,
                                             repo_type="model", local_dir=str(scratch)))


class LocalSource:
    """A directory holding a model snapshot (it must have a config.json)."""

    def __init__(self, directory: str | os.PathLike, revision: str, *, excludes: Iterable[str] = DEFAULT_EXCLUDES):
        self.root = Path(directory).resolve()
        if not self.root.is_dir():
            raise StagingError(f"local source {str(directory)!r} is not a directory")
        if not (self.root / "config.json").is_file():
            raise StagingError(f"local source {str(self.root)!r} has no config.json; allowed: a model snapshot "
                               f"directory (config.json, *.safetensors, tokenizer files)")
        self.revision = revision
        self.excludes = tuple(excludes)
        self.description = f"file://{self.root}"

    def files(self) -> list[SourceFile]:
        listed = []
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root).as_posix()
            if not path.is_file() or relative.startswith(".cache/") or _excluded(relative, self.excludes):
                continue  # folders, huggingface_hub's download metadata, excluded files
            # Hashed here so that a changed file of the same size is not mistaken for the staged one.
            listed.append(SourceFile(relative, path.stat().st_size, sha256=_sha256_of(path)))
        return listed

    def fetch(self, file: SourceFile, scratch: Path) -> Path:
        return self.root / file.path


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


class S3Source:
    """`s3://bucket/prefix` on AWS or any S3-compatible store (`endpoint_url`). Credentials come from
    boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the Job, from a Kubernetes Secret)."""

    def __init__(self, uri: str, revision: str, *, client: Any = None, endpoint_url: Optional[str] = None,
                 excludes: Iterable[str] = DEFAULT_EXCLUDES):
        try:
            self.bucket, prefix = split_uri(uri, "s3")
        except ValueError as error:
            raise StagingError(str(error)) from None
        self.prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url or None)
        self.client = client
        self.revision = revision
        self.excludes = tuple(excludes)
        self.description = f"s3://{self.bucket}/{self.prefix}"

    def files(self) -> list[SourceFile]:
        listed = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(self.prefix):]
                if not relative or relative.endswith("/") or _excluded(relative, self.excludes):
                    continue
                listed.append(SourceFile(relative, int(item["Size"]), sha256=self._sha256(item["Key"])))
        if not any(file.path == "config.json" for file in listed):
            raise StagingError(f"{self.description} has no config.json; allowed: the prefix of a model snapshot")
        return sorted(listed, key=lambda file: file.path)

    def _sha256(self, key: str) -> Optional[str]:
        """The object's full-object SHA-256 when it was uploaded with one (multipart composites end in -N)."""
        head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        value = head.get("ChecksumSHA256")
        if not value or "-" in value or head.get("ChecksumType") == "COMPOSITE":
            return None
        return base64.b64decode(value).hex()

    def fetch(self, file: SourceFile, scratch: Path) -> Path:
        target = scratch / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self.prefix + file.path, str(target))
        return target


def open_source(source: str, revision: Optional[str], *, hf_api: Any = None, s3_client: Any = None,
                s3_endpoint_url: Optional[str] = None, excludes: Iterable[str] = DEFAULT_EXCLUDES) -> Source:
    """The source named by `source`: `s3://...`, an existing local path, or a Hugging Face repo id."""
    if source.startswith("s3://"):
        if not revision:
            raise StagingError(f"an S3 source needs --revision (a label such as v1 or a date) to name its folder")
        return S3Source(source, revision, client=s3_client, endpoint_url=s3_endpoint_url, excludes=excludes)
    if source.startswith(("/", "./", "../")) or Path(source).exists():
        if not revision:
            raise StagingError("a local source needs --revision (a label such as v1) to name its folder")
        return LocalSource(source, revision, excludes=excludes)
    if "://" in source:
        raise StagingError(f"unsupported source {source!r}; allowed: a Hugging Face repo id, a local directory, "
                           f"or s3://bucket/prefix")
    if not revision:
        raise StagingError(f"a Hugging Face source needs --revision: the 40-character commit to stage")
    return HuggingFaceSource(source, revision, api=hf_api, excludes=excludes)


def remove_fetched(path: Path, scratch: Path) -> None:
    """Delete a fetched copy (never a local source's own file)."""
    try:
        path.relative_to(scratch)
    except ValueError:
        return
    path.unlink(missing_ok=True)
