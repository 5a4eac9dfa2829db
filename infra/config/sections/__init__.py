"""One reader per section of the stack config, each turning its keys into its frozen settings (`settings.py`).

Each reader reads its keys (type, range, format: one problem per bad key, `infra/config/values.py`), then checks the
rules between them, running a rule only when every value it depends on was read cleanly, and returns its frozen
settings, or None when anything in it is bad. A section that depends on another (the network needs the GPU pool's
NIC count, serving needs the pool's machine and size) gets None for it and skips those rules, so a bad value is
reported once, by the key that holds it, and never as follow-on nonsense: `gpuNodeCount: -1` says "out of range" and
nothing about how many GPUs a pool of -1 nodes has. `infra/config/stack.py` runs them in order.

gcp (the provider keys), gpu_pool (zones, machine, pool), network (address ranges), cluster, secure, serving,
weights, alerts.
"""
