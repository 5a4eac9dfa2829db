"""Pure renderers: typed settings in, plain Kubernetes, Serve-config and Cloud Monitoring data out.

Nothing here imports Pulumi or creates a resource; infra/components turns the results into resources.
"""
