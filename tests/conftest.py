"""Shared fixtures. The booted-node testbed lives in tests/testbed."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from testbed.fixtures import (  # noqa: E402, F401
    kube_apiserver,
    loopback_sshd,
    nspawn_fleet,
    snapshotter_metrics_double,
    start_prometheus,
    start_registry,
)
