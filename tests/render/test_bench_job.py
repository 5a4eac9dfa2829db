"""The sweep as `vllm bench serve` arguments and as the in-cluster Job (infra/render/bench_job.py)."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess

import yaml

from infra.planning.benchmark import parse_shapes, sweep
from infra.render.bench_job import job_script, render_bench_job, vllm_bench_args

POINTS = sweep(parse_shapes("1k/8k"), (1, 16))


def _pairs(args: list[str]) -> dict[str, str]:
    return {
        flag: value for flag, value in itertools.pairwise(args) if flag.startswith("--") and not value.startswith("--")
    }


def test_one_point_as_vllm_0_29_benchmark_arguments():
    """The flag names are vLLM 0.29's (vllm/benchmarks/serve.py add_cli_args; the random dataset's in
    vllm/benchmarks/datasets/datasets.py); the base URL is the server root, the endpoint carries /v1."""
    args = vllm_bench_args(
        POINTS[1],
        base_url="http://127.0.0.1:8000/v1/",
        model="deepseek-r1",
        tokenizer="/t",
        api="chat",
        result_dir="/r",
    )
    assert _pairs(args) == {
        "--backend": "openai-chat",
        "--base-url": "http://127.0.0.1:8000",
        "--endpoint": "/v1/chat/completions",
        "--model": "deepseek-r1",
        "--tokenizer": "/t",
        "--dataset-name": "random",
        "--random-input-len": "1024",
        "--random-output-len": "8192",
        "--num-prompts": "64",
        "--max-concurrency": "16",
        "--percentile-metrics": "ttft,tpot,itl,e2el",
        "--metric-percentiles": "50,99",
        "--result-dir": "/r",
        "--result-filename": "1k-8k-c16.json",
    }
    assert {"--ignore-eos", "--save-result", "--disable-tqdm"} <= set(args)
    completions = vllm_bench_args(
        POINTS[0], base_url="http://h:1", model="m", tokenizer="t", api="completions", result_dir="/r"
    )
    assert _pairs(completions)["--backend"] == "openai" and _pairs(completions)["--endpoint"] == "/v1/completions"


def test_the_job_reads_the_key_from_the_stacks_secret_and_reaches_the_serve_service(plan_output):
    """The Secret and key the Job names are the ones the plan creates for the RayService (`llm-api-key`, key
    `keys`), in the serving namespace; the URL is KubeRay's serve Service of the RayService `llm`."""
    job = render_bench_job(
        POINTS,
        namespace="llm",
        image="rayproject/ray-llm:x",
        model="m",
        tokenizer="t",
        api="completions",
        timeout_s=600,
    )
    env = job["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]
    manifests = [doc for doc in yaml.safe_load_all((plan_output("dev").folder / "manifests.yaml").read_text()) if doc]
    secrets = [doc for doc in manifests if doc["kind"] == "Secret" and doc["metadata"]["name"] == env["name"]]
    assert len(secrets) == 1 and env["key"] in (secrets[0].get("data") or {}) | (secrets[0].get("stringData") or {})
    # KubeRay names the Service in front of the Serve proxies <RayService name>-serve-svc.
    assert [doc["metadata"]["name"] for doc in manifests if doc["kind"] == "RayService"] == ["llm"]
    assert secrets[0]["metadata"]["namespace"] == job["metadata"]["namespace"] == "llm"
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert "--base-url http://llm-serve-svc.llm.svc:8000 " in script
    assert job["spec"]["backoffLimit"] == 0
    assert script.count("--num-warmups 1 ") == 1 and script.index("--num-warmups 1 ") < script.index("1k-8k-c1.json")
    assert job["spec"]["activeDeadlineSeconds"] == 600 * 2 + 600


def test_the_job_script_uses_the_newest_key_and_prints_each_result(tmp_path):
    """Run the rendered script with a stand-in `vllm` and `timeout`: the key of "OLD, NEW" is NEW, a result goes
    to the log as base64 JSON after its marker, and a failed point is reported while the next one still runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "timeout").write_text('#!/bin/bash\nshift\nexec "$@"\n')
    (bin_dir / "vllm").write_text(
        "#!/bin/bash\n"
        'echo "key=$OPENAI_API_KEY"\n'
        'case "$*" in *c1.json*) exit 3;; esac\n'
        'dir=$(echo "$@" | sed "s/.*--result-dir \\([^ ]*\\).*/\\1/")\n'
        'echo \'{"completed": 64}\' > "$dir/1k-8k-c16.json"\n'
    )
    for tool in ("timeout", "vllm"):
        (bin_dir / tool).chmod(0o755)
    script = job_script(POINTS, model="m", tokenizer="t", api="completions", base_url="http://s:8000", timeout_s=5)
    script = script.replace("/tmp/llmserve-bench", str(tmp_path / "results"))
    result = subprocess.run(
        ["/bin/bash", "-c", script],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LLMSERVE_API_KEYS": "old-key-1, new-key-2\n"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "key=new-key-2" in lines
    assert "LLMSERVE-BENCH-FAILED 1k-8k-c1 3" in lines
    printed = [line.split() for line in lines if line.startswith("LLMSERVE-BENCH-RESULT")]
    assert [(words[1], json.loads(base64.b64decode(words[2]))) for words in printed] == [
        ("1k-8k-c16", {"completed": 64})
    ]
