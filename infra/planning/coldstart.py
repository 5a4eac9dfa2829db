"""Modelled cold-start time of a model replica, per weight source. Estimates, not measurements.

The figures are a modelled cold-start budget for DeepSeek-R1 FP8 on 2 x a3-megagpu-8g (690 GB that
every node reads in full, both nodes in parallel), none of them measured on this project's clusters yet:

- weight phase (transfer to the node and load into GPU memory), per source, for those 690 GB per node:
  `huggingface` (vLLM downloads from the Hub into the node's cache) 7-29 min,
  `gcsfuse` (in-region bucket through the GCS FUSE CSI driver with a local-SSD file cache) 3-8 min,
  `runai-streamer` (vLLM's Run:ai streamer straight from gs:// to the GPUs) 1-3 min;
  scaled linearly by the checkpoint bytes each node reads, for other models;
- stages every source pays: container image pull 2-5 min (no image streaming), Ray cluster and Serve
  deploy 0.5-1 min, vLLM engine start after the weights (compile, CUDA graphs, KV profiling) 2-6 min;
- plus 5-10 min to create GPU nodes when the pool has to grow (scale from zero, or a replaced node).

The engine-start stage is R1's; a small model starts faster, so its estimate is pessimistic.

A replica that Serve restarts in a Ray worker pod that keeps running (a Serve config change, see
infra/cli/serve_rules.py) pays the weight phase, Serve's replica start and the engine start, but no image pull
and no node: `restart_minutes`. The weight phase is counted in full, which is pessimistic where the node still
caches the files (the Hub download in `HF_HOME`, the GCS FUSE file cache).
"""

from __future__ import annotations

from collections.abc import Mapping

REFERENCE_BYTES_PER_NODE = 690e9  # DeepSeek-R1's checkpoint, read in full by every node
# Minutes (low, high) of the weight phase for REFERENCE_BYTES_PER_NODE.
WEIGHT_PHASE_MINUTES: Mapping[str, tuple[float, float]] = {
    "huggingface": (7.0, 29.0),
    "gcsfuse": (3.0, 8.0),
    "runai-streamer": (1.0, 3.0),
}
COMMON_STAGES_MINUTES: Mapping[str, tuple[float, float]] = {
    "image_pull": (2.0, 5.0),
    "ray_and_serve_deploy": (0.5, 1.0),
    "engine_start": (2.0, 6.0),
}
NODE_PROVISIONING_MINUTES = (5.0, 10.0)
# The stages a replica restarted in a running pod pays besides its weight phase.
RESTART_STAGES = ("ray_and_serve_deploy", "engine_start")


def cold_start_minutes(checkpoint_bytes: int) -> dict[str, dict[str, float]]:
    """{source: {"low", "high"}} minutes from replica start to serving, on GPU nodes that already exist."""
    scale = checkpoint_bytes / REFERENCE_BYTES_PER_NODE
    common_low = sum(low for low, _ in COMMON_STAGES_MINUTES.values())
    common_high = sum(high for _, high in COMMON_STAGES_MINUTES.values())
    return {
        source: {"low": round(common_low + low * scale, 1), "high": round(common_high + high * scale, 1)}
        for source, (low, high) in WEIGHT_PHASE_MINUTES.items()
    }


def restart_minutes(checkpoint_bytes: int) -> dict[str, dict[str, float]]:
    """{source: {"low", "high"}} minutes from a Serve replica's restart, in a pod that keeps running, to serving."""
    scale = checkpoint_bytes / REFERENCE_BYTES_PER_NODE
    low = sum(COMMON_STAGES_MINUTES[stage][0] for stage in RESTART_STAGES)
    high = sum(COMMON_STAGES_MINUTES[stage][1] for stage in RESTART_STAGES)
    return {
        source: {"low": round(low + weights_low * scale, 1), "high": round(high + weights_high * scale, 1)}
        for source, (weights_low, weights_high) in WEIGHT_PHASE_MINUTES.items()
    }
