"""Stack configuration: read once, at the edge, into typed frozen objects, validated before any resource exists.

Import from the modules (`infra.config.stack`, `infra.config.stackfiles`, ...): this package's `__init__` stays
empty so that the local runner can read stack files without Pulumi installed.
"""
