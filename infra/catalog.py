"""Machine facts, images and versions: the one table the rest of the program reads.

Every literal that describes hardware (GPU counts, accelerator names, NIC counts, local SSDs) or pins a
piece of software (images, chart versions) lives here, so that a review of "what does this deploy"
starts and ends in this file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class GpuDirect(str, enum.Enum):
    """The GPU-to-GPU network stack a machine supports across nodes."""

    NONE = "none"
    TCPX = "tcpx"  # A3 High: 4 extra gVNICs, RxDM daemon v2
    TCPXO = "tcpxo"  # A3 Mega: 8 extra gVNICs, "FasTrak" NCCL plugin


@dataclass(frozen=True)
class MachineProfile:
    """What one GKE node of a machine type offers.

    `gke_accelerator` is the GKE accelerator type (and the `cloud.google.com/gke-accelerator` node label);
    `ray_accelerator` is the name Ray derives from NVML for the same GPU (the `accelerator_type:<X>` resource
    and what `LLMConfig.accelerator_type` must say).
    """

    machine_type: str
    gpu_count: int
    gke_accelerator: str
    ray_accelerator: str
    gpu_memory_gib: int
    gpudirect: GpuDirect
    gpu_nic_count: int
    local_ssd_count: int
    vcpus: int
    memory_gib: int
    # Flex-start and queued provisioning drop compact placement on these machines (A3 High/Mega).
    compact_placement_with_dws: bool
    # What one Ray worker pod (one per node) requests: the node's allocatable CPU and memory less GKE's
    # reservations and the DaemonSets (logging, metrics, GPU device plugin, GPUDirect installers).
    ray_worker_cpu: int
    ray_worker_memory_gib: int

    @property
    def local_ssd_gib(self) -> int:
        return self.local_ssd_count * 375 * 1000**3 // 1024**3


MACHINE_PROFILES: dict[str, MachineProfile] = {
    profile.machine_type: profile
    for profile in (
        MachineProfile(
            machine_type="a3-highgpu-8g",
            gpu_count=8,
            gke_accelerator="nvidia-h100-80gb",
            ray_accelerator="H100",
            gpu_memory_gib=80,
            gpudirect=GpuDirect.TCPX,
            gpu_nic_count=4,
            local_ssd_count=16,
            vcpus=208,
            memory_gib=1872,
            compact_placement_with_dws=False,
            ray_worker_cpu=192,
            ray_worker_memory_gib=1600,
        ),
        MachineProfile(
            machine_type="a3-megagpu-8g",
            gpu_count=8,
            gke_accelerator="nvidia-h100-mega-80gb",
            ray_accelerator="H100",
            gpu_memory_gib=80,
            gpudirect=GpuDirect.TCPXO,
            gpu_nic_count=8,
            local_ssd_count=16,
            vcpus=208,
            memory_gib=1872,
            compact_placement_with_dws=False,
            ray_worker_cpu=192,
            ray_worker_memory_gib=1600,
        ),
        # The cheap development profile: two L4s per node, no GPU NICs, no GPUDirect.
        MachineProfile(
            machine_type="g2-standard-24",
            gpu_count=2,
            gke_accelerator="nvidia-l4",
            ray_accelerator="L4",
            gpu_memory_gib=24,
            gpudirect=GpuDirect.NONE,
            gpu_nic_count=0,
            local_ssd_count=2,
            vcpus=24,
            memory_gib=96,
            compact_placement_with_dws=True,
            ray_worker_cpu=20,
            ray_worker_memory_gib=72,
        ),
    )
}

# Networking facts shared by every GPUDirect flavour.
GPU_NETWORK_MTU = 8244  # GKE's best practice for the GPU VPCs (and used on the primary VPC too)
# The GPU networks' range is split into this many equal subnets, whatever the machine needs, so that moving
# from A3 High (4 NICs) to A3 Mega (8 NICs) adds subnets without renumbering the existing ones.
GPU_SUBNET_SLOTS = 8
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_RESOURCE = "nvidia.com/gpu"
ACCELERATOR_NODE_LABEL = "cloud.google.com/gke-accelerator"
# Node labels the pools carry and the Ray pods select on: one definition, so the two cannot drift apart.
SYSTEM_POOL_LABELS = {"llmserve.dev/pool": "system"}
GPU_POOL_LABELS = {"llmserve.dev/pool": "gpu"}
# Labels and selectors the rendered objects share: one definition each.
PART_OF_LABEL = {"app.kubernetes.io/part-of": "llmserve"}  # on every object this program renders
RAY_NODE_SELECTOR = {"ray.io/is-ray-node": "yes"}  # KubeRay's label on every Ray pod
KUBERAY_OPERATOR_SELECTOR = {"app.kubernetes.io/name": "kuberay-operator"}  # the Helm chart's operator pod
# On the RayService: the hash of its Serve config (serve_app.builder.stamp_serve_config), which the ingress reports
# at GET /v1/llmserve/config and `python -m infra smoke` compares with the plan's.
SERVE_CONFIG_HASH_ANNOTATION = "llmserve.dev/serve-config-hash"


@dataclass(frozen=True)
class GpuDirectRelease:
    """Images that must move together: the NCCL plugin installer and the receive-datapath daemon it was
    qualified with (a skewed pair fails at NCCL init)."""

    installer_image: str
    rxdm_image: str


GPUDIRECT_RELEASES: dict[GpuDirect, GpuDirectRelease] = {
    GpuDirect.TCPX: GpuDirectRelease(
        installer_image="us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpx/nccl-plugin-gpudirecttcpx-dev:v3.1.9",
        rxdm_image="us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpx/tcpgpudmarxd-dev:v2.0.12",
    ),
    GpuDirect.TCPXO: GpuDirectRelease(
        installer_image="us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpxo/nccl-plugin-gpudirecttcpx-dev:v1.0.15",
        rxdm_image="us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpxo/tcpgpudmarxd-dev:v1.0.21",
    ),
}
NRI_DEVICE_INJECTOR_IMAGE = (
    "gcr.io/gke-release/nri-device-injector@sha256:6e79483d52abdc28454bf186320b10a56b0f117a10e8d65d5c74dbb821a76970"
)
PAUSE_IMAGE = "gke.gcr.io/pause:3.8@sha256:880e63f94b145e46f1b1082bb71b85e21f16b99b180b9996407d61240ceb9830"
# The TCPXO installer's first init container prepares the host with nsenter; any glibc image with a shell works.
HOST_SETUP_IMAGE = "ubuntu:22.04"

# Kubernetes minor version the rendered objects are validated against in tests.
KUBERNETES_SCHEMA_VERSION = "1.33.0"

# --- serving stack -----------------------------------------------------------------------------------------
RAY_VERSION = "2.60.0"
# Ray's LLM image for this Ray version: vLLM 0.29.0 (pinned by ray[llm]==2.60.0), CUDA 13, Python 3.12.
# CUDA 13 needs an R580+ driver on the nodes, hence gpuDriverVersion LATEST by default.
RAY_LLM_IMAGE = "rayproject/ray-llm:2.60.0-py312-cu130"
KUBERAY_CHART = "kuberay-operator"
KUBERAY_CHART_VERSION = "1.7.0"
KUBERAY_CHART_REPO = "https://ray-project.github.io/kuberay-helm/"
KUBERAY_OPERATOR_IMAGE = "quay.io/kuberay/operator"
KUBERAY_OPERATOR_TAG = "v1.7.0"
# The in-cluster weight-staging Job: a plain Python image that pip-installs the hashed lock
# requirements/staging.txt at start, so no project image has to be built and pushed; the Job runs once per
# model revision. Pinned by digest: the multi-platform image index of python:3.11.16-slim-bookworm as Docker
# Official Images recorded it (docker-library/repo-info, repos/python/remote/3.11.16-slim-bookworm.md at commit
# 422f3cfe488dc9ae394c5058b27db617f72c91db; built 2026-09-01). Not pulled from this project's CI (no registry
# is reachable from it): `docker buildx imagetools inspect python:3.11.16-slim-bookworm` shows the digest to
# compare when moving it.
STAGING_IMAGE_TAG = "python:3.11.16-slim-bookworm"
STAGING_IMAGE_DIGEST = "sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f"
STAGING_IMAGE = f"{STAGING_IMAGE_TAG}@{STAGING_IMAGE_DIGEST}"


# Hub commits that the shipped stacks pin (`revision` of a model staged into the model store), and the repository
# each is a commit of. A model that keeps one of these but names another `source` plans fine and then fails in the
# staging Job, which looks the commit up in the new repository: config validation warns.
PINNED_HUB_REVISIONS: dict[str, str] = {"56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad": "deepseek-ai/DeepSeek-R1"}


# --- GPU memory as vLLM sees it (capacity planner) ------------------------------------------------------------


@dataclass(frozen=True)
class GpuMemoryProfile:
    """What vLLM can budget on one GPU, keyed by the GKE accelerator label.

    `cuda_total_gib` is `cudaMemGetInfo`'s total (what PyTorch prints as "total capacity"), smaller than the
    marketing size and nvidia-smi's total; vLLM multiplies it by gpu_memory_utilization. The two overhead terms
    are per-GPU estimates of what vLLM 0.29 subtracts besides the weights: the activation peak plus non-torch
    memory (NCCL, cuBLAS, sampler) measured by its profile run, and the CUDA-graph estimate it subtracts by
    default since v0.21 (zero with enforce_eager). Both are estimates from published logs; a measured
    "Available KV cache memory" beats them (set engineKwargs.kv_cache_memory_bytes).
    """

    gke_accelerator: str
    cuda_total_gib: float
    activation_overhead_gib: float
    cudagraph_overhead_gib: float
    # FlashMLA (Hopper/Blackwell) insists on 64-token KV blocks for MLA models; elsewhere vLLM keeps 16.
    flashmla: bool


GPU_MEMORY: dict[str, GpuMemoryProfile] = {
    profile.gke_accelerator: profile
    for profile in (
        GpuMemoryProfile("nvidia-h100-80gb", 79.21, 1.5, 3.0, flashmla=True),
        GpuMemoryProfile("nvidia-h100-mega-80gb", 79.21, 1.5, 3.0, flashmla=True),
        GpuMemoryProfile("nvidia-h200-141gb", 139.80, 1.5, 3.0, flashmla=True),
        GpuMemoryProfile("nvidia-l4", 21.96, 1.5, 0.5, flashmla=False),
    )
}


# --- where Compute Engine has regions, zones and these machines ------------------------------------------------
#
# Google's "GPU regions and zones" page (https://cloud.google.com/compute/docs/gpus/gpu-regions-zones) is the
# authority on which zones offer which GPU machine; its current content could not be read for this table
# (2026-12-03), so the table is the one source that could be: the SkyPilot catalog's zone rows
# (skypilot-org/skypilot-catalog, catalogs/v9/gcp/vms.csv at commit 2c3d7ea, dated 2026-11-28, read 2026-12-03),
# which list every zone where Compute Engine offered each machine type when the catalog was built. Regions and
# zones: the zones of the catalog's e2-standard-8 rows (E2 is offered in every zone it lists), plus
# asia-southeast3 (its c4/n4 rows) and us-central2 (its TPU rows). Config validation refuses a region or zone
# outside this table (a typo, or a name that does not exist); a machine the table does not list in a zone is a
# warning only, since Google adds GPU zones more often than regions.
LOCATIONS_SOURCE = "SkyPilot catalog v9 at 2c3d7ea, 2026-11-28"
# Region -> the letters of its zones.
REGION_ZONES: dict[str, str] = {
    "africa-south1": "abc",
    "asia-east1": "abc",
    "asia-east2": "abc",
    "asia-northeast1": "abc",
    "asia-northeast2": "abc",
    "asia-northeast3": "abc",
    "asia-south1": "abc",
    "asia-south2": "abc",
    "asia-southeast1": "abc",
    "asia-southeast2": "abc",
    "asia-southeast3": "abc",
    "australia-southeast1": "abc",
    "australia-southeast2": "abc",
    "europe-central2": "abc",
    "europe-north1": "abc",
    "europe-north2": "abc",
    "europe-southwest1": "abc",
    "europe-west1": "bcd",
    "europe-west2": "abc",
    "europe-west3": "abc",
    "europe-west4": "abc",
    "europe-west6": "abc",
    "europe-west8": "abc",
    "europe-west9": "abc",
    "europe-west10": "abc",
    "europe-west12": "abc",
    "me-central1": "abc",
    "me-central2": "abc",
    "me-west1": "abc",
    "northamerica-northeast1": "abc",
    "northamerica-northeast2": "abc",
    "northamerica-south1": "abc",
    "southamerica-east1": "abc",
    "southamerica-west1": "abc",
    "us-central1": "abcf",
    "us-central2": "b",
    "us-east1": "bcd",
    "us-east4": "abc",
    "us-east5": "abc",
    "us-south1": "abc",
    "us-west1": "abc",
    "us-west2": "abc",
    "us-west3": "abc",
    "us-west4": "abc",
}
# Machine type -> region -> the letters of the zones that offer it (same source).
MACHINE_ZONES: dict[str, dict[str, str]] = {
    "a3-highgpu-8g": {
        "asia-east1": "c",
        "asia-northeast1": "b",
        "asia-south1": "c",
        "asia-south2": "b",
        "asia-southeast1": "bc",
        "australia-southeast1": "c",
        "europe-north1": "c",
        "europe-west1": "bc",
        "europe-west3": "c",
        "europe-west4": "bc",
        "europe-west9": "c",
        "us-central1": "abc",
        "us-east4": "abc",
        "us-east5": "a",
        "us-west1": "ab",
        "us-west4": "a",
    },
    "a3-megagpu-8g": {
        "asia-east1": "c",
        "asia-northeast1": "b",
        "asia-southeast1": "bc",
        "australia-southeast1": "c",
        "europe-north1": "c",
        "europe-west1": "bc",
        "europe-west3": "c",
        "europe-west4": "bc",
        "us-central1": "abc",
        "us-east4": "abc",
        "us-east5": "a",
        "us-west1": "ab",
        "us-west4": "a",
    },
    "g2-standard-24": {
        "asia-east1": "abc",
        "asia-northeast1": "abc",
        "asia-northeast3": "ab",
        "asia-south1": "abc",
        "asia-southeast1": "abc",
        "europe-west1": "bc",
        "europe-west2": "ab",
        "europe-west3": "ab",
        "europe-west4": "abc",
        "europe-west6": "bc",
        "me-central2": "ac",
        "northamerica-northeast1": "bc",
        "northamerica-northeast2": "ab",
        "us-central1": "abc",
        "us-east1": "bcd",
        "us-east4": "ac",
        "us-west1": "abc",
        "us-west4": "ac",
    },
}


def zones_offering(machine_type: str, region: str) -> tuple[str, ...]:
    """The zones of `region` that the table lists for `machine_type` (empty for a machine it does not cover)."""
    return tuple(f"{region}-{letter}" for letter in MACHINE_ZONES.get(machine_type, {}).get(region, ""))
