"""GPUDirect-TCPX (A3 High) and GPUDirect-TCPXO (A3 Mega) as plain Kubernetes objects.

Pure renderers: every function returns new dicts (or a `PodPatch`) and creates no resource, so the
component that owns the Kubernetes provider (infra/components/gpudirect.py) decides what becomes a resource
and the tests need no engine. Images, accelerator names and NIC/GPU counts come from `infra.catalog`; this
package only knows how the pieces fit together.

Four things make GPUDirect work on a node; each has its module, and callers import from the modules:

1. one `GKENetworkParamSet` + `Network` pair per GPU NIC, so pods can ask for eth1..ethN
   (`networks.gpu_network_objects`);
2. the NRI device injector, which hands /dev/nvidia* to the receive-datapath daemon without making it
   privileged (`daemonsets.nri_device_injector_daemonset`);
3. the NCCL plugin installer, which puts the plugin and its NCCL core in the host's
   /home/kubernetes/bin/nvidia/lib64 (`daemonsets.nccl_installer_daemonset`);
4. per workload pod: the daemon sidecar, the interface and device annotations, the volumes
   (`pod_patch.workload_pod_patch`) and the NCCL environment (`nccl.nccl_env`).

`facts` holds what several of them share: paths on the host and in the pod, and what differs between
TCPX and TCPXO.

Sources: GoogleCloudPlatform/container-engine-accelerators (gpudirect-tcpx/, gpudirect-tcpxo/,
nri_device_injector/) and GoogleCloudPlatform/cluster-toolkit (gke-node-pool/gpu-direct-workload). The
facts are theirs; the shapes here are this project's.
"""
