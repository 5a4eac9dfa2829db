"""Capacity refusals, the plan's capacity summary and capacity.json, through `python -m infra plan`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from infra.plan import PROJECT_ROOT, main

R1 = {"id": "deepseek-r1", "source": "deepseek-ai/DeepSeek-R1", "acceleratorType": "H100",
      "tensorParallelSize": 8, "pipelineParallelSize": 2}


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
    assert "llmserve:models[0].pipelineParallelSize: deepseek-ai/DeepSeek-R1's weights need 79.3 GiB per GPU" \
        in err, err
    assert "found tensorParallelSize=8, pipelineParallelSize=1; allowed: tensorParallelSize x " \
           "pipelineParallelSize >= 16 (e.g. pipelineParallelSize 2)" in err, err


def test_max_model_len_beyond_r1s_positions_is_refused(tmp_path, capsys):
    root = _project(tmp_path, "staging", **{"llmserve:models": [{**R1, "maxModelLen": 200000}]})
    err = _refused(root, capsys)
    assert "llmserve:models[0].maxModelLen: longer than deepseek-ai/DeepSeek-R1's max_position_embeddings, so " \
           "vLLM refuses to start; found 200000; allowed: 163840 or less" in err, err


def test_a_kv_budget_below_one_sequence_is_refused_with_the_length_that_fits(tmp_path, capsys):
    llama = {"id": "llama-8b", "source": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "acceleratorType": "L4",
             "minReplicas": 0, "maxReplicas": 1, "maxModelLen": 32768}
    root = _project(tmp_path, "dev", **{"llmserve:models": [llama]})
    err = _refused(root, capsys)
    assert "llmserve:models[0].maxModelLen: the KV cache holds " in err, err
    assert "less than one full-context sequence" in err and "found 32768; allowed: " in err, err


def test_max_num_seqs_beyond_full_context_is_a_warning_in_the_summary(tmp_path, capsys):
    root = _project(tmp_path, "staging", **{"llmserve:models": [{**R1, "maxNumSeqs": 256}]})
    assert main(["plan", "probe", "--out", str(tmp_path / "out")], root=root) == 0
    out = capsys.readouterr().out
    assert "llmserve:models[0].maxNumSeqs: the KV cache holds 26.1 full-context (32768-token) sequences" in out


def test_an_unknown_architecture_is_planned_with_a_warning(tmp_path, capsys):
    other = {"id": "mystery", "source": "gs://my-bucket/mystery", "acceleratorType": "L4", "minReplicas": 0}
    root = _project(tmp_path, "dev", **{"llmserve:models": [other]})
    assert main(["plan", "probe", "--out", str(tmp_path / "out")], root=root) == 0
    out = capsys.readouterr().out
    assert "llmserve:models[0]: capacity not checked: no known architecture for source 'gs://my-bucket/mystery'" \
        in out, out
