"""A benchmark sweep as vLLM benchmark command lines, and as a Kubernetes Job that runs them next to the service.

Pure: `vllm_bench_args` is one point of a sweep as the arguments of vLLM 0.29's `vllm bench serve`
(`vllm/benchmarks/serve.py` `add_cli_args`, the random dataset's `--random-input-len` / `--random-output-len`
in `vllm/benchmarks/datasets/datasets.py`); `python -m infra bench` runs them here (infra/cli/bench.py), and
`render_bench_job` wraps the same arguments in a Job on the ray-llm image, which ships vLLM and its `vllm` CLI.
The Job reads the API key from the stack's Secret (the newest key of a rotation's list), reaches the Serve
Service inside the namespace (the serve-ingress NetworkPolicy admits every pod of the serving namespace), and
prints each result JSON into its log between markers, so that one `kubectl logs` fetches them all after the
pod has ended (infra/cli/bench_cluster.py parses them).
"""

from __future__ import annotations

import shlex

from infra.catalog import PART_OF_LABEL, SYSTEM_POOL_LABELS
from infra.planning.benchmark import PERCENTILES, SweepPoint
from infra.render.rayservice import API_KEY_SECRET_KEY, SERVE_PORT

# The RayService's name in the program (__main__.py, RayServiceSettings(name="llm")): its Service is
# `llm-serve-svc` and its API-key Secret `llm-api-key` (infra/render/rayservice.py).
RAYSERVICE_NAME = "llm"
BENCH_JOB_NAME = "llmserve-bench"
RESULT_MARKER = "LLMSERVE-BENCH-RESULT"  # + point name + base64 of its result JSON, one line per point
FAILED_MARKER = "LLMSERVE-BENCH-FAILED"  # + point name + vLLM's exit code
RESULTS_DIR = "/tmp/llmserve-bench"
RAY_UID = 1000  # the `ray` user of the rayproject images, whose home holds the Hugging Face cache
# vLLM 0.29's two OpenAI backends (vllm/benchmarks/lib/endpoint_request_func.py ASYNC_REQUEST_FUNCS) and the
# route each posts to; both send $OPENAI_API_KEY as `Authorization: Bearer` (openai completions, line 153).
BACKENDS = {"completions": ("openai", "/v1/completions"), "chat": ("openai-chat", "/v1/chat/completions")}


def vllm_bench_args(
    point: SweepPoint, *, base_url: str, model: str, tokenizer: str, api: str, result_dir: str, warmups: int = 0
) -> list[str]:
    """The arguments of `vllm bench serve` for one point; `base_url` is the server's root (no /v1). Every
    request asks for exactly the shape's output tokens (`--ignore-eos`), the random dataset makes prompts of
    exactly its input tokens with the model's own tokenizer, and the result JSON holds the p50/p99 figures
    infra/planning/benchmark.py reads. `warmups` requests go first, unmeasured (`--num-warmups`: vLLM sends
    them and waits for their answers before its measured run starts): the first point of a sweep sends one,
    so that a model scaled to zero is up before anything is measured."""
    backend, endpoint = BACKENDS[api]
    warmup = ["--num-warmups", str(warmups)] if warmups else []
    return [
        *warmup,
        "--backend",
        backend,
        "--base-url",
        base_url.rstrip("/").removesuffix("/v1"),
        "--endpoint",
        endpoint,
        "--model",
        model,
        "--tokenizer",
        tokenizer,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(point.shape.input_tokens),
        "--random-output-len",
        str(point.shape.output_tokens),
        "--ignore-eos",
        "--num-prompts",
        str(point.num_prompts),
        "--max-concurrency",
        str(point.concurrency),
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        ",".join(str(p) for p in PERCENTILES),
        "--disable-tqdm",
        "--save-result",
        "--result-dir",
        result_dir,
        "--result-filename",
        f"{point.name}.json",
    ]


def job_script(points: list[SweepPoint], *, model: str, tokenizer: str, api: str, base_url: str, timeout_s: int) -> str:
    """The Job's shell script: the newest API key from the Secret's list, then each point in turn, bounded by
    `timeout`, its result printed between markers (a failed point is reported and the sweep goes on)."""
    lines = [
        # The Secret holds one key or a rotation's list ("OLD,NEW", commas and/or whitespace): use the newest.
        "OPENAI_API_KEY=$(printf '%s' \"$LLMSERVE_API_KEYS\" | tr ', \\t' '\\n\\n\\n' | grep . | tail -n 1)",
        "export OPENAI_API_KEY",
        f"mkdir -p {RESULTS_DIR}",
    ]
    for point in points:
        args = vllm_bench_args(
            point,
            base_url=base_url,
            model=model,
            tokenizer=tokenizer,
            api=api,
            result_dir=RESULTS_DIR,
            warmups=1 if point == points[0] else 0,
        )
        result = f"{RESULTS_DIR}/{point.name}.json"
        lines += [
            f"echo 'point {point.name}: {point.num_prompts} requests at concurrency {point.concurrency}'",
            f"if timeout {timeout_s} vllm bench serve {shlex.join(args)}; then",
            f"  printf '%s %s ' {RESULT_MARKER} {point.name}; base64 -w0 {result}; echo",
            "else",
            f"  echo {FAILED_MARKER} {point.name} $?",
            "fi",
        ]
    return "\n".join(lines) + "\n"


def render_bench_job(
    points: list[SweepPoint], *, namespace: str, image: str, model: str, tokenizer: str, api: str, timeout_s: int
) -> dict:
    """The Job that runs the sweep against the stack's Serve Service from inside its namespace, on the system
    pool; it runs once (no retry: a second sweep would measure a different warm-up) and is deleted an hour after
    it ends."""
    base_url = f"http://{RAYSERVICE_NAME}-serve-svc.{namespace}.svc:{SERVE_PORT}"
    script = job_script(points, model=model, tokenizer=tokenizer, api=api, base_url=base_url, timeout_s=timeout_s)
    labels = {**PART_OF_LABEL, "app.kubernetes.io/name": BENCH_JOB_NAME}
    deadline = timeout_s * len(points) + 600  # every point at its bound, plus the image pull and tokenizer
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": BENCH_JOB_NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": dict(SYSTEM_POOL_LABELS),
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RAY_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "bench",
                            "image": image,
                            "command": ["/bin/bash", "-c", script],
                            "env": [
                                {
                                    "name": "LLMSERVE_API_KEYS",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": f"{RAYSERVICE_NAME}-api-key",
                                            "key": API_KEY_SECRET_KEY,
                                        }
                                    },
                                }
                            ],
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                            "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
                        }
                    ],
                },
            },
        },
    }
