"""`python -m infra <command>` (see infra/cli/main.py)."""

import sys

from infra.cli.main import main

sys.exit(main())
