import sys
from pathlib import Path

POLICY = Path(__file__).resolve().parent.parent
ROOT = POLICY.parent
for path in (str(ROOT), str(POLICY)):
    if path not in sys.path:
        sys.path.insert(0, path)
