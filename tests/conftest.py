"""Shared fixtures. The booted-node testbed lives in tests/testbed."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
