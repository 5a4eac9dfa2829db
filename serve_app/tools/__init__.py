"""Maintainer tools (never imported by the deploy or the cluster)."""
