"""Where a model lives in the model store; shared by the staging code and the Pulumi program.

Standard library only: infra/ imports this module, and `pulumi up` must not need the staging libraries.

    gs://<bucket>/<model id>/<revision>/<files of the snapshot>
    gs://<bucket>/<model id>/<revision>/.manifest.json     written last; the only mark of a complete copy
"""

from __future__ import annotations

import re

MANIFEST_NAME = ".manifest.json"
MANIFEST_FORMAT = 1
# A Hugging Face revision the store accepts: a full commit id, so a path never changes its content.
HF_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# A revision label for other sources (S3, local): one path segment.
REVISION_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MODEL_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


def model_prefix(model_id: str, revision: str) -> str:
    """The object-name prefix of one model revision, with a trailing slash."""
    if not _MODEL_PATH.fullmatch(model_id) or "//" in model_id or model_id.endswith("/") or ".." in model_id:
        raise ValueError(f"model id {model_id!r} cannot name a folder in the model store; allowed: letters, "
                         f"digits, '.', '_', '-', '/' (no empty or '..' segments)")
    if not REVISION_LABEL.fullmatch(revision):
        raise ValueError(f"revision {revision!r} cannot name a folder in the model store; allowed: a commit id "
                         f"or a label of letters, digits, '.', '_', '-'")
    return f"{model_id}/{revision}/"



def split_uri(uri: str, scheme: str) -> tuple[str, str]:
    """`scheme://bucket/prefix` -> (bucket, prefix without leading slash); ValueError without a bucket."""
    head = f"{scheme}://"
    if not uri.startswith(head):
        raise ValueError(f"expected a {head} URI; found {uri!r}")
    rest = uri[len(head):]
    bucket, _, prefix = rest.partition("/")
    if not bucket or not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]", bucket):
        raise ValueError(f"{uri!r} names no valid bucket; allowed: {head}<bucket>/<prefix>")
    return bucket, prefix.lstrip("/")
