"""What ships where: the cluster bundle is self-contained, and the deploy-time modules need neither Ray nor
Starlette (deploy machines only have Pulumi and its dependencies, PyYAML among them)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from serve_app.bundle import CLUSTER_FILES, cluster_sources
from serve_app.spec import OWNED_ENGINE_ARGS, RAY_OWNED_ENGINE_ARGS, REFUSED_ENGINE_ARGS, REMOVED_ENGINE_ARGS
from serve_app.versions_data import (
    RAY_GPU_ACCELERATOR_TYPES,
    RAY_VERSION,
    VLLM_ENGINE_ARG_NAMES,
    VLLM_FRONTEND_ARG_NAMES,
    VLLM_REASONING_PARSERS,
    VLLM_VERSION,
)

REPO = Path(__file__).resolve().parents[2]
# What the ray-llm image provides besides the standard library.
CLUSTER_THIRD_PARTY = {"ray", "starlette", "fastapi"}


def imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_cluster_sources_are_exactly_the_listed_files() -> None:
    sources = cluster_sources()
    assert list(sources) == sorted(CLUSTER_FILES), list(sources)
    for relative, text in sources.items():
        assert text == (REPO / relative).read_text(), f"{relative}: text differs from the file"
    assert "serve_app/ingress.py" in sources and not any(path.startswith("serve_app/spec/") for path in sources), list(
        sources
    )


def test_cluster_sources_are_closed_under_imports_and_need_only_ray_fastapi_starlette() -> None:
    sources = cluster_sources()
    shipped_modules = {path.removesuffix(".py").replace("/", ".").removesuffix(".__init__") for path in sources}
    for relative, text in sources.items():
        for module in imported_modules(text):
            top = module.split(".")[0]
            if top == "serve_app":
                assert module in shipped_modules, f"{relative} imports {module}, which is not shipped"
            else:
                assert top in sys.stdlib_module_names or top in CLUSTER_THIRD_PARTY, (
                    f"{relative} imports {module}: the cluster has only the stdlib and {sorted(CLUSTER_THIRD_PARTY)}"
                )


def test_shipped_bundle_imports_on_its_own(tmp_path: Path) -> None:
    """Written out like the ConfigMap mount, the bundle imports with only that directory on the path."""
    for relative, text in cluster_sources().items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    script = textwrap.dedent(
        """
        import sys, types
        def stand_in(name, **attributes):  # the real modules need vLLM (present in the ray-llm image)
            module = types.ModuleType(name)
            module.__dict__.update(attributes)
            sys.modules[name] = module
        class OpenAiIngress:
            def __init__(self, llm_deployments, model_cards, *, lora_paths=None): pass
        stand_in("ray.llm._internal.serve.core.ingress.ingress", OpenAiIngress=OpenAiIngress,
                 DEFAULT_ENDPOINTS={}, make_fastapi_ingress=None)
        stand_in("ray.llm._internal.serve.core.configs.openai_api_models", to_model_metadata=None,
                 ChatCompletionRequest=object, ErrorResponse=object, ModelCard=object, ModelList=object,
                 OpenAIHTTPException=Exception)
        stand_in("ray.llm._internal.serve.core.ingress.utils", _sanitize_chat_completion_request=None)
        stand_in("ray.serve.llm", LLMConfig=None, build_llm_deployment=None)
        stand_in("ray.serve.llm.deployment", LLMServer=type("LLMServer", (), {}))
        import serve_app.apps as apps
        import serve_app.ingress as ingress
        print(apps.__file__)
        print(ingress.__file__)
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = result.stdout.strip().splitlines()
    assert len(imported) == 2 and all(path.startswith(str(tmp_path)) for path in imported), (
        f"imported from the repo, not the bundle: {result.stdout}"
    )


def test_deploy_time_modules_import_without_ray_or_starlette() -> None:
    script = textwrap.dedent(
        """
        import importlib.abc, json, sys
        BLOCKED = {"ray", "starlette", "fastapi", "pydantic", "vllm", "pulumi"}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked: {name}")
        sys.meta_path.insert(0, Block())
        from serve_app.spec import parse_models
        from serve_app.builder import serve_config_yaml
        from serve_app.bundle import cluster_sources
        models = parse_models([{"id": "deepseek-r1", "source": "deepseek-ai/DeepSeek-R1", "acceleratorType": "H100",
                                "tensorParallelSize": 8, "pipelineParallelSize": 2}])
        text = serve_config_yaml(models)
        print(json.dumps({"ok": "tensor_parallel_size: 8" in text, "files": len(cluster_sources()),
                          "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"ok": True, "files": len(CLUSTER_FILES), "loaded": []}, report


# ------------------------------------------------------------------------- the version data is consistent


def test_version_data_is_for_the_pinned_versions() -> None:
    assert (RAY_VERSION, VLLM_VERSION) == ("2.60.0", "0.29.0")


@pytest.mark.parametrize(
    "name",
    [
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "max_model_len",
        "enable_prefix_caching",
        "enable_chunked_prefill",
        "reasoning_parser",
        "enforce_eager",
        "kv_cache_dtype",
        "enable_expert_parallel",
        "speculative_config",
        "enable_log_requests",
    ],
)
def test_known_engine_arguments_are_present(name: str) -> None:
    assert name in VLLM_ENGINE_ARG_NAMES, f"{name} missing from VLLM_ENGINE_ARG_NAMES"


def test_rule_tables_agree_with_the_version_data() -> None:
    known = VLLM_ENGINE_ARG_NAMES | VLLM_FRONTEND_ARG_NAMES
    assert not set(REMOVED_ENGINE_ARGS) & known, f"listed as removed but known: {set(REMOVED_ENGINE_ARGS) & known}"
    for table in (OWNED_ENGINE_ARGS, RAY_OWNED_ENGINE_ARGS, REFUSED_ENGINE_ARGS):
        assert set(table) <= known, f"rule for an option vLLM {VLLM_VERSION} does not have: {set(table) - known}"
    assert {"enable_reasoning", "device"} <= set(REMOVED_ENGINE_ARGS)
    assert {"chat_template", "tool_call_parser"} <= VLLM_FRONTEND_ARG_NAMES
    assert {"deepseek_r1", "deepseek_v3", "qwen3"} <= VLLM_REASONING_PARSERS
    assert {"H100", "H200", "L4", "A100-80G", "B200"} <= RAY_GPU_ACCELERATOR_TYPES
