"""One Pulumi ComponentResource per concern; each wraps the pure renderers of infra/render in resources."""
