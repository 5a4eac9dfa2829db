"""Staging: copy a model's weights once into the stack's GCS model store, verified, resumable, marked complete.

Runs where the bandwidth is: as the in-cluster Job that `pulumi up` creates
(infra/components/weight_staging.py), or by hand with `python -m staging` for a local directory or a small
model. It needs huggingface_hub, google-cloud-storage and boto3 (requirements/staging.txt); the Pulumi
program never imports this package
except `staging.layout`, which is standard library only.
"""
