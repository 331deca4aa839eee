"""Editing the snapshotter, nydusd and containerd configs.

Schema, documents, validation, and writes to nodes.
"""
