"""The performance options in the capacity planner (infra/planning/engine_features.py) against hand-computed
numbers, the rules that need the model's architecture (infra/planning/profile_rules.py), and the prod plan with a
profile."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import yaml

from infra.catalog import GPU_MEMORY, MACHINE_PROFILES
from infra.cli.main import main
from infra.cli.plan import PROJECT_ROOT
from infra.planning.architectures import architecture_from_config, find_architecture
from infra.planning.capacity import EngineSettings, plan_capacity
from infra.planning.engine_features import blocks_per_sequence, layer_bytes_per_gpu, mtp_weight_bytes
from infra.planning.model_capacity import capacity_findings, profile_json
from serve_app.spec import parse_models

H100 = GPU_MEMORY["nvidia-h100-mega-80gb"]
R1 = find_architecture("deepseek-ai/DeepSeek-R1")
QWEN_7B = find_architecture("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")
PROD = EngineSettings(tensor_parallel_size=8, pipeline_parallel_size=2, max_model_len=32768, max_num_seqs=64)
R1_MODEL = {
    "id": "deepseek-r1",
    "source": "deepseek-ai/DeepSeek-R1",
    "acceleratorType": "H100",
    "tensorParallelSize": 8,
    "pipelineParallelSize": 2,
}


def plan(**changes):
    assert R1 is not None
    return plan_capacity(R1, H100, dataclasses.replace(PROD, **changes))


# --- FP8 KV cache ---------------------------------------------------------------------------------------------


def test_fp8_kv_halves_the_bytes_per_token_and_doubles_the_tokens():
    base, fp8 = plan(), plan(kv_cache_dtype="fp8")
    # MLA: kv_lora_rank 512 + qk_rope_head_dim 64 = 576 elements per token and layer on every TP rank; the binding
    # stage 2 holds 30 of the 61 layers: 30 x 576 x 2 B = 34,560 B in BF16, 30 x 576 x 1 B = 17,280 B in FP8.
    assert [stage.kv_bytes_per_token for stage in base.stages] == [31 * 1152, 30 * 1152]
    assert [stage.kv_bytes_per_token for stage in fp8.stages] == [31 * 576, 30 * 576]
    assert fp8.weight_bytes_per_gpu == base.weight_bytes_per_gpu
    assert 1.99 <= fp8.kv_tokens / base.kv_tokens <= 2.01, (fp8.kv_tokens, base.kv_tokens)


# --- MTP ------------------------------------------------------------------------------------------------------


def test_the_mtp_layers_weights_per_gpu_at_tp_8_pp_2():
    # One R1 MoE layer at TP 8, FP8 linears: replicated q_a_proj + kv_a_proj_with_mqa 7168 x (1536 + 576) =
    # 15,138,816 B; TP-split q_b 1536 x 128 x 192 + kv_b 512 x 128 x 256 + o_proj 128 x 128 x 7168 + 257 experts x 3 x
    # 7168 x 2048 = 11,490,295,808 / 8 = 1,436,286,976 B; BF16 norms and router (512 + 2 x 7168 + 1536 + 256 x 7168 +
    # 256) x 2 = 3,703,296 B. Layer: 1,455,129,088 B.
    # + eh_proj 2 x 7168 x 7168 x 2 B = 205,520,896 B (BF16 nn.Linear on every rank), three norms 3 x 7168 x 2 =
    # 43,008 B, + its own embed_tokens under PP: 129,280 / 8 x 7168 x 2 = 231,669,760 B.
    assert mtp_weight_bytes(R1, 8, 2, False) == 1_455_129_088 + 205_520_896 + 43_008 + 231_669_760
    # Without pipeline parallelism vLLM shares the target's embedding.
    assert mtp_weight_bytes(R1, 8, 1, False) == 1_455_129_088 + 205_520_896 + 43_008
    assert mtp_weight_bytes(QWEN_7B, 2, 1, False) == 0


def test_mtp_adds_its_weights_and_one_latent_per_token_to_the_last_stage_only():
    base, mtp = plan(), plan(mtp_speculative_tokens=1)
    assert mtp.stages[0] == base.stages[0]
    assert mtp.stages[1].weight_bytes - base.stages[1].weight_bytes == 1_892_362_752
    assert mtp.stages[1].kv_bytes_per_token == 31 * 1152  # 30 layers + the MTP layer
    assert mtp.kv_tokens < base.kv_tokens
    # More draft tokens reuse the one MTP layer: no more memory.
    assert plan(mtp_speculative_tokens=3).stages == mtp.stages


# --- decode context parallelism -------------------------------------------------------------------------------


def test_dcp_divides_the_replicated_latent_cache_over_the_ranks():
    assert blocks_per_sequence(32768, 64, 1) == 512
    assert blocks_per_sequence(32768, 64, 8) == 64  # 32,768 / 8 = 4,096 tokens per rank, 64 blocks of 64
    assert blocks_per_sequence(1000, 64, 3) == 6  # ceil(1000 / 3) = 334 tokens per rank, ceil(334 / 64) = 6
    base, dcp = plan(), plan(decode_context_parallel_size=8)
    assert dcp.blocks == base.blocks and dcp.stages == base.stages
    assert dcp.kv_tokens == base.blocks * 64 * 8
    assert dcp.concurrency == pytest.approx(base.concurrency * 8)


# --- expert parallelism ---------------------------------------------------------------------------------------


def test_expert_parallel_keeps_r1s_bytes_per_gpu_at_tp_8():
    assert plan(expert_parallel=True).stages == plan().stages  # 256 routed experts = 32 whole ones per GPU


def test_expert_parallel_puts_the_remainder_on_the_first_ranks():
    uneven = dataclasses.replace(R1, n_routed_experts=10)
    expert = 3 * 7168 * 2048
    # TP split: (10 + 1) x expert / 4; EP: ceil(10 / 4) = 3 whole experts + the shared one split 4 ways.
    assert layer_bytes_per_gpu(uneven, 3, 4, True) - layer_bytes_per_gpu(uneven, 3, 4, False) == (
        3 * expert + expert // 4 - 11 * expert // 4
    )
    assert layer_bytes_per_gpu(uneven, 0, 4, True) == layer_bytes_per_gpu(uneven, 0, 4, False)  # a dense layer


def test_num_nextn_predict_layers_is_read_from_config_json():
    config = {
        "model_type": "deepseek_v3",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 8,
        "intermediate_size": 128,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
        "kv_lora_rank": 16,
        "v_head_dim": 8,
        "num_nextn_predict_layers": 1,
    }
    assert architecture_from_config(config, "tiny").mtp_layers == 1
    assert architecture_from_config({**config, "num_nextn_predict_layers": 0}, "tiny").mtp_layers == 0


# --- the rules that need the architecture ---------------------------------------------------------------------


def findings(**keys):
    models = parse_models([{**R1_MODEL, **keys}])
    return capacity_findings(models, MACHINE_PROFILES["a3-megagpu-8g"])


def test_fp8_e5m2_is_refused_for_mla_citing_the_backends():
    errors, _ = findings(kvCacheDtype="fp8_e5m2")
    assert errors == [
        "llmserve:models[0].kvCacheDtype: no MLA attention backend of vLLM 0.29 accepts it for "
        "deepseek-ai/DeepSeek-R1, so vLLM refuses to start (vllm/v1/attention/backends/mla/flashmla.py lines 48-54, "
        "triton_mla.py lines 132-138); found fp8_e5m2; allowed: auto, bfloat16, fp8, fp8_e4m3"
    ]
    assert findings(kvCacheDtype="fp8") == ([], [])


def test_mtp_on_a_model_without_mtp_layers_is_refused():
    errors, _ = findings(
        id="qwen",
        source="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        tensorParallelSize=2,
        pipelineParallelSize=1,
        mtpSpeculativeTokens=1,
    )
    assert len(errors) == 1 and errors[0].startswith(
        "llmserve:models[0].mtpSpeculativeTokens: deepseek-ai/DeepSeek-R1-Distill-Qwen-7B has no "
        "multi-token-prediction layer"
    ), errors
    assert "vllm/config/speculative.py lines 1305-1328" in errors[0]


def test_more_draft_tokens_than_mtp_layers_is_a_warning():
    errors, warnings = findings(mtpSpeculativeTokens=2)
    assert errors == [] and len(warnings) == 1
    assert warnings[0].startswith("llmserve:models[0].mtpSpeculativeTokens: deepseek-ai/DeepSeek-R1 has 1 MTP layer")


def test_expert_parallel_on_a_dense_model_is_refused():
    errors, _ = findings(
        id="qwen",
        source="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        tensorParallelSize=2,
        pipelineParallelSize=1,
        expertParallel=True,
    )
    assert errors == [
        "llmserve:models[0].expertParallel: deepseek-ai/DeepSeek-R1-Distill-Qwen-7B is not a mixture-of-experts "
        "model, and vLLM refuses expert parallelism for it ('Number of experts in the model must be greater than 0 "
        "when expert parallelism is enabled.', vllm/config/model.py lines 1360-1365, 1420-1421); found true; "
        "allowed: false or unset"
    ]


def test_dcp_on_a_gqa_model_needs_more_tp_ranks_than_kv_heads():
    # Qwen-7B: 28 heads, 4 KV heads. At TP 2 no DCP is possible; at TP 8 at most 8 / 4 = 2, and 7 % 2 != 0.
    errors, _ = findings(
        id="qwen",
        source="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        tensorParallelSize=2,
        pipelineParallelSize=1,
        decodeContextParallelSize=2,
    )
    assert len(errors) == 1 and "vllm/config/model.py lines 1432-1461" in errors[0], errors
    assert errors[0].endswith("allowed: 1 (unset) at this tensorParallelSize"), errors


# --- capacity.json and the plan -------------------------------------------------------------------------------


def test_profile_json_says_the_profile_and_what_it_predicts():
    spec = parse_models([{**R1_MODEL, "profile": "fp8-kv", "maxNumSeqs": 64}])[0]
    report = plan_capacity(R1, H100, dataclasses.replace(PROD, kv_cache_dtype="fp8"))
    entry = profile_json(spec, report)
    assert entry["name"] == "fp8-kv"
    assert entry["settings"] == {
        "kv_cache_dtype": "fp8",
        "mtp_speculative_tokens": 0,
        "expert_parallel": False,
        "decode_context_parallel_size": 1,
    }
    assert entry["without_profile"]["kv_tokens"] == plan().kv_tokens
    assert entry["kv_tokens_ratio"] == 2.0
    assert profile_json(parse_models([R1_MODEL])[0], plan())["name"] == "none"
    assert profile_json(parse_models([{**R1_MODEL, "kvCacheDtype": "fp8"}])[0], report)["name"] == "custom"


def test_the_prod_plan_with_the_fp8_kv_profile_shows_about_twice_todays_kv_tokens(tmp_path, capsys):
    config = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())["config"]
    work = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, work, ignore=shutil.ignore_patterns(".venv*", "build", ".git", "__pycache__"))
    (work / "Pulumi.today.yaml").write_text(yaml.safe_dump({"config": config}))
    config["llmserve:models"][0]["profile"] = "fp8-kv"
    (work / "Pulumi.fp8.yaml").write_text(yaml.safe_dump({"config": config}))
    assert main(["plan", "today", "--out", str(tmp_path / "today")], root=work) == 0
    assert main(["plan", "fp8", "--out", str(tmp_path / "fp8")], root=work) == 0
    today = json.loads((tmp_path / "today" / "capacity.json").read_text())["models"][0]
    fp8 = json.loads((tmp_path / "fp8" / "capacity.json").read_text())["models"][0]
    assert today["profile"]["name"] == "none" and today["capacity"]["kv_cache_dtype"] == "auto"
    assert fp8["profile"]["name"] == "fp8-kv" and fp8["capacity"]["kv_cache_dtype"] == "fp8"
    ratio = fp8["capacity"]["kv_tokens"] / today["capacity"]["kv_tokens"]
    assert 1.95 <= ratio <= 2.05, (fp8["capacity"]["kv_tokens"], today["capacity"]["kv_tokens"])
    assert fp8["profile"]["without_profile"]["kv_tokens"] == today["capacity"]["kv_tokens"]
    summary = capsys.readouterr().out
    assert "    profile none: vLLM's defaults" in summary
    assert "    profile fp8-kv (kvCacheDtype fp8): x2.0 the KV tokens of vLLM's defaults" in summary


def test_the_plan_refuses_what_vllm_refuses_at_tp_8_x_pp_2(tmp_path, capsys):
    config = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())["config"]
    config["llmserve:models"][0].update(
        decodeContextParallelSize=3,
        kvCacheDtype="fp8_e5m2",
        engineKwargs={"speculative_config": {"method": "dflash", "num_speculative_tokens": 2}},
    )
    work = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, work, ignore=shutil.ignore_patterns(".venv*", "build", ".git", "__pycache__"))
    (work / "Pulumi.probe.yaml").write_text(yaml.safe_dump({"config": config}))
    assert main(["plan", "probe"], root=work) == 2
    err = capsys.readouterr().err
    assert "llmserve:models[0].decodeContextParallelSize: vLLM 0.29.0 refuses to start" in err, err
    assert "llmserve:models[0].engineKwargs.speculative_config: vLLM 0.29.0 refuses to start ('dflash with" in err
    assert "Traceback" not in err and not (work / "build").exists()


def test_a_refused_kv_cache_dtype_for_mla_fails_the_plan(tmp_path, capsys):
    config = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())["config"]
    config["llmserve:models"][0]["kvCacheDtype"] = "fp8_e5m2"
    work = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, work, ignore=shutil.ignore_patterns(".venv*", "build", ".git", "__pycache__"))
    (work / "Pulumi.probe.yaml").write_text(yaml.safe_dump({"config": config}))
    assert main(["plan", "probe"], root=work) == 2
    assert (
        "llmserve:models[0].kvCacheDtype: no MLA attention backend of vLLM 0.29 accepts it" in capsys.readouterr().err
    )


def test_the_architecture_table_knows_r1s_mtp_layer():
    assert R1 is not None and R1.mtp_layers == 1
    assert QWEN_7B is not None and QWEN_7B.mtp_layers == 0


def test_the_capacity_command_sizes_the_options(capsys):
    args = ["capacity", "deepseek-r1", "--machine", "a3-megagpu-8g", "--tp", "8", "--pp", "2", "--max-model-len"]
    assert main([*args, "32768", "--kv-cache-dtype", "fp8", "--mtp-speculative-tokens", "1"]) == 0
    out = capsys.readouterr().out
    assert "KV cache: 1,547,776 tokens (fp8, 17,856 B/token/GPU), 47.23x concurrency at 32,768 tokens" in out, out
    assert main([*args, "32768", "--decode-context-parallel-size", "3"]) == 2
    assert "decode context parallel size 3 must divide the tensor parallel size 8" in capsys.readouterr().err


def test_the_capacity_command_applies_the_architecture_rules(capsys):
    args = ["capacity", "deepseek-r1-distill-qwen-7b", "--machine", "a3-megagpu-8g", "--tp", "2"]
    assert main([*args, "--mtp-speculative-tokens", "1"]) == 1
    assert "error: mtpSpeculativeTokens: deepseek-ai/DeepSeek-R1-Distill-Qwen-7B has no multi-token-prediction" in (
        capsys.readouterr().out
    )
