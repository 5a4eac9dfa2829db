"""GPUs paid for that no replica uses: a model smaller than a node still takes the whole node (one Ray worker pod
per node), and a fixed-size pool may hold nodes no model needs. Both are warnings that say how many GPUs stay idle."""

from __future__ import annotations

import json

from infra.catalog import MACHINE_PROFILES
from infra.planning.sizing import group_use
from serve_app.spec import parse_models

R1 = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "revision": "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad",
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}
QWEN_7B_ON_H100 = {"id": "qwen-7b", "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "acceleratorType": "H100"}


def test_a_small_model_on_an_8_gpu_node_says_how_many_gpus_stay_idle(parse_config):
    """The new user's prod: R1 on 2 nodes plus a TP 1 model, so a third node of which 7 GPUs do nothing."""
    config = parse_config(gpuNodeCount=3, models=json.dumps([R1, QWEN_7B_ON_H100]))
    idle = [warning for warning in config.warnings if "stay idle" in warning]
    assert idle == [
        "llmserve:models[1].maxReplicas: qwen-7b runs at most 1 replica of 1 GPU but takes 1 whole node of 8 GPUs "
        "(a3-megagpu-8g; one Ray worker pod per node), so 7 of those 8 GPUs stay idle and are paid for; act only if "
        "that is not intended: maxReplicas 8 fills it, or serve the model from a stack whose machine has fewer GPUs"
    ]


def test_replicas_that_fill_their_node_draw_no_warning(parse_config):
    config = parse_config(
        gpuNodeCount=3, models=json.dumps([R1, {**QWEN_7B_ON_H100, "maxReplicas": 8, "targetOngoingRequests": 16}])
    )
    assert not [warning for warning in config.warnings if "stay idle" in warning]


def test_a_fixed_pool_larger_than_the_models_need_says_so(parse_config):
    config = parse_config(gpuNodeCount=3)
    assert (
        "llmserve:gpuNodeCount: 3 nodes, but the models' replicas take at most 2; 1 node (8 GPUs) stay idle and "
        "are paid for; act only if that is not intended: gpuNodeCount 2"
    ) in config.warnings


def test_the_shipped_shapes_leave_no_gpu_idle():
    """dev: 7B at TP 2 (one node) and 1.5B at TP 1 x 2 replicas (sharing one node) on 2-L4 nodes; prod: R1 on 16."""
    dev = parse_models(
        [
            {"id": "a", "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "acceleratorType": "L4",
             "tensorParallelSize": 2, "minReplicas": 0, "maxReplicas": 1},
            {"id": "b", "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "acceleratorType": "L4",
             "minReplicas": 0, "maxReplicas": 2, "targetOngoingRequests": 16},
        ]
    )  # fmt: skip
    uses = group_use(dev, MACHINE_PROFILES["g2-standard-24"], 2)
    assert [(use.used_gpus, use.node_gpus) for use in uses] == [(2, 2), (2, 2)]
    [r1] = group_use(parse_models([R1]), MACHINE_PROFILES["a3-megagpu-8g"], 2)
    assert (r1.used_gpus, r1.idle_gpus) == (16, 0)
