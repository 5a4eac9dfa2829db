"""The llmserve guardrails policy pack: `pulumi preview --policy-pack policy/` (see the README)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # policies.py and rules.py sit beside this file

from policies import ALL
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="llmserve-guardrails", policies=ALL, enforcement_level=EnforcementLevel.MANDATORY)
