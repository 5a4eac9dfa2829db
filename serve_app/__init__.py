"""What the platform serves (Ray Serve LLM on KubeRay): model specs, the Serve config builder, the ingress.

Deploy time (standard library + PyYAML, no Ray): `serve_app.spec` (ModelSpec, parse_models),
`serve_app.builder` (build_serve_config, serve_config_yaml), `serve_app.bundle` (cluster_sources).
Cluster side (Ray, Starlette): `serve_app.apps`, `serve_app.ingress`, `serve_app.auth`, `serve_app.contract`.

This file is shipped to the cluster too, so it imports nothing.
"""
