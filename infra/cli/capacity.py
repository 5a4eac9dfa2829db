"""`python -m infra capacity MODEL --machine ... --tp ... --pp ...`: the capacity table of one model on one machine,
before a stack exists; its lines are also the per-model lines of the plan's summary (infra/cli/report.py)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from infra.catalog import GPU_MEMORY, MACHINE_PROFILES
from infra.planning.architectures import ARCHITECTURE_ALIASES, WEIGHT_FORMAT_BYTES, find_architecture, load_architecture
from infra.planning.capacity import KV_CACHE_DTYPE_BYTES, CapacityReport, EngineSettings, plan_capacity
from infra.planning.coldstart import cold_start_minutes
from infra.planning.prices import PRICES, PRICES_AS_OF
from infra.planning.profile_rules import profile_problems
from serve_app.versions_data import VLLM_VERSION


def model_lines(model_id: str, capacity: dict) -> list[str]:
    """The summary lines of one model's capacity (from `CapacityReport.as_json`)."""
    gpu = capacity["per_gpu_gib"]
    stages = capacity["stages"]
    binding = f", stage {capacity['binding_stage'] + 1} of {len(stages)} binds" if len(stages) > 1 else ""
    seqs = capacity["max_num_seqs"]
    lines = [
        f"  {model_id}: {capacity['gpus_per_replica']} x {capacity['gpu']} per replica "
        f"(TP {capacity['tensor_parallel_size']} x PP {capacity['pipeline_parallel_size']})",
        f"    per GPU: {gpu['cuda_total']} GiB total, {gpu['requested']} GiB for vLLM "
        f"(gpuMemoryUtilization {capacity['gpu_memory_utilization']}), weights {gpu['weights']} GiB "
        f"({capacity['weight_format']}{binding}), overhead ≈{gpu['overhead']} GiB, KV cache {gpu['kv_cache']} GiB",
        f"    KV cache: {capacity['kv_tokens']:,} tokens ({capacity['kv_cache_dtype']}, "
        f"{stages[capacity['binding_stage']]['kv_bytes_per_token']:,} B/token/GPU), "
        f"{capacity['concurrency_at_full_context']}x concurrency at {capacity['max_model_len']:,} tokens"
        + (f" (maxNumSeqs {seqs})" if seqs else "")
        + f"; {gpu['headroom']} GiB/GPU to spare after one full-context sequence",
    ]
    full = math.floor(capacity["concurrency_at_full_context"])
    if seqs and seqs > full:
        lines.append(
            f"    maxNumSeqs {seqs} is above the {full} full-context sequences the KV cache holds: all {seqs} run at "
            f"once while they average {capacity['kv_tokens'] // seqs:,} tokens or less, longer ones wait or are "
            f"preempted; nothing to do unless most requests run to the full {capacity['max_model_len']:,} tokens "
            f"(then maxNumSeqs {full})"
        )
    return lines


def profile_line(profile: dict) -> str:
    """The summary line of a model's performance profile (`profile` of capacity.json)."""
    options = profile["settings"]
    if profile["without_profile"] is None:
        return (
            f"    profile {profile['name']}: vLLM's defaults (kvCacheDtype auto, no MTP, expert or context parallelism)"
        )
    keys = {
        "kvCacheDtype": options["kv_cache_dtype"],
        "mtpSpeculativeTokens": options["mtp_speculative_tokens"] or None,
        "expertParallel": options["expert_parallel"] or None,
        "decodeContextParallelSize": options["decode_context_parallel_size"]
        if options["decode_context_parallel_size"] > 1
        else None,
    }
    shown = ", ".join(f"{key} {str(value).lower()}" for key, value in keys.items() if value not in (None, "auto"))
    without = profile["without_profile"]
    return (
        f"    profile {profile['name']} ({shown}): x{profile['kv_tokens_ratio']} the KV tokens of vLLM's defaults "
        f"({without['kv_tokens']:,} tokens, {without['concurrency_at_full_context']}x, "
        f"weights {without['weights_gib']} GiB/GPU without it); a prediction until a GPU run measures it"
    )


def cold_start_line(minutes: dict, current: str | None) -> str:
    parts = [
        f"{source} {span['low']:g}-{span['high']:g} min" + (" (configured)" if source == current else "")
        for source, span in minutes.items()
    ]
    return "    cold start (estimate, nodes up): " + ", ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        help="a built-in model (" + ", ".join(sorted(ARCHITECTURE_ALIASES)) + "; or "
        "its Hugging Face id), or a path to a config.json or a folder holding one",
    )
    parser.add_argument("--machine", required=True, choices=sorted(MACHINE_PROFILES), help="GPU machine type")
    parser.add_argument("--tp", type=int, default=1, help="tensorParallelSize (default 1)")
    parser.add_argument("--pp", type=int, default=1, help="pipelineParallelSize (default 1)")
    parser.add_argument("--max-model-len", type=int, default=None, help="maxModelLen (default: the model's)")
    parser.add_argument(
        "--gpu-memory-utilization", type=float, default=None, help="gpuMemoryUtilization (default: vLLM's 0.92)"
    )
    parser.add_argument("--max-num-seqs", type=int, default=None, help="maxNumSeqs")
    parser.add_argument(
        "--kv-cache-dtype",
        default="auto",
        choices=sorted(KV_CACHE_DTYPE_BYTES),
        help="kvCacheDtype (default auto = the model's dtype, BF16)",
    )
    parser.add_argument(
        "--weight-dtype",
        default=None,
        choices=sorted(WEIGHT_FORMAT_BYTES),
        help="format of the linear layers (default: the checkpoint's)",
    )
    parser.add_argument("--block-size", type=int, default=None, help="engineKwargs.block_size")
    parser.add_argument(
        "--enforce-eager", action="store_true", help="no CUDA graphs, so no CUDA-graph memory is subtracted"
    )
    parser.add_argument(
        "--mtp-speculative-tokens",
        type=int,
        default=0,
        help="mtpSpeculativeTokens: draft tokens of the MTP layer (default 0, off)",
    )
    parser.add_argument("--expert-parallel", action="store_true", help="expertParallel: whole experts per GPU")
    parser.add_argument(
        "--decode-context-parallel-size", type=int, default=1, help="decodeContextParallelSize (default 1)"
    )
    parser.add_argument("--region", default="us-east4", help="region of the list prices (default us-east4)")
    parser.add_argument(
        "--overhead-gib",
        type=float,
        default=None,
        help="activation + non-torch + CUDA-graph memory per GPU (default: the GPU's estimate)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the capacity table of one model on one machine; exit 1 when it cannot start, 2 on bad input."""
    machine = MACHINE_PROFILES[args.machine]
    try:
        arch = find_architecture(args.model)
        if arch is None:
            path = Path(args.model)
            if not path.exists():
                raise ValueError(
                    f"unknown model {args.model!r}; built in: {', '.join(sorted(ARCHITECTURE_ALIASES))}"
                    f"; or a path to a config.json"
                )
            arch = load_architecture(path)
        settings = _settings(args)
        report: CapacityReport = plan_capacity(arch, GPU_MEMORY[machine.gke_accelerator], settings)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    nodes = -(-report.gpus_per_replica // machine.gpu_count)
    print(
        f"{arch.name} on {machine.machine_type} ({machine.gpu_count} x {machine.gke_accelerator} per node; "
        f"a replica spans {nodes} node{'s' if nodes > 1 else ''}), vLLM {VLLM_VERSION} memory sizing:"
    )
    for line in model_lines(arch.name, report.as_json()):
        print(line)
    print(cold_start_line(cold_start_minutes(arch.stored_bytes()), None))
    price = PRICES.get((machine.machine_type, args.region))
    rates = (
        "no list price in infra/planning/prices.py"
        if price is None
        else ", ".join(
            f"{mode} ${nodes * rate:,.2f}/h"
            for mode, rate in (("on-demand", price.on_demand), ("spot", price.spot))
            if rate is not None
        )
        + (f"; no on-demand price: {price.withheld}" if price.withheld else "")
    )
    print(
        f"    cost of one replica's nodes ({args.region}, list prices of {PRICES_AS_OF}): "
        f"{nodes * machine.gpu_count} GPU-hours per hour, {rates}"
    )
    problems = [*report.problems, *profile_problems(arch, settings)]
    errors = [problem for problem in problems if not problem.warning]
    for problem in errors:
        print(f"error: {problem.text()}")
    for problem in problems:
        if problem.warning:
            print(f"warning: {problem.text()}")
    return 1 if errors else 0


def _settings(args: argparse.Namespace) -> EngineSettings:
    """The engine settings the command line asks for."""
    return EngineSettings(
        tensor_parallel_size=args.tp,
        pipeline_parallel_size=args.pp,
        max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_seqs=args.max_num_seqs,
        kv_cache_dtype=args.kv_cache_dtype,
        weight_format=args.weight_dtype,
        block_size=args.block_size,
        cuda_graphs=not args.enforce_eager,
        overhead_gib=args.overhead_gib,
        mtp_speculative_tokens=args.mtp_speculative_tokens,
        expert_parallel=args.expert_parallel,
        decode_context_parallel_size=args.decode_context_parallel_size,
    )
