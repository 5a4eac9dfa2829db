"""The model store, its identities and the staging runner in the offline plans of the three stacks."""

from __future__ import annotations

import pytest
import yaml

from infra.cli.plan import kubernetes_manifests
from serve_app.builder import model_llm_configs

COMMIT = "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_model_store_is_a_private_regional_bucket(stack, planned):
    bucket = planned(stack).only("gcp:storage/bucket:Bucket", "llm-models").inputs
    assert bucket["name"] == f"my-gcp-project-{stack}-models" and bucket["location"] == "US-EAST4"
    assert bucket["uniformBucketLevelAccess"] is True and bucket["publicAccessPrevention"] == "enforced"
    assert bucket["forceDestroy"] is False and bucket["hierarchicalNamespace"] == {"enabled": True}
    # Said explicitly, off: unset, Cloud Storage bills a deleted or replaced object 7 more days (604800 s).
    assert bucket["softDeletePolicy"] == {"retentionDurationSeconds": 0}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_a_read_only_identity_for_the_ray_pods_and_a_writer_for_staging(stack, planned):
    reader = f"llm-weights-ro-{stack}@my-gcp-project.iam.gserviceaccount.com"
    writer = f"llm-weights-rw-{stack}@my-gcp-project.iam.gserviceaccount.com"
    grants = {
        (r.inputs["role"], r.inputs["member"])
        for r in planned(stack).of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    }
    assert grants == {
        ("roles/storage.objectViewer", f"serviceAccount:{reader}"),
        ("roles/storage.objectUser", f"serviceAccount:{writer}"),
    }
    bindings = {
        (r.inputs["serviceAccountId"], r.inputs["member"])
        for r in planned(stack).of_type("gcp:serviceaccount/iAMMember:IAMMember")
    }
    assert bindings == {
        (f"projects/my-gcp-project/serviceAccounts/{reader}", "serviceAccount:my-gcp-project.svc.id.goog[llm/llm-ray]"),
        (
            f"projects/my-gcp-project/serviceAccounts/{writer}",
            "serviceAccount:my-gcp-project.svc.id.goog[llm/llm-weights-stager]",
        ),
    }
    assert {r.inputs["role"] for r in planned(stack).of_type("gcp:serviceaccount/iAMMember:IAMMember")} == {
        "roles/iam.workloadIdentityUser"
    }
    manifests = {(m["kind"], m["metadata"]["name"]): m for m in planned(stack).manifests()}
    assert manifests[("ServiceAccount", "llm-ray")]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": reader
    }
    assert manifests[("ServiceAccount", "llm-weights-stager")]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": writer
    }


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_rayservice_waits_for_the_staging_job_which_waits_for_its_grants(
    stack, planned, assert_valid_kubernetes_object
):
    (job,) = planned(stack).of_type("kubernetes:batch/v1:Job")
    assert job.inputs["spec"]["template"]["spec"]["containers"][0]["args"][:4] == [
        "--source",
        "deepseek-ai/DeepSeek-R1",
        "--revision",
        COMMIT,
    ]
    # Pulumi outwaits the Job's own deadline (180 min), so that the Job, not Pulumi, gives up first: a Job that
    # Pulumi stopped waiting on while it ran would be replaced, mid-copy, by the next `pulumi up`.
    assert job.inputs["spec"]["activeDeadlineSeconds"] == 180 * 60
    assert job.options["customTimeouts"] == {"create": "190m", "update": "190m"}
    assert job.inputs["metadata"]["annotations"] == {"pulumi.com/replaceUnready": "true"}
    assert {
        "llm-models-writer-storage-objectUser",
        "llm-models-writer-workload-identity",
        "llm-weights-stager-ksa",
    } <= set(job.options["dependencies"])
    rayservice = planned(stack).only("kubernetes:ray.io/v1:RayService", "llm-serve-rayservice")
    # Depending on the component is depending on its children: the Job (awaited to completion) and the KSA.
    assert {"llm-weights-job-deepseek-r1", "llm-weights-ray-ksa"} <= set(rayservice.options["dependencies"])
    assert job.parent == "llm-weights"
    assert_valid_kubernetes_object(kubernetes_manifests([job])[0], f"{stack} staging Job")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_gpu_workers_mount_the_staged_revision_and_serve_it(stack, planned):
    (service,) = [m for m in planned(stack).manifests() if m["kind"] == "RayService"]
    cluster = service["spec"]["rayClusterConfig"]
    assert "serviceAccountName" not in cluster["headGroupSpec"]["template"]["spec"]  # KubeRay's own, for RBAC
    assert {g["template"]["spec"]["serviceAccountName"] for g in cluster["workerGroupSpecs"]} == {"llm-ray"}
    (gpu,) = [g for g in cluster["workerGroupSpecs"] if g["groupName"] == "h100-x16"]
    template = gpu["template"]
    assert template["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
    (volume,) = [v for v in template["spec"]["volumes"] if "csi" in v]
    assert volume["csi"]["volumeAttributes"]["bucketName"] == f"my-gcp-project-{stack}-models"
    assert f"only-dir=deepseek-r1/{COMMIT}" in volume["csi"]["volumeAttributes"]["mountOptions"]
    env = {item["name"] for item in template["spec"]["containers"][0]["env"]}
    assert "HF_HUB_ENABLE_HF_TRANSFER" not in env
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    (r1,) = model_llm_configs(serve)
    assert r1["model_loading_config"]["model_source"] == "/mnt/models/deepseek-r1"
    # Served from the store: the Hub is off, and its download settings are gone.
    assert r1["runtime_env"]["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert "HF_XET_HIGH_PERFORMANCE" not in r1["runtime_env"]["env_vars"]


def test_dev_downloads_from_the_hub_and_creates_no_store(planned):
    dev = planned("dev")
    assert dev.of_type("gcp:storage/bucket:Bucket") == [] and dev.of_type("kubernetes:batch/v1:Job") == []
    assert dev.of_type("kubernetes:v1:ServiceAccount") == []
    (service,) = [m for m in dev.manifests() if m["kind"] == "RayService"]
    assert "serviceAccountName" not in service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]


def test_the_pulumi_program_needs_none_of_the_staging_libraries():
    """`pulumi up` runs on a laptop with requirements.txt only: planning a stack with a staged model imports
    neither the staging libraries nor the staging code that uses them (only the pure `staging.layout`), nor
    pulumi_gcp's storage module (the bucket is registered by type token)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    probe = (
        "import sys; from infra.cli.plan import make_plan; make_plan('prod'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'huggingface_hub') "
        "or m.startswith(('google.cloud.storage', 'google_crc32c', 'staging.copy', 'staging.sources')) "
        "or m == 'staging.__main__' "
        # infra/components/resources.py: the storage SDK module alone costs the plan 0.3 s (pulumi_gcp lists
        # the package itself lazily, so its modules are what an import would load).
        "or m.startswith('pulumi_gcp.storage.')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_stack_with_the_streamer_and_an_s3_source_plans_its_grants_secret_and_jobs(tmp_path):
    """A copy of prod with R1 on the RunAI streamer (declared image) and a second model staged from S3 with
    encrypted S3 keys."""
    import json
    import shutil

    from infra.cli.main import main
    from infra.cli.plan import PROJECT_ROOT

    stack = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())["config"]
    r1 = stack["llmserve:models"][0]
    stack["llmserve:models"] = [
        {**r1, "weightSource": "runai-streamer"},
        {
            **r1,
            "id": "r1-team",
            "source": "s3://team-weights/deepseek-r1",
            "revision": "2026-11",
            "preset": "deepseek-r1",
        },
    ]
    stack.update(
        {
            "llmserve:gpuNodeCount": 4,
            "llmserve:rayImage": "example/ray-llm-runai:2.60.0",
            "llmserve:rayImageHasRunaiStreamer": True,
            "llmserve:s3EndpointUrl": "https://s3.example.com",
            "llmserve:s3AccessKeyId": {"secure": "v1:AAAAid"},
            "llmserve:s3SecretAccessKey": {"secure": "v1:AAAAkey"},
            "llmserve:modelStoreSoftDeleteDays": 30,
        }
    )
    work = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, work, ignore=shutil.ignore_patterns(".venv*", "build", ".git", "__pycache__"))
    (work / "Pulumi.mixed.yaml").write_text(yaml.safe_dump({"config": stack}))
    assert main(["plan", "mixed", "--out", str(tmp_path / "out")], root=work) == 0
    resources = json.loads((tmp_path / "out" / "resources.json").read_text())

    roles = {
        (r["inputs"]["role"], r["inputs"]["member"].split("@")[0])
        for r in resources
        if r["type"] == "gcp:storage/bucketIAMMember:BucketIAMMember"
    }
    assert ("roles/storage.bucketViewer", "serviceAccount:llm-weights-ro-mixed") in roles  # the streamer's buckets.get
    bucket = next(r for r in resources if r["type"] == "gcp:storage/bucket:Bucket")
    assert bucket["inputs"]["softDeletePolicy"] == {"retentionDurationSeconds": 2592000}  # 30 days
    secret = next(r for r in resources if r["name"] == "llm-weights-s3-credentials")
    assert secret["inputs"]["stringData"] == {"AWS_ACCESS_KEY_ID": "[secret]", "AWS_SECRET_ACCESS_KEY": "[secret]"}
    jobs = {
        r["inputs"]["spec"]["template"]["spec"]["containers"][0]["args"][1]: r
        for r in resources
        if r["type"] == "kubernetes:batch/v1:Job"
    }
    assert sorted(jobs) == ["deepseek-ai/DeepSeek-R1", "s3://team-weights/deepseek-r1"]
    env = {
        e["name"]: e
        for e in jobs["s3://team-weights/deepseek-r1"]["inputs"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "llm-s3-credentials"
    service = next(r for r in resources if r["type"] == "kubernetes:ray.io/v1:RayService")
    serve = yaml.safe_load(service["inputs"]["spec"]["serveConfigV2"])
    sources = {
        c["model_loading_config"]["model_id"]: c["model_loading_config"]["model_source"]
        for c in model_llm_configs(serve)
    }
    assert sources == {
        "deepseek-r1": {"bucket_uri": f"gs://my-gcp-project-mixed-models/deepseek-r1/{COMMIT}"},
        "r1-team": "/mnt/models/r1-team",
    }


def test_the_bucket_registered_by_type_token_carries_the_typed_resources_spelling(planned):
    """infra/components/resources.py registers the bucket and its grants without pulumi_gcp.storage: the inputs must
    be the camelCase names the typed `gcp.storage.Bucket` / `BucketIAMMember` send, or the provider would
    ignore them."""
    import pulumi_gcp as gcp

    from infra.components.resources import BUCKET, BUCKET_IAM_MEMBER

    [bucket] = planned("prod").of_type(BUCKET)
    typed = gcp.storage.Bucket._internal_init.__code__.co_varnames
    for name in bucket.inputs:
        assert "".join(f"_{c.lower()}" if c.isupper() else c for c in name) in typed, name
    assert bucket.inputs["uniformBucketLevelAccess"] is True and bucket.inputs["publicAccessPrevention"] == "enforced"
    grants = planned("prod").of_type(BUCKET_IAM_MEMBER)
    assert {grant.inputs["role"] for grant in grants} == {"roles/storage.objectViewer", "roles/storage.objectUser"}
    typed_grant = gcp.storage.BucketIAMMember._internal_init.__code__.co_varnames
    for grant in grants:
        assert set(grant.inputs) == {"bucket", "role", "member"} and set(grant.inputs) <= set(typed_grant)
