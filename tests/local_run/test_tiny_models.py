"""`local_run.tiny_models` without torch: which tiny architecture stands in for which model source, the
error for the rest, the chat template, and the build cache's all-or-nothing behaviour.

The builds themselves (torch, transformers, tokenizers, vLLM) are tested in
tests/e2e/test_tiny_models_build.py, in the local-run venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config.stackfiles import known_stacks, stack_config
from local_run import tiny_models
from local_run.tiny_models import (
    ARCHITECTURES,
    MANIFEST,
    SUPPORTED,
    UnsupportedModelError,
    architecture_for,
    build_tiny_model,
    default_cache_dir,
    tiny_model_for,
)
from local_run.tiny_models import build as tiny_build
from local_run.tiny_models import specs as tiny_specs

ROOT = Path(__file__).resolve().parents[2]

# Every model source that a stack serves must have a row here, so a new model in a stack is a conscious
# decision about its local stand-in.
EXPECTED: dict[str, str] = {
    "deepseek-ai/DeepSeek-R1": "deepseek_v3",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": "qwen2",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": "qwen2",
}

MORE_SOURCES: list[tuple[str, str]] = [
    ("deepseek-ai/DeepSeek-R1-0528", "deepseek_v3"),
    ("deepseek-ai/DeepSeek-V3", "deepseek_v3"),
    ("deepseek-ai/DeepSeek-V3-0324", "deepseek_v3"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "qwen2"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "qwen2"),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "llama"),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "llama"),
    ("Qwen/Qwen2-0.5B-Instruct", "qwen2"),
    ("Qwen/Qwen2.5-0.5B-Instruct", "qwen2"),
    ("Qwen/Qwen2.5-Coder-7B-Instruct", "qwen2"),
    ("meta-llama/Meta-Llama-3-8B-Instruct", "llama"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama"),
    ("meta-llama/Llama-3.3-70B-Instruct", "llama"),
    # Case-insensitive, and the HF id may end a path or a mirror URI.
    ("DEEPSEEK-AI/deepseek-r1", "deepseek_v3"),
    ("  deepseek-ai/DeepSeek-R1/  ", "deepseek_v3"),
    ("/models/deepseek-ai/DeepSeek-R1", "deepseek_v3"),
    ("gs://llm-weights/deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "llama"),
    ("s3://bucket/mirror/Qwen/Qwen2.5-7B-Instruct/", "qwen2"),
]

UNSUPPORTED: list[str] = [
    "gs://bucket/x",
    "/models/r1",
    "",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "Qwen/Qwen3-8B",
    "deepseek-ai/DeepSeek-V2-Lite",
    "deepseek-ai/DeepSeek-R1-Distill",  # no base model named
    # Same name prefix, another architecture.
    "Qwen/Qwen2.5-VL-7B-Instruct",
    "Qwen/Qwen2-Audio-7B-Instruct",
    "Qwen/Qwen2-57B-A14B-Instruct",
    "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
]


def _stack_sources() -> list[tuple[str, str, str]]:
    rows = []
    for stack in known_stacks(ROOT):
        config, _ = stack_config(stack, ROOT)
        for model in json.loads(config["llmserve:models"]):
            rows.append((stack, model["id"], model["source"]))
    return rows


STACK_SOURCES = _stack_sources()


def test_the_three_stacks_are_covered() -> None:
    """The parametrization below reads every stack file; dev, staging and prod must be among them."""
    assert {"dev", "staging", "prod"} <= {stack for stack, _, _ in STACK_SOURCES}


@pytest.mark.parametrize(
    ("stack", "model_id", "source"), STACK_SOURCES, ids=[f"{stack}-{model_id}" for stack, model_id, _ in STACK_SOURCES]
)
def test_every_stack_model_has_a_tiny_stand_in(stack: str, model_id: str, source: str) -> None:
    """`python -m local_run.server <stack>` can replace each of the stack's models."""
    assert source in EXPECTED, (
        f"Pulumi.{stack}.yaml serves {source!r} ({model_id}); add it to EXPECTED with the tiny architecture "
        "that should stand in for it (and to local_run.tiny_models.SUPPORTED if none fits)"
    )
    assert architecture_for(source) == EXPECTED[source]


@pytest.mark.parametrize(("source", "architecture"), [*EXPECTED.items(), *MORE_SOURCES])
def test_architecture_for_maps_sources_by_their_hugging_face_id(source: str, architecture: str) -> None:
    assert architecture_for(source) == architecture


@pytest.mark.parametrize("source", UNSUPPORTED)
def test_unsupported_sources_are_rejected(source: str) -> None:
    with pytest.raises(UnsupportedModelError):
        architecture_for(source)


def test_unsupported_error_names_the_source_and_every_supported_family() -> None:
    with pytest.raises(UnsupportedModelError) as raised:
        architecture_for("gs://bucket/x")
    message = str(raised.value)
    assert message.startswith("cannot build a tiny stand-in for 'gs://bucket/x'")
    assert "supported: DeepSeek-R1/V3 (deepseek_v3), " in message
    for family in SUPPORTED:
        assert f"{family.name} ({family.architecture})" in message
    assert isinstance(raised.value, ValueError)


def test_architectures_are_the_three_vllm_code_paths() -> None:
    assert ARCHITECTURES == ("deepseek_v3", "qwen2", "llama")
    assert set(tiny_specs.SPECS) == set(ARCHITECTURES)
    assert {spec.hf_architecture for spec in tiny_specs.SPECS.values()} == {
        "DeepseekV3ForCausalLM",
        "Qwen2ForCausalLM",
        "LlamaForCausalLM",
    }


def test_deepseek_stand_in_keeps_what_vllm_needs_for_r1_code_paths() -> None:
    """MLA with R1's latent sizes (the CPU MLA backend supports no other) and noaux_tc routing (without
    it vLLM creates no e_score_correction_bias and the load fails)."""
    config = tiny_specs.SPECS["deepseek_v3"].config
    assert (config["kv_lora_rank"], config["qk_rope_head_dim"]) == (512, 64)
    assert (config["topk_method"], config["scoring_func"]) == ("noaux_tc", "sigmoid")
    assert config["first_k_dense_replace"] < config["num_hidden_layers"]  # at least one MoE layer
    assert config["n_routed_experts"] % config["n_group"] == 0
    assert config["topk_group"] <= config["n_group"]
    assert config["num_experts_per_tok"] <= config["n_routed_experts"] // config["n_group"] * config["topk_group"]


def test_every_stand_in_accepts_long_stack_contexts() -> None:
    """Stacks keep their maxModelLen (R1's preset: 32768), which vLLM checks against the config."""
    for spec in tiny_specs.SPECS.values():
        assert spec.config["max_position_embeddings"] >= 32768


def test_build_rejects_an_unknown_architecture_before_importing_torch(tmp_path: Path) -> None:
    with pytest.raises(
        UnsupportedModelError, match="unknown tiny architecture 'mistral'; supported: deepseek_v3, qwen2, llama"
    ):
        build_tiny_model("mistral", tmp_path)
    assert not any(tmp_path.iterdir())


def test_tiny_model_for_rejects_unsupported_sources_before_building(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="'gs://bucket/x'"):
        tiny_model_for("gs://bucket/x", tmp_path)
    assert not any(tmp_path.iterdir())


def test_importing_the_module_imports_no_ml_library() -> None:
    """Deploy-time code and the runner's argument checks import it where torch is absent."""
    code = (
        "import sys, local_run.tiny_models; "
        "print(sorted({'torch', 'transformers', 'tokenizers', 'vllm'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_default_cache_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMSERVE_CACHE_DIR", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"


def test_default_cache_dir_is_under_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLMSERVE_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "llmserve" / "tiny-models"


# --------------------------------------------------------------------------------------------------
# The cache, with the heavy build replaced by a fake that writes a manifest


def _fake_build(calls: list[str]):
    def build_into(architecture: str, directory: Path) -> None:
        calls.append(architecture)
        (directory / "config.json").write_text("{}")
        (directory / MANIFEST).write_text(json.dumps({"architecture": architecture}))

    return build_into


def test_build_is_cached_by_architecture_and_build_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []
    monkeypatch.setattr(tiny_build, "_build_into", _fake_build(calls))
    first = build_tiny_model("qwen2", tmp_path)
    assert first == tmp_path / f"qwen2-v{tiny_models.BUILD_VERSION}"
    assert build_tiny_model("qwen2", tmp_path) == first
    assert build_tiny_model("llama", tmp_path) != first
    assert calls == ["qwen2", "llama"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"llama-v{tiny_models.BUILD_VERSION}", first.name]


def test_a_failed_build_leaves_no_cache_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A build that dies half-way (here: after writing one file) leaves nothing behind, and the next call
    builds again instead of returning a half-written model."""

    def failing(architecture: str, directory: Path) -> None:
        (directory / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny_build, "_build_into", failing)
    with pytest.raises(KeyboardInterrupt):
        build_tiny_model("llama", tmp_path)
    assert list(tmp_path.iterdir()) == []

    calls: list[str] = []
    monkeypatch.setattr(tiny_build, "_build_into", _fake_build(calls))
    assert (build_tiny_model("llama", tmp_path) / MANIFEST).is_file()
    assert calls == ["llama"]


def test_a_cache_entry_without_manifest_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = tmp_path / f"llama-v{tiny_models.BUILD_VERSION}"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    calls: list[str] = []
    monkeypatch.setattr(tiny_build, "_build_into", _fake_build(calls))
    assert (build_tiny_model("llama", tmp_path) / MANIFEST).is_file()
    assert calls == ["llama"]


def test_stale_partial_builds_are_removed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Temporary dirs of builds killed long ago are cleaned up; a recent one (maybe running) is kept."""
    name = f"llama-v{tiny_models.BUILD_VERSION}"
    stale, recent = tmp_path / f".{name}.old.partial", tmp_path / f".{name}.new.partial"
    stale.mkdir()
    recent.mkdir()
    long_ago = tiny_build.time.time() - 2 * tiny_build._STALE_PARTIAL_S
    os.utime(stale, (long_ago, long_ago))
    monkeypatch.setattr(tiny_build, "_build_into", _fake_build([]))
    build_tiny_model("llama", tmp_path)
    assert not stale.exists()
    assert recent.exists()


# --------------------------------------------------------------------------------------------------
# The chat template, rendered the way transformers and vLLM render it (sandboxed Jinja)


def _render(messages: list[dict], add_generation_prompt: bool = True) -> str:
    jinja2 = pytest.importorskip("jinja2")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(tiny_models.CHAT_TEMPLATE).render(
        messages=messages,
        add_generation_prompt=add_generation_prompt,
        bos_token=tiny_models.BOS,
        eos_token=tiny_models.EOS,
    )


def test_chat_template_renders_a_conversation_and_opens_the_reasoning_block() -> None:
    rendered = _render(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
            {"role": "user", "content": "and 3+3?"},
        ]
    )
    assert rendered == (
        "<|begin_of_text|><|system|>Be brief.<|user|>2+2?<|assistant|>4<|end_of_text|>"
        "<|user|>and 3+3?<|assistant|><think>\n"
    )


def test_chat_template_without_generation_prompt_ends_after_the_last_message() -> None:
    assert _render([{"role": "user", "content": "hi"}], add_generation_prompt=False) == "<|begin_of_text|><|user|>hi"


def test_chat_template_rejects_roles_it_cannot_render() -> None:
    jinja2 = pytest.importorskip("jinja2")
    with pytest.raises(
        jinja2.exceptions.TemplateError, match="supports the roles system, user and assistant; got tool"
    ):
        _render([{"role": "tool", "content": "42"}])
