"""The offline plan: run the real program for a stack under Pulumi mocks and write down what it would create.

No cloud account, no Pulumi CLI, no network. The stack's config is read from `Pulumi.yaml` (defaults) and
`Pulumi.<stack>.yaml` exactly as the CLI would pass it; `__main__.py` runs unchanged; every resource
registration is recorded. Outputs:

- `resources.json`: one object per registered resource, `{"type", "name", "parent", "inputs"}`, sorted
  by name (registration order varies from run to run), inputs as the engine receives them (camelCase),
  secrets as "[secret]";
- `manifests.yaml`: every Kubernetes object the stack creates directly, as the API server receives it;
- a summary on stdout. Invalid config, or a stack file that cannot be read, exits 2 with the problems on
  stderr and removes an earlier plan of the stack from the output folder, so no out-of-date plan is left.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import logging
import os
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from infra.config.stackfiles import PROJECT, PROJECT_ROOT, SECRET, StackFileError, stack_config

if TYPE_CHECKING:  # Pulumi and the stack config are imported when a plan runs, not with the command line
    import pulumi
    from pulumi.runtime import MockCallArgs, MockResourceArgs
    from pulumi.runtime.proto import resource_pb2

    from infra.config.settings import StackConfig

UNKNOWN = "[unknown]"
REDACTED = "[redacted]"

# Special values of Pulumi's wire format (sdk/python/lib/pulumi/runtime/rpc.py).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# Kubernetes resource types that are not Kubernetes objects sent to the API server.
_NOT_MANIFESTS = ("kubernetes:helm.sh/", "kubernetes:yaml", "pulumi:providers:")


# --- recording the program's resources -----------------------------------------------------------------------


@dataclass
class RecordedResource:
    type: str
    name: str
    parent: str | None
    inputs: dict
    # What the engine is told besides the inputs; not part of resources.json, used by tests.
    provider: str | None = None  # the explicit provider's logical name
    options: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"type": self.type, "name": self.name, "parent": self.parent, "inputs": self.inputs}


def _plain(value: Any) -> Any:
    """A wire-format value (from `MessageToDict`) as plain JSON data, secrets and unknowns spelled out."""
    if isinstance(value, dict):
        signature = value.get(_SIG_KEY)
        if signature == _SECRET_SIG:
            return SECRET
        if signature == _RESOURCE_SIG:
            return value.get("urn", "").split("::")[-1]
        return {key: _plain(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value == _UNKNOWN_VALUE:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Structs carry every number as a double
    return value


class PlanMocks:
    """Realistic outputs for the resources this program creates, so that derived values (kubeconfig, names,
    emails) look like the real ones. Every other output echoes the inputs."""

    def __init__(self, gcp_project: str = "my-gcp-project"):
        self.gcp_project = gcp_project

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        name = outputs.get("name") or args.name
        kind = args.typ
        if kind.startswith("gcp:"):
            outputs.setdefault("name", name)
            outputs.setdefault("project", self.gcp_project)
        if kind in (
            "gcp:compute/network:Network",
            "gcp:compute/subnetwork:Subnetwork",
            "gcp:compute/resourcePolicy:ResourcePolicy",
        ):
            collection = {
                "gcp:compute/network:Network": "global/networks",
                "gcp:compute/subnetwork:Subnetwork": f"regions/{outputs.get('region')}/subnetworks",
                "gcp:compute/resourcePolicy:ResourcePolicy": f"regions/{outputs.get('region')}/resourcePolicies",
            }[kind]
            resource_id = f"projects/{self.gcp_project}/{collection}/{name}"
            outputs["selfLink"] = f"https://www.googleapis.com/compute/v1/{resource_id}"
            return resource_id, outputs
        if kind == "gcp:container/cluster:Cluster":
            outputs.update(
                endpoint="192.0.2.10",
                masterAuth={"clusterCaCertificate": base64.b64encode(b"offline-plan-ca").decode()},
            )
            return f"projects/{self.gcp_project}/locations/{outputs.get('location')}/clusters/{name}", outputs
        if kind == "gcp:serviceaccount/account:Account":
            outputs["email"] = f"{outputs['accountId']}@{self.gcp_project}.iam.gserviceaccount.com"
            outputs["name"] = f"projects/{self.gcp_project}/serviceAccounts/{outputs['email']}"
        if kind == "gcp:storage/bucket:Bucket":
            outputs["url"] = f"gs://{name}"
        if kind == "gcp:redis/instance:Instance":  # TEST-NET-1 address; Memorystore's TLS port
            outputs.update(
                host="192.0.2.20",
                port=6378,
                authString="offline-plan-redis-auth",
                serverCaCerts=[{"cert": "-----BEGIN CERTIFICATE-----\noffline-plan-ca\n-----END CERTIFICATE-----"}],
            )
        if kind == "random:index/randomPassword:RandomPassword":
            outputs["result"] = "offline-plan-" + "x" * max(0, int(outputs.get("length", 32)) - 13)
        return f"{name}-id", outputs

    def call(self, args: MockCallArgs) -> tuple[dict, list]:
        return {}, []


def run_program(stack: str, root: Path = PROJECT_ROOT) -> tuple[StackConfig, list[RecordedResource]]:
    """Run `__main__.py` for `stack` under mocks; returns the parsed `StackConfig` and what the program
    registered. Raises `ConfigError` for bad config before any resource is registered."""
    import pulumi
    from google.protobuf import json_format
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from infra.config.stack import load_stack_config

    values, secret_keys = stack_config(stack, root)
    set_all_config(values, secret_keys)
    recorded: list[RecordedResource] = []

    class RecordingMonitor(pulumi_mocks.MockMonitor):
        def RegisterResource(
            self, request: resource_pb2.RegisterResourceRequest
        ) -> resource_pb2.RegisterResourceResponse:
            if request.type != "pulumi:pulumi:Stack":
                parent = request.parent.split("::")[-1] if request.parent else None
                if parent and request.parent.split("::")[2] == "pulumi:pulumi:Stack":
                    parent = None
                # A provider reference is "<provider urn>::<provider id>"; the urn ends with the logical name.
                provider = request.provider.rsplit("::", 1)[0].split("::")[-1] if request.provider else None
                options = {
                    "replaceOnChanges": list(request.replaceOnChanges),
                    "deleteBeforeReplace": request.deleteBeforeReplace,
                    "customTimeouts": json_format.MessageToDict(request.customTimeouts),
                    "dependencies": sorted(urn.split("::")[-1] for urn in request.dependencies),
                }
                recorded.append(
                    RecordedResource(
                        request.type,
                        request.name,
                        parent,
                        _plain(json_format.MessageToDict(request.object)),
                        provider,
                        options,
                    )
                )
            response: resource_pb2.RegisterResourceResponse = super().RegisterResource(request)
            return response

    mocks = _as_pulumi_mocks(PlanMocks(values.get("gcp:project", "my-gcp-project")))
    quiet = logging.getLogger("llmserve.plan")  # warnings reach the summary; the engine log would repeat them
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=False, logger=quiet, monitor=RecordingMonitor(mocks)
    )
    config = load_stack_config()  # fail on bad config here, outside the engine loop, with nothing registered
    main = root / "__main__.py"

    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")

    _sync_await(run_pulumi_func(program))
    return config, recorded


def _as_pulumi_mocks(plan_mocks: PlanMocks) -> pulumi.runtime.Mocks:
    import pulumi

    class _Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
            return plan_mocks.new_resource(args)

        def call(self, args: MockCallArgs) -> tuple[dict, list]:
            return plan_mocks.call(args)

    return _Mocks()


# --- what the plan writes -------------------------------------------------------------------------------------


def kubernetes_manifests(resources: list[RecordedResource]) -> list[dict]:
    """The Kubernetes objects among `resources`, shaped as the API server receives them."""
    manifests = []
    for resource in resources:
        if not resource.type.startswith("kubernetes:") or resource.type.startswith(_NOT_MANIFESTS):
            continue
        body = {key: value for key, value in resource.inputs.items() if not key.startswith("__")}
        manifest = {
            "apiVersion": body.pop("apiVersion", None),
            "kind": body.pop("kind", None),
            "metadata": body.pop("metadata", {}),
        }
        if manifest["kind"] == "Secret":
            for field_name in ("data", "stringData"):
                if field_name in body:
                    body[field_name] = dict.fromkeys(body[field_name], REDACTED)
        manifest.update(body)
        manifests.append(manifest)
    return manifests


@dataclass
class Plan:
    stack: str
    resources: list[RecordedResource]
    manifests: list[dict]
    warnings: tuple[str, ...] = field(default=())
    capacity: dict | None = None  # capacity.json (infra/cli/report.py)

    def summary(self, config: StackConfig) -> str:
        by_type = collections.Counter(resource.type for resource in self.resources)
        pool = config.gpu_pool
        machine = pool.machine
        size = (
            f"{pool.min_nodes}-{pool.max_nodes} nodes (autoscaling)" if pool.autoscaling else f"{pool.node_count} nodes"
        )
        lines = [
            f"Offline plan of stack '{self.stack}': {len(self.resources)} resources, "
            f"{len(self.manifests)} Kubernetes objects",
            "",
            "Resources by type:",
        ]
        lines += [f"  {count:3d}  {kind}" for kind, count in sorted(by_type.items())]
        lines += [
            "",
            "GPUs by pool:",
            f"  gpu: {machine.machine_type} x {size}, {machine.gpu_count} x {machine.gke_accelerator} per "
            f"node, up to {machine.gpu_count * pool.max_gpu_nodes} GPUs, zones {', '.join(pool.zones)}",
            _gpus_in_use(config),
            "",
            f"GPUDirect: {pool.gpudirect.value}"
            + (f" ({pool.gpu_network_count} GPU NIC networks)" if pool.gpu_network_count else ""),
        ]
        if self.capacity is not None:
            from infra.cli.report import summary_lines

            lines += summary_lines(self.capacity)
        if config.weights is not None:
            from infra.config.sections.weights import weights_summary

            lines += ["", "Model weights:"] + [f"  {line}" for line in weights_summary(config.weights)]
        lines += ["", "Warnings:"] + ([f"  - {warning}" for warning in self.warnings] or ["  none"])
        return "\n".join(lines)


def _gpus_in_use(config: StackConfig) -> str:
    """How many of the pool's GPUs the models' replicas use at most, and how many stay idle (whole nodes per
    Ray worker pod, and nodes no model needs)."""
    from infra.planning.sizing import group_use

    pool = config.gpu_pool
    total = pool.machine.gpu_count * pool.max_gpu_nodes
    used = sum(use.used_gpus for use in group_use(config.serving.models, pool.machine, pool.max_gpu_nodes))
    return f"  the models' replicas use at most {used} of the {total} GPUs: {total - used} idle"


PLAN_FILES = ("resources.json", "manifests.yaml", "capacity.json")


def write_plan(plan: Plan, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    texts = {
        "resources.json": json.dumps([resource.as_json() for resource in plan.resources], indent=2) + "\n",
        "manifests.yaml": yaml.safe_dump_all(plan.manifests, sort_keys=False, width=120),
    }
    if plan.capacity is not None:
        texts["capacity.json"] = json.dumps(plan.capacity, indent=2) + "\n"
    for name, text in texts.items():  # write beside, then rename: a reader never sees half a file
        partial = out / f".{name}.partial"
        partial.write_text(text)
        os.replace(partial, out / name)


def remove_stale_plan(out: Path) -> bool:
    """Delete the plan files a failed plan would otherwise leave behind, out of date, in `out` (and `out`
    itself when nothing else is in it). Only the files the plan writes are touched. True if any was there."""
    removed = False
    for name in PLAN_FILES:
        if (out / name).is_file():
            (out / name).unlink()
            removed = True
    if removed and out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    return removed


def make_plan(stack: str, root: Path = PROJECT_ROOT) -> tuple[Plan, StackConfig]:
    """Plan `stack`; returns the plan and the parsed stack config."""
    config, resources = run_program(stack, root)
    # Registration order depends on when each resource's inputs resolve; sort for byte-stable output.
    resources = sorted(resources, key=lambda resource: (resource.name, resource.type))
    from infra.cli.report import stack_capacity

    return Plan(stack, resources, kubernetes_manifests(resources), config.warnings, stack_capacity(config)), config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack", help="stack name, as in Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default build/<stack>)")
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        help="a previous plan folder: print what changes and how the RayService upgrades",
    )


def run(args: argparse.Namespace, root: Path = PROJECT_ROOT) -> int:
    """Plan `args.stack` and write the plan files; 0, or 2 with every config problem on stderr."""
    from infra.cli import plandiff
    from infra.config.errors import ConfigError

    against = args.against.resolve() if args.against else None  # relative to where the command runs
    os.chdir(root)  # the program reads paths relative to the project, as under the CLI
    out = args.out or root / "build" / args.stack
    try:
        previous = plandiff.load_previous(against) if against else None  # before --out overwrites it
        stack_warning = plandiff.stack_warning(against, args.stack) if against else None
        plan, config = make_plan(args.stack, root)
    except plandiff.PlanDiffError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ConfigError, StackFileError) as error:  # bad config, or a stack that cannot be read: exit 2
        print(f"error: stack '{args.stack}': {error}", file=sys.stderr)
        if remove_stale_plan(out):
            print(f"Removed the earlier plan in {out}: it no longer matches the stack's config.", file=sys.stderr)
        return 2
    write_plan(plan, out)
    print(plan.summary(config))
    print(f"\nWrote {out / 'resources.json'}, {out / 'manifests.yaml'} and {out / 'capacity.json'}")
    if previous is not None:
        from infra.cli.report import model_times

        new = [resource.as_json() for resource in plan.resources]
        diff = plandiff.diff_plans(previous, new, model_times(config))
        if stack_warning is not None:
            diff.warnings.append(stack_warning)
        print("\n" + plandiff.format_diff(diff, str(args.against)))
    return 0
