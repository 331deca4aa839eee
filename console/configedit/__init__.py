"""Editing the snapshotter, nydusd and containerd configs: schema, validation, writes."""
