"""Parsing of the real nydusd sample configs, and masking of their secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from factbuilder import SAMPLES

from nydus_console.configs import (
    ConfigError,
    mask_secrets,
    parse_containerd_config,
    parse_nydusd_config,
)

NYDUS = SAMPLES / "nydus" / "misc"
DAEMON_CONFIGS = [
    *sorted((NYDUS / "dragonfly").glob("*.json")),
    NYDUS / "configs" / "nydusd-config.json",
    NYDUS / "configs" / "nydusd-config-v2.toml",
    NYDUS / "performance" / "nydusd_config.json",
]


@pytest.mark.parametrize("path", DAEMON_CONFIGS, ids=lambda p: p.name)
def test_nydusd_samples_parse_cleanly(path: Path) -> None:
    config = parse_nydusd_config(path.read_text())
    assert config.problems == []
    assert config.backend_type in ("registry", "localfs")


def test_v2_toml_sample_is_v2() -> None:
    config = parse_nydusd_config(
        (NYDUS / "configs" / "nydusd-config-v2.toml").read_text()
    )
    assert config.format == "v2"
    assert config.backend_type == "localfs"


@pytest.mark.parametrize(
    "name", ["nydusd-blob-cache-entry.toml", "nydusd-boostrap-blob-cache-entry.json"]
)
def test_blob_cache_entries_are_not_daemon_configs(name: str) -> None:
    config = parse_nydusd_config((NYDUS / "configs" / name).read_text())
    assert config.problems, "a blob cache entry must not pass as a daemon config"


def test_nydusd_garbage_is_a_parse_error() -> None:
    with pytest.raises(ConfigError, match="failed to parse configuration information"):
        parse_nydusd_config("{not json\n= nor toml")


def test_secrets_masked_in_v2_sample() -> None:
    text = (NYDUS / "configs" / "nydusd-config-v2.toml").read_text()
    masked = mask_secrets(text)
    assert "my_access_key_id" in text
    assert "my_access_key_id" not in masked
    assert "***" in masked


@pytest.mark.parametrize(
    "line",
    [
        '"auth": "dXNlcjpwYXNz",',
        "auth = 'dXNlcjpwYXNz'",
        '"registry_token": "eyJhbGciOi.x.y"',
        'password = "hunter2"',
        '"proxy": {"url": "http://proxyuser:hunter2@proxy.local:3128"}',
        'level=info msg=fetch url="https://bob:hunter2@reg.example.com/v2/"',
        'header="Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"',
        "Authorization: Basic dXNlcjpwYXNz",
        'msg="docker auth {\\"auths\\":{\\"r.example\\":'
        '{\\"auth\\":\\"dXNlcjpwYXNz\\"}}}"',
        'msg="login {\\"password\\":\\"hunter2\\",\\"user\\":\\"bob\\"}"',
    ],
)
def test_mask_secrets_forms(line: str) -> None:
    masked = mask_secrets(line)
    for secret in ("dXNlcjpwYXNz", "eyJhbGciOi", "hunter2"):
        assert secret not in masked
    assert "***" in masked


def test_mask_in_escaped_json_keeps_the_quoting() -> None:
    line = 'msg="login {\\"password\\":\\"hunter2\\",\\"user\\":\\"bob\\"}"'
    masked = 'msg="login {\\"password\\":\\"***\\",\\"user\\":\\"bob\\"}"'
    assert mask_secrets(line) == masked


@pytest.mark.parametrize(
    "line",
    [
        "ssh://git@github.com/containerd/nydus-snapshotter",
        "connected to root@10.0.0.5:22",
        "registry uses basic auth",
        "https://registry.example.com/v2/library/ubuntu/manifests/latest",
    ],
)
def test_mask_secrets_keeps_plain_text(line: str) -> None:
    assert mask_secrets(line) == line


def test_containerd_defaults() -> None:
    config = parse_containerd_config("")
    assert config.version == 1
    assert config.root == "/var/lib/containerd"
    assert config.cri.table == "[plugins.cri.containerd]"
    assert not config.has_proxy_plugin
