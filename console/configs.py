"""Read-only models of the snapshotter, containerd and nydusd configs.

Defaults and allowed values follow containerd-nydus-grpc v0.15.x and nydusd
v2.4.x, which fill empty fields from their defaults after parsing.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

SNAPSHOTTER_DEFAULT_ROOT = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
SNAPSHOTTER_DEFAULT_ADDRESS = "/run/containerd-nydus/containerd-nydus-grpc.sock"
SNAPSHOTTER_DEFAULT_SYSTEM_ADDRESS = "/run/containerd-nydus/system.sock"
NYDUSD_DEFAULT_CONFIG = "/etc/nydus/nydusd-config.json"
CONTAINERD_DEFAULT_ROOT = "/var/lib/containerd"
NYDUS_ROOT_SUFFIX = "io.containerd.snapshotter.v1.nydus"
# <root>/socket/<id>/api.sock must fit the 108-byte sun_path of a unix socket.
MAX_ROOT_BYTES = 70
MAX_THREADS = 1024

FS_DRIVERS = ("fusedev", "fscache", "blockdev", "proxy", "nodev")
DAEMON_MODES = ("dedicated", "multiple", "shared", "none")
RECOVER_POLICIES = ("none", "restart", "failover")
FAILOVER_POLICIES = ("none", "resend", "flush")


class ConfigError(ValueError):
    """A config that does not parse; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def parse_toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ConfigError(str(exc), int(match.group(1)) if match else None) from None


def _get(data: dict[str, Any], *keys: str, default: Any = None) -> Any:
    value: Any = data
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def _or_default(value: Any, default: Any) -> Any:
    # The snapshotter merges defaults into every zero value ("" and 0 included).
    return default if value in (None, "", 0) else value


@dataclass
class SnapshotterConfig:
    """Effective values of a containerd-nydus-grpc config.toml."""

    raw: dict[str, Any]
    version: Any
    root: str
    address: str
    daemon_mode: str
    fs_driver: str
    nydusd_config: str
    nydusd_path: str
    recover_policy: str
    failover_policy: str
    threads_number: Any
    mirrors_dir: str
    system_enable: bool
    system_address: str
    metrics_address: str
    log_to_stdout: bool
    log_dir: str
    cgroup_enable: bool

    @property
    def needs_nydusd_config(self) -> bool:
        return self.fs_driver in ("fusedev", "fscache")


def parse_snapshotter_config(text: str) -> SnapshotterConfig:
    """Parse config.toml text and apply the snapshotter's defaults."""
    data = parse_toml(text)
    root = _or_default(data.get("root"), SNAPSHOTTER_DEFAULT_ROOT)
    return SnapshotterConfig(
        raw=data,
        version=data.get("version"),
        root=str(root),
        address=str(_or_default(data.get("address"), SNAPSHOTTER_DEFAULT_ADDRESS)),
        daemon_mode=str(_or_default(data.get("daemon_mode"), "multiple")),
        fs_driver=str(_or_default(_get(data, "daemon", "fs_driver"), "fusedev")),
        nydusd_config=str(
            _or_default(_get(data, "daemon", "nydusd_config"), NYDUSD_DEFAULT_CONFIG)
        ),
        nydusd_path=str(_or_default(_get(data, "daemon", "nydusd_path"), "nydusd")),
        recover_policy=str(
            _or_default(_get(data, "daemon", "recover_policy"), "restart")
        ),
        failover_policy=str(
            _or_default(_get(data, "daemon", "failover_policy"), "resend")
        ),
        threads_number=_get(data, "daemon", "threads_number", default=0),
        mirrors_dir=str(_get(data, "remote", "mirrors_config", "dir", default="")),
        system_enable=bool(_get(data, "system", "enable", default=False)),
        system_address=str(
            _or_default(
                _get(data, "system", "address"), SNAPSHOTTER_DEFAULT_SYSTEM_ADDRESS
            )
        ),
        metrics_address=str(_get(data, "metrics", "address", default="")),
        log_to_stdout=bool(_get(data, "log", "log_to_stdout", default=False)),
        log_dir=str(_or_default(_get(data, "log", "dir"), f"{root}/logs")),
        cgroup_enable=bool(_get(data, "cgroup", "enable", default=False)),
    )


def expected_root(containerd_root: str) -> str:
    return f"{containerd_root.rstrip('/') or ''}/{NYDUS_ROOT_SUFFIX}"


# -- containerd ------------------------------------------------------------------


@dataclass
class CriSettings:
    """The CRI image table for this config version, and the values set in it."""

    table: str
    snapshotter: str | None
    disable_snapshot_annotations: bool | None
    discard_unpacked_layers: bool | None
    misplaced: list[str] = field(default_factory=list)


@dataclass
class ContainerdConfig:
    raw: dict[str, Any]
    version: int
    root: str
    proxy_type: str | None
    proxy_address: str | None
    exported_root: str | None
    cri: CriSettings

    @property
    def has_proxy_plugin(self) -> bool:
        return self.proxy_type is not None or self.proxy_address is not None


# CRI tables per config version: (path of keys, display name).
_CRI_TABLES = {
    1: (("plugins", "cri", "containerd"), "[plugins.cri.containerd]"),
    2: (
        ("plugins", "io.containerd.grpc.v1.cri", "containerd"),
        '[plugins."io.containerd.grpc.v1.cri".containerd]',
    ),
    3: (
        ("plugins", "io.containerd.cri.v1.images"),
        "[plugins.'io.containerd.cri.v1.images']",
    ),
}
_V3_WRONG_TABLES = (
    ("plugins", "io.containerd.cri.v1.runtime", "containerd"),
    ("plugins", "io.containerd.grpc.v1.cri", "containerd"),
)
_CRI_KEYS = ("snapshotter", "disable_snapshot_annotations", "discard_unpacked_layers")


def parse_containerd_config(text: str) -> ContainerdConfig:
    """Parse containerd's config.toml (versions 1 to 3; 4 is read as 3)."""
    data = parse_toml(text)
    version = data.get("version", 1)
    if not isinstance(version, int) or version < 1:
        raise ConfigError(f"containerd config version {version!r} is not a number")
    proxy = _get(data, "proxy_plugins", "nydus", default=None)
    proxy = proxy if isinstance(proxy, dict) else None
    return ContainerdConfig(
        raw=data,
        version=version,
        root=str(data.get("root") or CONTAINERD_DEFAULT_ROOT),
        proxy_type=proxy.get("type") if proxy else None,
        proxy_address=proxy.get("address") if proxy else None,
        exported_root=_get(proxy or {}, "exports", "root"),
        cri=_cri_settings(data, min(version, 3)),
    )


def _cri_settings(data: dict[str, Any], version: int) -> CriSettings:
    path, name = _CRI_TABLES[version]
    table = _get(data, *path, default={})
    table = table if isinstance(table, dict) else {}
    misplaced: list[str] = []
    if version == 3:
        for wrong in _V3_WRONG_TABLES:
            other = _get(data, *wrong, default={})
            if isinstance(other, dict):
                misplaced += [
                    f"{'.'.join(wrong)}.{key}" for key in _CRI_KEYS if key in other
                ]
    return CriSettings(
        table=name,
        snapshotter=table.get("snapshotter"),
        disable_snapshot_annotations=table.get("disable_snapshot_annotations"),
        discard_unpacked_layers=table.get("discard_unpacked_layers"),
        misplaced=misplaced,
    )


# -- nydusd ------------------------------------------------------------------------

NYDUSD_BACKENDS_V1 = ("registry", "oss", "s3", "localfs", "localdisk")
NYDUSD_BACKENDS_V2 = (*NYDUSD_BACKENDS_V1, "http-proxy")
NYDUSD_CACHE_TYPES = ("blobcache", "filecache", "fscache", "", "dummycache")


@dataclass
class NydusdConfig:
    raw: dict[str, Any]
    format: str
    backend_type: str
    problems: list[str]


def parse_nydusd_config(text: str) -> NydusdConfig:
    """Parse a nydusd config like nydusd does: v2 JSON, v2 TOML, then v1 JSON."""
    data: dict[str, Any] | None = None
    json_error = ""
    try:
        loaded = json.loads(text)
        data = loaded if isinstance(loaded, dict) else None
    except json.JSONDecodeError as exc:
        json_error = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if data is None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            raise ConfigError(
                "failed to parse configuration information: neither JSON "
                f"({json_error or 'not an object'}) nor TOML"
            ) from None
    if data.get("version") == 2:
        return _nydusd_v2(data)
    return _nydusd_v1(data)


def _nydusd_v1(data: dict[str, Any]) -> NydusdConfig:
    problems: list[str] = []
    backend = _get(data, "device", "backend", default={})
    backend_type = str(_get(backend, "type", default="") or "")
    if backend_type not in NYDUSD_BACKENDS_V1:
        problems.append(
            f"device.backend.type {backend_type!r} is not one of "
            f"{', '.join(NYDUSD_BACKENDS_V1)}"
        )
    backend_config = _get(backend, "config")
    if not isinstance(backend_config, dict):
        problems.append("device.backend.config is missing")
        backend_config = {}
    if data.get("mode") not in ("direct", "cached"):
        problems.append(f"mode {data.get('mode')!r} must be direct or cached")
    cache_type = str(_get(data, "device", "cache", "type", default="") or "")
    work_dir = _get(data, "device", "cache", "config", "work_dir", default="")
    problems += _cache_problems(cache_type, work_dir, "device.cache")
    problems += _backend_problems(backend_type, backend_config, "device.backend.config")
    return NydusdConfig(data, "v1 JSON", backend_type, problems)


def _nydusd_v2(data: dict[str, Any]) -> NydusdConfig:
    problems: list[str] = []
    backend_type = str(_get(data, "backend", "type", default="") or "")
    if backend_type not in NYDUSD_BACKENDS_V2:
        problems.append(f"backend.type {backend_type!r} is not a known backend")
    backend_config = _get(data, "backend", backend_type, default={})
    cache_type = str(_get(data, "cache", "type", default="") or "")
    sub = "fscache" if cache_type == "fscache" else "filecache"
    work_dir = _get(data, "cache", sub, "work_dir", default=".")
    problems += _cache_problems(cache_type, work_dir, "cache")
    mode = _get(data, "rafs", "mode", default="direct")
    if mode not in ("direct", "cached"):
        problems.append(f"rafs.mode {mode!r} must be direct or cached")
    if isinstance(backend_config, dict):
        problems += _backend_problems(backend_type, backend_config, f"backend.{sub}")
    return NydusdConfig(data, "v2", backend_type, problems)


def _cache_problems(cache_type: str, work_dir: Any, where: str) -> list[str]:
    if cache_type not in NYDUSD_CACHE_TYPES:
        return [f"{where}.type {cache_type!r} is not a supported cache type"]
    if cache_type in ("blobcache", "filecache", "fscache") and not work_dir:
        return [f"{where} needs a non-empty work_dir for {cache_type}"]
    return []


def _backend_problems(kind: str, config: dict[str, Any], where: str) -> list[str]:
    required = {
        "registry": ("host", "repo"),
        "oss": ("endpoint", "bucket_name"),
        "s3": ("region", "bucket_name"),
        "localdisk": ("device_path",),
    }.get(kind, ())
    # snapshotter fills registry host and repo per image, so only their type counts.
    if kind == "registry":
        required = ()
    problems = [f"{where}.{key} is missing" for key in required if not config.get(key)]
    if kind == "localfs" and not (config.get("blob_file") or config.get("dir")):
        problems.append(f"{where} needs blob_file or dir")
    return problems


# -- secrets -------------------------------------------------------------------------

_SECRET_KEY = re.compile(
    r"""(?ix)
    (["']?(?:auth|registry_token|token|password|secret|access_key_id|
    access_key_secret|encryption_key|auths)["']?\s*[:=]\s*)
    ("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,}]+)
    """
)


# Every key _SECRET_KEY matches contains one of these; most text contains none,
# and the substring test is much cheaper than the regular expression.
_SECRET_HINTS = ("auth", "token", "password", "secret", "access_key", "encryption")


def mask_secrets(text: str) -> str:
    """Replace the values of credential keys in config text with ***."""
    lowered = text.lower()
    if not any(hint in lowered for hint in _SECRET_HINTS):
        return text
    return _SECRET_KEY.sub(lambda m: f'{m.group(1)}"***"', text)
