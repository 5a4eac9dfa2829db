"""The model store: one GCS bucket per stack for staged weights, and the two identities that use it.

- the bucket sits in the GPU pool's region, with uniform bucket-level access, public access prevention
  enforced and a hierarchical namespace (real folders: faster GCS FUSE listings); force-destroy only when the
  stack asks for it (refused on protected stacks by infra/config/sections/weights.py); soft delete as
  `modelStoreSoftDeleteDays` says (off by default);
- a read-only Google service account for the Ray pods: `roles/storage.objectViewer` on the bucket (plus
  `roles/storage.bucketViewer` when a model uses the RunAI streamer, whose GCS client calls buckets.get),
  bound through Workload Identity to the Kubernetes service account every Ray pod runs as;
- a separate writer for the staging Job: `roles/storage.objectUser` on this bucket only (create, read and
  replace objects; replacing a corrupt object needs delete), bound to the stager's Kubernetes service account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components.resources import BUCKET_IAM_MEMBER, GcpResource, GcsBucket, grant_name, service_account_member
from infra.config.gcp_rules import stack_slug
from infra.config.settings import ModelStoreConfig
from infra.render.weights import gsa_email

READER_ROLES = ("roles/storage.objectViewer",)
RUNAI_READER_ROLES = ("roles/storage.bucketViewer",)
WRITER_ROLES = ("roles/storage.objectUser",)


def store_account_ids(stack: str) -> tuple[str, str]:
    """The reader's and the writer's service-account ids (6-30 characters), unique per stack in a project."""
    reader, writer = (f"llm-weights-{kind}-{stack_slug(stack)}"[:30].rstrip("-") for kind in ("ro", "rw"))
    return reader, writer


def store_emails(stack: str, gcp_project: str) -> tuple[str, str]:
    reader, writer = store_account_ids(stack)
    return gsa_email(reader, gcp_project), gsa_email(writer, gcp_project)


def workload_identity_member(gcp_project: str, namespace: str, service_account: str) -> str:
    return f"serviceAccount:{gcp_project}.svc.id.goog[{namespace}/{service_account}]"


@dataclass(frozen=True)
class ModelStoreArgs:
    store: ModelStoreConfig
    gcp_project: str
    stack: str
    namespace: str
    ray_service_account: str  # the Kubernetes service account of the Ray pods
    stager_service_account: str  # the Kubernetes service account of the staging Job
    runai_streamer: bool = False


class ModelStore(pulumi.ComponentResource):
    bucket: GcsBucket
    reader: gcp.serviceaccount.Account
    writer: gcp.serviceaccount.Account
    grants: list[pulumi.Resource]

    def __init__(self, name: str, args: ModelStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmserve:gcp:ModelStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        store = args.store
        # Registered by type token: importing pulumi_gcp.storage would cost the offline plan 0.3 s.
        self.bucket = GcsBucket(
            name,
            {
                "name": store.bucket,
                "location": store.location.upper(),
                "uniformBucketLevelAccess": True,
                "publicAccessPrevention": "enforced",
                "hierarchicalNamespace": {"enabled": True},
                "forceDestroy": store.force_destroy,
                # Said explicitly: left out, Google keeps every deleted or replaced object 7 days, billed.
                "softDeletePolicy": {"retentionDurationSeconds": store.soft_delete_days * 86400},
                "labels": {"app": "llmserve", "stack": re.sub(r"[^a-z0-9_-]", "-", args.stack.lower())[:63]},
            },
            child,
        )
        reader_id, writer_id = store_account_ids(args.stack)
        self.reader = gcp.serviceaccount.Account(
            f"{name}-reader",
            account_id=reader_id,
            display_name=f"llmserve {args.stack}: Ray pods read the model store",
            opts=child,
        )
        self.writer = gcp.serviceaccount.Account(
            f"{name}-writer",
            account_id=writer_id,
            display_name=f"llmserve {args.stack}: staging writes the model store",
            opts=child,
        )

        reader_roles = READER_ROLES + (RUNAI_READER_ROLES if args.runai_streamer else ())
        self.grants = []
        for account, roles, ksa, kind in (
            (self.reader, reader_roles, args.ray_service_account, "reader"),
            (self.writer, WRITER_ROLES, args.stager_service_account, "writer"),
        ):
            member = service_account_member(account.email)
            for role in roles:
                self.grants.append(
                    GcpResource(
                        BUCKET_IAM_MEMBER,
                        grant_name(f"{name}-{kind}", role),
                        {"bucket": self.bucket.name, "role": role, "member": member},
                        child,
                    )
                )
            self.grants.append(
                gcp.serviceaccount.IAMMember(
                    f"{name}-{kind}-workload-identity",
                    service_account_id=account.name,
                    role="roles/iam.workloadIdentityUser",
                    member=workload_identity_member(args.gcp_project, args.namespace, ksa),
                    opts=child,
                )
            )
        self.register_outputs({"bucket": self.bucket.name, "reader": self.reader.email, "writer": self.writer.email})
