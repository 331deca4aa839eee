"""Textual user interface of nydus-console."""
