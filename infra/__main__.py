"""`python -m infra plan <stack> [--out DIR]`: the offline plan (see infra/plan.py)."""

import sys

from infra.plan import main

sys.exit(main())
