"""Test doubles of the Nydus binaries, run inside test nodes; never shipped."""
