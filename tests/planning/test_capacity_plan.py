"""Capacity refusals, the plan's capacity summary and capacity.json, through `python -m infra plan`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from infra.cli.main import main
from infra.cli.plan import PROJECT_ROOT

R1 = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "revision": "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad",
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}


def _project(tmp_path: Path, base_stack: str, **changes) -> Path:
    """A copy of the project whose stack `probe` is `base_stack` with `changes` applied (None removes a key)."""
    config = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{base_stack}.yaml").read_text())["config"]
    for name, value in changes.items():
        if value is None:
            config.pop(name, None)
        else:
            config[name] = value
    work = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, work, ignore=shutil.ignore_patterns(".venv*", "build", ".git", "__pycache__"))
    (work / "Pulumi.probe.yaml").write_text(yaml.safe_dump({"config": config}))
    return work


def _refused(root: Path, capsys) -> str:
    assert main(["plan", "probe"], root=root) == 2
    assert not (root / "build").exists(), "a refused plan must write nothing"
    return capsys.readouterr().err


def test_r1_on_one_h100_node_is_refused_naming_pipeline_parallel_size(tmp_path, capsys):
    root = _project(tmp_path, "prod", **{"llmserve:models": [{**R1, "pipelineParallelSize": 1}]})
    err = _refused(root, capsys)
    assert "llmserve:models[0].pipelineParallelSize: deepseek-ai/DeepSeek-R1's weights need 79.3 GiB per GPU" in err, (
        err
    )
    assert (
        "found tensorParallelSize=8, pipelineParallelSize=1; allowed: tensorParallelSize x "
        "pipelineParallelSize >= 16 (e.g. pipelineParallelSize 2)" in err
    ), err


def test_the_command_line_itself_exits_2_and_writes_nothing(tmp_path):
    import subprocess
    import sys

    root = _project(tmp_path, "staging", **{"llmserve:models": [{**R1, "pipelineParallelSize": 1}]})
    done = subprocess.run([sys.executable, "-m", "infra", "plan", "probe"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 2, done
    assert "error: stack 'probe': invalid stack configuration:" in done.stderr
    assert "  - llmserve:models[0].pipelineParallelSize: deepseek-ai/DeepSeek-R1's weights need" in done.stderr
    assert "Traceback" not in done.stderr and not (root / "build").exists()


def test_max_model_len_beyond_r1s_positions_is_refused(tmp_path, capsys):
    root = _project(tmp_path, "staging", **{"llmserve:models": [{**R1, "maxModelLen": 200000}]})
    err = _refused(root, capsys)
    assert (
        "llmserve:models[0].maxModelLen: longer than deepseek-ai/DeepSeek-R1's max_position_embeddings, so "
        "vLLM refuses to start; found 200000; allowed: 163840 or less" in err
    ), err


def test_a_kv_budget_below_one_sequence_is_refused_with_the_length_that_fits(tmp_path, capsys):
    llama = {
        "id": "llama-8b",
        "source": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
        "acceleratorType": "L4",
        "minReplicas": 0,
        "maxReplicas": 1,
        "maxModelLen": 32768,
    }
    root = _project(tmp_path, "dev", **{"llmserve:models": [llama], "llmserve:pipelines": None})
    err = _refused(root, capsys)
    assert "llmserve:models[0].maxModelLen: the KV cache holds " in err, err
    assert "less than one full-context sequence" in err and "found 32768; allowed: " in err, err


def test_max_num_seqs_beyond_full_context_is_a_note_that_says_when_to_act(tmp_path, capsys):
    root = _project(tmp_path, "staging", **{"llmserve:models": [{**R1, "maxNumSeqs": 256}]})
    assert main(["plan", "probe", "--out", str(tmp_path / "out")], root=root) == 0
    out = capsys.readouterr().out
    assert (
        "    maxNumSeqs 256 is above the 26 full-context sequences the KV cache holds: all 256 run at once while "
        "they average 3,337 tokens or less, longer ones wait or are preempted; nothing to do unless most requests "
        "run to the full 32,768 tokens (then maxNumSeqs 26)"
    ) in out, out
    assert "maxNumSeqs:" not in out.split("Warnings:")[1]


def test_an_unknown_architecture_is_planned_with_a_warning(tmp_path, capsys):
    other = {"id": "mystery", "source": "gs://my-bucket/mystery", "acceleratorType": "L4", "minReplicas": 0}
    root = _project(tmp_path, "dev", **{"llmserve:models": [other], "llmserve:pipelines": None})
    assert main(["plan", "probe", "--out", str(tmp_path / "out")], root=root) == 0
    out = capsys.readouterr().out
    assert (
        "llmserve:models[0]: capacity not checked: no known architecture for source 'gs://my-bucket/mystery'" in out
    ), out
    capacity = json.loads((tmp_path / "out" / "capacity.json").read_text())
    assert capacity["models"][0]["capacity"] is None
    assert capacity["models"][0]["not_checked"].startswith("no known architecture")


# --- capacity.json and the summary of the real stacks ----------------------------------------------------


@pytest.fixture
def capacity_plans(plan_output):
    """stack -> (capacity.json, summary, folder) of dev, staging and prod."""
    results = {}
    for stack in ("dev", "staging", "prod"):
        output = plan_output(stack)
        results[stack] = (json.loads((output.folder / "capacity.json").read_text()), output.summary, output.folder)
    return results


def test_capacity_json_has_the_documented_shape(capacity_plans):
    for stack, (capacity, _, _) in capacity_plans.items():
        assert list(capacity) == [
            "format",
            "stack",
            "model",
            "machine",
            "gpu",
            "models",
            "pipelines",
            "cost",
            "cold_start",
        ]
        assert capacity["stack"] == stack and capacity["format"] == 1
        assert all(list(pipeline) == ["id", "models", "steps"] for pipeline in capacity["pipelines"])
        for model in capacity["models"]:
            assert list(model) == [
                "id",
                "source",
                "weight_source",
                "replicas",
                "capacity",
                "not_checked",
                "cold_start_minutes",
                "profile",
            ]
            assert list(model["profile"]) == ["name", "settings", "without_profile", "kv_tokens_ratio"]
            assert model["weight_source"] in ("huggingface", "gcsfuse", "runai-streamer")
            assert set(model["capacity"]["per_gpu_gib"]) == {
                "cuda_total",
                "requested",
                "weights",
                "overhead",
                "kv_cache",
                "headroom",
            }
            assert set(model["cold_start_minutes"]) == {"huggingface", "gcsfuse", "runai-streamer"}


def test_prod_capacity_and_cost(capacity_plans):
    capacity, summary, _ = capacity_plans["prod"]
    [r1] = capacity["models"]
    figures = r1["capacity"]
    assert (figures["gpus_per_replica"], figures["binding_stage"], figures["block_size"]) == (16, 1, 64)
    assert [stage["layers"] for stage in figures["stages"]] == [31, 30]
    assert figures["per_gpu_gib"]["weights"] == pytest.approx(40.87, abs=0.01)
    assert figures["kv_tokens"] == 854_400 and figures["concurrency_at_full_context"] == 26.07
    cost = capacity["cost"]
    assert cost["capacity_mode"] == "reservation"
    assert cost["gpu_hours_per_hour"] == {"idle": 16, "max": 16}
    # 2 x a3-megagpu-8g (9.46006 + 82.75424) + 1 x e2-standard-16 (2 x 0.30188) + GKE 0.10 + Memorystore
    # Standard M1 1 GB (0.064, billing SKU "Redis Capacity Standard M1" in us-east4), us-east4.
    assert cost["hourly_usd"]["on_demand"]["max"] == round(2 * 92.2143 + 0.60376 + 0.10 + 0.064, 2) == 185.20
    assert cost["hourly_usd"]["spot"]["max"] == round(2 * (3.68077 + 18.0544) + 0.60376 + 0.10 + 0.064, 2)
    assert cost["hourly_usd"]["reservation"] == {"idle": 185.20, "max": 185.20}
    redis = cost["gcs_fault_tolerance"]
    assert (redis["tier"], redis["size_gb"], redis["usd_per_hour"]) == ("STANDARD_HA", 1, 0.064)
    assert redis["prices"]["as_of"] == "2026-04-27"
    assert "GCS fault tolerance: Memorystore for Redis STANDARD_HA 1 GB, $0.064/h (included above" in summary
    assert cost["prices"]["as_of"] == "2026-11-28"
    # R1: 690 GB per node from the Hub; weight phase 7-29 min plus 4.5-12 min the other stages.
    assert r1["cold_start_minutes"]["huggingface"] == {"low": 11.5, "high": 40.9}
    assert "16 x nvidia-h100-mega-80gb per replica (TP 8 x PP 2)" in summary
    assert "weights 40.87 GiB (fp8, stage 2 of 2 binds)" in summary
    assert "KV cache: 854,400 tokens" in summary and "26.07x concurrency at 32,768 tokens" in summary
    assert "GPU-hours per hour: 16 (2 x a3-megagpu-8g x 8 GPUs)" in summary
    assert "reservation: $185.20/h <- configured" in summary
    # prod stages R1 into the model store and mounts it (infra/config/sections/weights.py): that source is the
    # configured one.
    assert r1["weight_source"] == "gcsfuse"
    assert "huggingface 11.5-40.9 min, gcsfuse 7.5-20 min (configured), runai-streamer 5.5-15 min" in summary


def test_staging_is_flex_start_priced_at_on_demand_as_an_upper_bound(capacity_plans):
    capacity, summary, _ = capacity_plans["staging"]
    cost = capacity["cost"]
    assert cost["capacity_mode"] == "flex-start" and "reservation" not in cost["hourly_usd"]
    # The pool autoscales 0-2, but R1's minReplicas 1 keeps its two Ray GPU workers, so both nodes stay.
    assert cost["gpu_hours_per_hour"] == {"idle": 16, "max": 16}
    assert cost["hourly_usd"]["on_demand"]["max"] == round(2 * (9.46006 + 78.37241) + 0.60376 + 0.10 + 0.064, 2)
    assert "on-demand: $176.43/h <- configured" in summary
    assert cost["gcs_fault_tolerance"]["usd_per_hour"] == 0.064
    assert any("Dynamic Workload Scheduler prices" in note and "upper bound" in note for note in cost["notes"])


def test_dev_scales_to_zero_so_idle_costs_only_the_cluster(capacity_plans):
    capacity, summary, _ = capacity_plans["dev"]
    qwen7, qwen15 = capacity["models"]
    assert qwen7["capacity"]["gpus_per_replica"] == 2 and qwen15["capacity"]["gpus_per_replica"] == 1
    assert qwen7["capacity"]["kv_tokens"] == pytest.approx(416_080, rel=0.01)
    cost = capacity["cost"]
    assert cost["gpu_hours_per_hour"] == {"idle": 0, "max": 4}
    assert cost["hourly_usd"]["on_demand"] == {
        "idle": round(0.26805 + 0.10, 2),
        "max": round(2 * (0.88075 + 1.12008) + 0.26805 + 0.10, 2),
    }
    assert any("free tier" in note for note in cost["notes"])
    assert "GPU-hours per hour: 0 idle, 4 at most" in summary
    # dev keeps GCS fault tolerance off (Pulumi.yaml's default): no Memorystore in its cost.
    assert cost["gcs_fault_tolerance"] is None and "GCS fault tolerance" not in summary


def test_capacity_json_is_byte_stable_and_resources_are_untouched(capacity_plans, tmp_path):
    _, _, out = capacity_plans["prod"]
    assert main(["plan", "prod", "--out", str(tmp_path)]) == 0
    for name in ("capacity.json", "resources.json", "manifests.yaml"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    assert sorted(path.name for path in tmp_path.iterdir()) == ["capacity.json", "manifests.yaml", "resources.json"]


def test_a_stack_in_europe_west4_is_priced(tmp_path, capsys):
    """The new user's example: europe-west4 printed "on-demand: no price" before the table covered every region."""
    root = _project(tmp_path, "staging", **{"gcp:region": "europe-west4", "llmserve:gpuZones": ["europe-west4-b"]})
    assert main(["plan", "probe", "--out", str(tmp_path / "out")], root=root) == 0
    cost = json.loads((tmp_path / "out" / "capacity.json").read_text())["cost"]
    # 2 x a3-highgpu-8g (9.93306 + 101.88413) + e2-standard-16 (2 x 0.29509) + GKE 0.10 + Memorystore Standard
    # M1 1 GB in europe-west4 (0.086).
    on_demand = round(2 * (9.93306 + 101.88413) + 2 * 0.29509 + 0.10 + 0.086, 2)
    assert cost["hourly_usd"]["on_demand"]["max"] == on_demand == 224.41
    assert "on-demand: $224.41/h <- configured" in capsys.readouterr().out


def test_a_region_whose_catalog_figure_is_a_placeholder_says_why_there_is_no_price(tmp_path):
    root = _project(
        tmp_path,
        "staging",
        **{
            "gcp:region": "us-central1",
            "llmserve:gpuZones": ["us-central1-a"],
            "llmserve:gpuSpot": True,
            "llmserve:gpuFlexStart": False,
            "llmserve:rayClusterUpgrade": None,
        },
    )
    assert main(["plan", "probe", "--out", str(tmp_path / "out")], root=root) == 0
    cost = json.loads((tmp_path / "out" / "capacity.json").read_text())["cost"]
    assert cost["capacity_mode"] == "spot"
    assert cost["hourly_usd"]["on_demand"] == {"idle": None, "max": None}
    assert cost["hourly_usd"]["spot"]["max"] == round(2 * (5.15632 + 42.7096) + 2 * 0.26805 + 0.10 + 0.064, 2)
    assert any("is its placeholder (the same figure in 12 regions" in note for note in cost["notes"])


def test_a_small_model_added_to_prod_shows_its_idle_gpus_and_their_price(tmp_path, capsys):
    """One more node of 8 H100 Mega for a 1-GPU model: $277.41/h instead of $185.20/h, 7 of its GPUs idle."""
    qwen = {"id": "qwen-7b", "source": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "acceleratorType": "H100"}
    root = _project(tmp_path, "prod", **{"llmserve:gpuNodeCount": 3, "llmserve:models": [R1, qwen]})
    assert main(["plan", "probe", "--out", str(tmp_path / "out")], root=root) == 0
    out = capsys.readouterr().out
    assert "  the models' replicas use at most 17 of the 24 GPUs: 7 idle" in out, out
    assert "reservation: $277.41/h <- configured" in out
    assert "qwen-7b runs at most 1 replica of 1 GPU but takes 1 whole node of 8 GPUs" in out


# --- python -m infra capacity -----------------------------------------------------------------------------


def test_capacity_command_prints_the_table(capsys):
    assert (
        main(
            [
                "capacity",
                "deepseek-r1",
                "--machine",
                "a3-megagpu-8g",
                "--tp",
                "8",
                "--pp",
                "2",
                "--max-model-len",
                "65536",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "deepseek-ai/DeepSeek-R1 on a3-megagpu-8g" in out and "a replica spans 2 nodes" in out
    assert "KV cache: 854,400 tokens" in out and "13.04x concurrency at 65,536 tokens" in out, out
    assert "16 GPU-hours per hour, on-demand $184.43/h, spot $43.47/h" in out, out  # 2 x (92.2143, 21.73517)


def test_capacity_command_exits_1_when_the_model_cannot_start(capsys):
    assert main(["capacity", "deepseek-r1", "--machine", "a3-highgpu-8g", "--tp", "8"]) == 1
    out = capsys.readouterr().out
    assert "error: pipelineParallelSize: deepseek-ai/DeepSeek-R1's weights need 79.3 GiB per GPU" in out, out


def test_capacity_command_knobs_and_a_local_config_json(tmp_path, capsys):
    assert (
        main(
            [
                "capacity",
                "deepseek-r1",
                "--machine",
                "a3-megagpu-8g",
                "--tp",
                "8",
                "--pp",
                "2",
                "--max-model-len",
                "32768",
                "--kv-cache-dtype",
                "fp8",
                "--enforce-eager",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "(fp8, 17,280 B/token/GPU)" in out and "overhead ≈1.5 GiB" in out, out
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 4096,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "intermediate_size": 14336,
                "vocab_size": 128256,
                "max_position_embeddings": 131072,
            }
        )
    )
    assert (
        main(
            [
                "capacity",
                str(tmp_path),
                "--machine",
                "g2-standard-24",
                "--tp",
                "2",
                "--max-model-len",
                "8192",
                "--max-num-seqs",
                "64",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2 x nvidia-l4 per replica (TP 2 x PP 1)" in out and "(bf16)" in out, out


def test_capacity_command_rejects_an_unknown_model(capsys):
    assert main(["capacity", "gpt-5", "--machine", "a3-megagpu-8g"]) == 2
    assert "unknown model 'gpt-5'" in capsys.readouterr().err


def test_a_serve_restart_pays_the_weights_serve_and_the_engine_but_no_image_pull():
    """R1 (688.6 GB): the weight phase scaled from 690 GB plus Ray/Serve 0.5-1 and engine 2-6 min; the cold
    start's image pull (2-5 min) is not paid by a replica restarted in a pod that keeps running."""
    from infra.planning.coldstart import cold_start_minutes, restart_minutes

    r1_bytes = 688_586_727_753
    assert restart_minutes(r1_bytes) == {
        "huggingface": {"low": 9.5, "high": 35.9},
        "gcsfuse": {"low": 5.5, "high": 15.0},
        "runai-streamer": {"low": 3.5, "high": 10.0},
    }
    cold = cold_start_minutes(r1_bytes)
    for source, span in restart_minutes(r1_bytes).items():
        assert (cold[source]["low"] - span["low"], cold[source]["high"] - span["high"]) == pytest.approx((2.0, 5.0))
