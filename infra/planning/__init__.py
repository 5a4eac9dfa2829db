"""Capacity, sizing, cost and cold-start arithmetic: pure, below the config that calls it for its refusals."""
