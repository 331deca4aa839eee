"""Booted Debian test nodes (systemd-nspawn) and loopback sshd servers for tests."""
