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
# The in-cluster weight-staging Job: a plain Python image that pip-installs requirements-staging.txt (pinned)
# at start, so no project image has to be built and pushed; the Job runs once per model revision.
STAGING_IMAGE = "python:3.11-slim-bookworm"


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
