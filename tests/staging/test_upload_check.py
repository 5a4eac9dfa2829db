"""The check after each upload: the object the server stored must have the uploaded file's CRC32C and size.

Against the GCS emulator (tests/staging/conftest.py). The upload is made to store other bytes than the
verified file (what a corrupting proxy or a client bug would do), with the verified file's digests in its
metadata: the copy must refuse that object by name, right after its upload, and write no manifest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from staging.copy import Stager
from staging.layout import MANIFEST_NAME, model_prefix
from staging.sources import LocalSource, StagingError

SHARD = "model-00002-of-00004.safetensors"
DAMAGES = {
    "a-flipped-byte": lambda data: data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],
    "one-byte-short": lambda data: data[:-1],
}


def test_an_upload_whose_stored_object_differs_is_refused_and_no_manifest_is_written(
    bucket, snapshot, scratch, tmp_path, monkeypatch
):
    from google.cloud.storage import Blob

    upload = Blob.upload_from_filename
    for damage, damaged in DAMAGES.items():  # one test, one bucket: the fixture names buckets after the test
        prefix = model_prefix(f"tiny-{damage}", "v1")

        def storing_other_bytes(self, filename, *args, _prefix=prefix, _damaged=damaged, **kwargs):
            if self.name == _prefix + SHARD:
                other = tmp_path / "stored-instead"
                other.write_bytes(_damaged(Path(filename).read_bytes()))
                filename = str(other)
            return upload(self, filename, *args, **kwargs)

        monkeypatch.setattr(Blob, "upload_from_filename", storing_other_bytes)
        with pytest.raises(StagingError) as raised:
            Stager(LocalSource(snapshot, "v1"), bucket, prefix, workers=3, scratch=scratch).run()

        message = str(raised.value)
        assert "1 of 9 file(s) were not staged" in message and "no manifest written" in message, (damage, message)
        assert f"{prefix}{SHARD}: the server's CRC32C/size" in message, (damage, message)
        assert "does not match the uploaded file" in message, (damage, message)
        assert bucket.get_blob(prefix + MANIFEST_NAME) is None, damage
        stored = bucket.get_blob(prefix + SHARD)
        assert stored.crc32c != stored.metadata["crc32c"], f"{damage}: the emulator stored the other bytes"
