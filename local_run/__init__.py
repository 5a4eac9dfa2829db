"""Run a stack's own Serve application on this machine's CPU: `python -m local_run <stack>`.

The serve config is the one the stack's RayService carries, made by the same builder from the same stack
files. Only what a CPU needs is rewritten (`local_run.serve_config`): each model's weights become a tiny
random-weight model of the same architecture (`local_run.tiny_models`, built offline, cached), tensor/pipeline
parallel become 1, the accelerator becomes the CPU, and the context and KV cache shrink. Routing, autoscaling
(scale to zero included), the API-key ingress and its settings stay exactly as configured.

Then, like KubeRay on the cluster (`local_run.server`): a local Ray head with token authentication
(`ray start`), the serve_app cluster files on PYTHONPATH (as the ConfigMap mount does), the API key in a file
that the ingress re-reads (as the mounted Secret volume is; rewrite it with `write_api_keys` to rotate keys),
and the config deployed through the dashboard's declarative API (`serve deploy`). The OpenAI API is served on
127.0.0.1 until interrupted; everything started is stopped and every temporary file removed.
`local_run.launcher` drives the command from tests and benchmarks.

Needs the heavy local environment (Ray 2.60, vLLM's CPU build); see docs/local-run.md.
"""
