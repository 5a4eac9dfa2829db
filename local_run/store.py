"""`--weights-store`: the tiny models staged into a GCS emulator by the real stager and served from the copy read
back from it, after the same manifest check the GPU workers run (the local stand-in for weightSource gcsfuse)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from infra.render.weights import MANIFEST_CHECK_FILE
from local_run.errors import LocalRunError
from staging.local_store import LocalModelStore
from staging.sources import StagingError


def serve_from_local_store(model_paths: Mapping[str, Path]) -> tuple[LocalModelStore, dict[str, Path]]:
    """Stage each tiny model into a local GCS emulator and return the store with the paths to serve from:
    the copies read back from it, each passing the same manifest check the GPU workers run."""
    store = LocalModelStore(Path(tempfile.mkdtemp(prefix="llmserve-store-")))
    try:
        store.start()
        served = {model_id: store.stage(model_id, path) for model_id, path in model_paths.items()}
        check = subprocess.run(
            [sys.executable, str(MANIFEST_CHECK_FILE), *map(str, served.values())], capture_output=True, text=True
        )
        print(check.stdout + check.stderr, end="", flush=True)
        if check.returncode != 0:
            raise LocalRunError("the staged models failed the manifest check", exit_code=1)
    except (StagingError, LocalRunError, OSError) as error:
        store.close()
        raise LocalRunError(f"--weights-store: {error}", exit_code=1) from error
    return store, served
