#!/usr/bin/env python3
"""The demo's key source (KEYHEALTH_KEYS_FROM in demo mode): prints `tenant,key` for the demo tenants that hold a
demo key, or only KEYHEALTH_TENANT's line. Demo keys only (they mean nothing to Stripe)."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.demo import main

raise SystemExit(main(os.environ.get("KEYHEALTH_TENANT")))  # the key-source protocol's variable
