"""Transports: run commands and reach unix sockets on a node (local or SSH)."""
