"""Metrics of nydusd daemons and the snapshotter, read per node or from Prometheus."""
