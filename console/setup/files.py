"""The files setup writes, built with the config editor's documents.

An existing snapshotter, nydusd or containerd config is edited in place:
only the keys setup decides change, and the operator's other keys, comments
and order stay. A missing one starts empty and gets the same keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nydus_console.configedit.document import Document, load_document
from nydus_console.configedit.session import starter_text
from nydus_console.setup.answers import Settings
from nydus_console.setup.survey import BIN_DIR

SNAPSHOTTER_BINARY = f"{BIN_DIR}/containerd-nydus-grpc"
NYDUSD_BINARY = f"{BIN_DIR}/nydusd"
NYDUS_IMAGE_BINARY = f"{BIN_DIR}/nydus-image"


@dataclass
class DesiredFile:
    """One file as it should be, next to what the node has now."""

    kind: str
    path: str
    old_text: str | None
    new_text: str
    # Units to restart when this file changes.
    restarts: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text


def snapshotter_document(text: str | None, path: str, s: Settings) -> Document:
    document = load_document("snapshotter", text or "", path)
    values: list[tuple[str, Any]] = [
        ("version", 1),
        ("root", s.root),
        ("address", s.address),
        ("daemon_mode", s.daemon_mode),
        ("system.enable", s.system_controller),
        ("system.address", s.system_address),
        ("daemon.nydusd_config", s.nydusd_config),
        ("daemon.nydusd_path", NYDUSD_BINARY),
        ("daemon.nydusimage_path", NYDUS_IMAGE_BINARY),
        ("daemon.fs_driver", s.fs_driver),
        ("daemon.recover_policy", s.recover_policy),
        ("metrics.address", s.metrics_address),
        ("cache_manager.cache_dir", s.cache_dir),
    ]
    for key, value in values:
        document.set(key, value)
    return document


def nydusd_settings(s: Settings) -> dict[str, Any]:
    """The nydusd JSON (legacy v1 layout, as the snapshotter's samples use)."""
    backend: dict[str, Any] = {
        "scheme": s.registry_scheme,
        "skip_verify": s.registry_skip_verify,
        "timeout": 5,
        "connect_timeout": 5,
        "retry_limit": 2,
    }
    if s.registry_host:
        backend["host"] = s.registry_host
    cache_type = "fscache" if s.fs_driver == "fscache" else "blobcache"
    return {
        "device": {
            "backend": {"type": "registry", "config": backend},
            "cache": {"type": cache_type, "config": {"work_dir": s.cache_dir}},
        },
        "mode": "direct",
        "digest_validate": False,
        "iostats_files": False,
        "enable_xattr": True,
        "fs_prefetch": {"enable": True, "threads_count": 8, "prefetch_all": True},
    }


def nydusd_document(text: str | None, path: str, s: Settings) -> Document:
    wanted = nydusd_settings(s)
    if text is None:
        return load_document("nydusd", json.dumps(wanted, indent=2) + "\n", path)
    document = load_document("nydusd", text or starter_text(path), path)
    for key, value in _leaves(wanted, ""):
        document.set(key, value)
    return document


def _leaves(data: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            found += _leaves(value, f"{name}.")
        else:
            found.append((name, value))
    return found


def containerd_document(
    text: str | None, path: str, s: Settings, version: int
) -> Document:
    """containerd's config with the nydus proxy plugin and the CRI switch."""
    document = load_document("containerd", text or f"version = {version}\n", path)
    document.set("proxy_plugins.nydus.type", "snapshot")
    document.set("proxy_plugins.nydus.address", s.address)
    if s.export_root:
        document.set("proxy_plugins.nydus.exports.root", s.root)
    if s.cri_snapshotter:
        document.set("cri.snapshotter", "nydus")
        document.set("cri.disable_snapshot_annotations", False)
    return document


def unit_text(config_path: str) -> str:
    """The snapshotter's systemd unit.

    KillMode=process: a restart of the snapshotter must leave its nydusd
    daemons running, because they serve the mounts of running containers;
    the new snapshotter reconnects to them.
    """
    return f"""\
[Unit]
Description=nydus snapshotter (containerd-nydus-grpc)
After=network.target local-fs.target
Before=containerd.service

[Service]
Type=simple
Environment=HOME=/root
ExecStart={SNAPSHOTTER_BINARY} --config {config_path}
Restart=always
RestartSec=1
KillMode=process
OOMScoreAdjust=-999
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=multi-user.target
"""
