"""`python -m staging`: copy a model into the stack's GCS model store.

    python -m staging --source deepseek-ai/DeepSeek-R1 --revision <40-char commit> \\
        --bucket <model store bucket> --model-id deepseek-r1
    python -m staging --source ./my-model --revision v1 --bucket <bucket> --model-id my-model
    python -m staging --source s3://weights/deepseek-r1/ --revision 2026-11 --bucket <bucket> --model-id deepseek-r1

The target is gs://<bucket>/<model id>/<revision>/, the path the serving pods mount. Credentials: Google
application-default credentials (Workload Identity in the cluster), HF_TOKEN for gated repos, boto3's
chain for S3 (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional --s3-endpoint-url). Exit codes: 0 done,
1 staging failed (nothing marked complete; re-run to resume), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional

from staging.layout import model_prefix
from staging.sources import DEFAULT_EXCLUDES, StagingError, open_source


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m staging", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--source", required=True,
                        help="Hugging Face repo id, local directory (with config.json) or s3://bucket/prefix")
    parser.add_argument("--revision", required=True,
                        help="HF: the 40-character commit; local/S3: a label naming the store folder")
    parser.add_argument("--bucket", required=True, help="the model store bucket (pulumi stack output)")
    parser.add_argument("--model-id", required=True, help="the model's id in the stack config (its folder)")
    parser.add_argument("--project", default=os.environ.get("GOOGLE_CLOUD_PROJECT"),
                        help="GCP project for the storage client (default: GOOGLE_CLOUD_PROJECT or ADC's)")
    parser.add_argument("--workers", type=int, default=8, help="files in flight (default 8)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="where fetched files wait for upload (workers x largest file; default: TMPDIR)")
    parser.add_argument("--exclude", action="append", default=None, metavar="GLOB",
                        help=f"skip matching files (repeatable; default {', '.join(DEFAULT_EXCLUDES)})")
    parser.add_argument("--s3-endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"),
                        help="an S3-compatible endpoint (default: AWS_ENDPOINT_URL, else AWS)")
    parser.add_argument("--progress-seconds", type=float, default=10.0, help="progress log interval")
    parser.add_argument("--access-wait-seconds", type=float, default=0.0,
                        help="retry a refused (403) first access to the bucket for this long, for a grant made "
                             "just before the run (IAM takes minutes to propagate; default 0: fail at once)")
    return parser


def main(argv: Optional[list[str]] = None, *, storage_client=None, hf_api=None, s3_client=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    log = logging.getLogger("staging")
    try:
        prefix = model_prefix(args.model_id, args.revision)
        source = open_source(args.source, args.revision, hf_api=hf_api, s3_client=s3_client,
                             s3_endpoint_url=args.s3_endpoint_url,
                             excludes=tuple(args.exclude) if args.exclude else DEFAULT_EXCLUDES)
    except (ValueError, StagingError) as error:
        log.error("%s", error)
        return 2
    from staging.copy import Stager

    if storage_client is None:
        import google.auth.exceptions
        from google.cloud import storage

        try:
            storage_client = storage.Client(project=args.project)
        except google.auth.exceptions.GoogleAuthError as error:
            log.error("no Google Cloud credentials to write gs://%s (%s); run `gcloud auth application-default "
                      "login` (with write access to the bucket), or let the in-cluster staging Job do it", args.bucket,
                      error)
            return 2
    try:
        Stager(source, storage_client.bucket(args.bucket), prefix, workers=args.workers, scratch=args.scratch,
               progress_interval=args.progress_seconds, access_wait=args.access_wait_seconds).run()
    except StagingError as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
