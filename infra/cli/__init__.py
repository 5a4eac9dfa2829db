"""The command line: `python -m infra plan | smoke | capacity` (infra/cli/main.py)."""
