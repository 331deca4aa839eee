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
    # The same keys as paths of segments, for editing and locating them.
    misplaced_paths: list[tuple[str, ...]] = field(default_factory=list)


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
    misplaced: list[tuple[str, ...]] = []
    if version == 3:
        for wrong in _V3_WRONG_TABLES:
            other = _get(data, *wrong, default={})
            if isinstance(other, dict):
                misplaced += [(*wrong, key) for key in _CRI_KEYS if key in other]
    return CriSettings(
        table=name,
        snapshotter=table.get("snapshotter"),
        disable_snapshot_annotations=table.get("disable_snapshot_annotations"),
        discard_unpacked_layers=table.get("discard_unpacked_layers"),
        misplaced=[".".join(path) for path in misplaced],
        misplaced_paths=misplaced,
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


@dataclass(frozen=True)
class NydusdProblem:
    """A key nydusd rejects: its dotted path, what is wrong, and the fix."""

    key: str
    message: str
    fix: str = ""


def parse_nydusd_config(text: str) -> NydusdConfig:
    """Parse a nydusd config like nydusd does: v2 JSON, v2 TOML, then v1 JSON.

    The file is taken as the snapshotter's template, so a registry backend
    without host and repo passes (see nydusd_requirement_problems).
    """
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
    backend_type = str(_get(data, "device", "backend", "type", default="") or "")
    if backend_type not in NYDUSD_BACKENDS_V1:
        problems.append(
            f"device.backend.type {backend_type!r} is not one of "
            f"{', '.join(NYDUSD_BACKENDS_V1)}"
        )
    if data.get("mode") not in ("direct", "cached"):
        problems.append(f"mode {data.get('mode')!r} must be direct or cached")
    cache_type = str(_get(data, "device", "cache", "type", default="") or "")
    if cache_type not in NYDUSD_CACHE_TYPES:
        problems.append(
            f"device.cache.type {cache_type!r} is not a supported cache type"
        )
    problems += [p.message for p in nydusd_requirement_problems(data, template=True)]
    return NydusdConfig(data, "v1 JSON", backend_type, problems)


def _nydusd_v2(data: dict[str, Any]) -> NydusdConfig:
    problems: list[str] = []
    backend_type = str(_get(data, "backend", "type", default="") or "")
    if backend_type not in NYDUSD_BACKENDS_V2:
        problems.append(f"backend.type {backend_type!r} is not a known backend")
    cache_type = str(_get(data, "cache", "type", default="") or "")
    if cache_type not in NYDUSD_CACHE_TYPES:
        problems.append(f"cache.type {cache_type!r} is not a supported cache type")
    mode = _get(data, "rafs", "mode", default="direct")
    if mode not in ("direct", "cached"):
        problems.append(f"rafs.mode {mode!r} must be direct or cached")
    problems += [p.message for p in nydusd_requirement_problems(data, template=True)]
    return NydusdConfig(data, "v2", backend_type, problems)


# Keys each backend needs, read from nydusd v2.4's api/src/config.rs. In the
# v2 layout every backend table present must hold its keys, whatever the
# backend type: nydusd cannot even read the file otherwise.
_BACKEND_REQUIRED = {
    "registry": ("host", "repo"),
    "oss": ("endpoint", "bucket_name"),
    "s3": ("endpoint", "region", "bucket_name"),
    "localdisk": ("device_path",),
    "http-proxy": ("addr",),
}
# Description and example value of each required backend key, used in fixes.
_REQUIRED_EXAMPLES = {
    "host": ("registry's host", "registry.example.com"),
    "repo": ("image's repository", "library/ubuntu"),
    "endpoint": ("storage endpoint", "s3.us-east-1.amazonaws.com"),
    "region": ("bucket's region", "us-east-1"),
    "bucket_name": ("bucket", "nydus-blobs"),
    "device_path": ("block device or disk image", "/dev/vdb"),
    "addr": ("blob server's URL or socket path", "http://127.0.0.1:8080"),
}
# nydusd's largest batch and prefetch request, 0x10000000 bytes.
NYDUSD_MAX_BATCH = 0x10000000
MAX_PREFETCH_THREADS = 1024


def nydusd_requirement_problems(
    data: dict[str, Any], *, template: bool
) -> list[NydusdProblem]:
    """Return the keys nydusd needs but `data` lacks or sets to invalid values.

    Types and allowed values of single keys are left to the caller. With
    `template`, the file is the snapshotter's [daemon] nydusd_config, which
    fills the registry host and repo for each image, so those may be absent.
    """
    if data.get("version") == 2:
        return _v2_requirements(data, template)
    return _v1_requirements(data, template)


def _v1_requirements(data: dict[str, Any], template: bool) -> list[NydusdProblem]:
    problems: list[NydusdProblem] = []
    backend = _get(data, "device", "backend", default={})
    backend_type = str(_get(backend, "type", default="") or "")
    config = _get(backend, "config")
    if not isinstance(config, dict):
        problems.append(
            NydusdProblem(
                "device.backend.config",
                "device.backend.config is missing",
                "add a device.backend.config object with the keys of the "
                f"{backend_type or 'chosen'} backend",
            )
        )
        config = {}
    if backend_type in NYDUSD_BACKENDS_V1:
        problems += _backend_problems(
            backend_type, config, "device.backend.config", template
        )
    problems += _v1_cache_problems(data)
    problems += _prefetch_problems(
        _get(data, "fs_prefetch", default={}),
        "fs_prefetch",
        "threads_count",
        "merging_size",
    )
    problems += _batch_problems(data, "amplify_io")
    return problems


def _v1_cache_problems(data: dict[str, Any]) -> list[NydusdProblem]:
    cache_type = str(_get(data, "device", "cache", "type", default="") or "")
    if cache_type not in ("blobcache", "filecache", "fscache"):
        return []
    config = _get(data, "device", "cache", "config")
    if not isinstance(config, dict):
        return [
            NydusdProblem(
                "device.cache.config",
                f"device.cache.config is missing, which cache type {cache_type} needs",
                'add "config": {"work_dir": "<cache directory>"} to device.cache',
            )
        ]
    return _work_dir_problems(config, "device.cache.config", cache_type)


def _work_dir_problems(
    config: dict[str, Any], where: str, cache_type: str
) -> list[NydusdProblem]:
    # nydusd uses "." when work_dir is absent, but rejects an empty one.
    if config.get("work_dir", ".") != "":
        return []
    return [
        NydusdProblem(
            f"{where}.work_dir",
            f"{where} needs a non-empty work_dir for {cache_type}",
            f"set {where}.work_dir to the cache directory",
        )
    ]


def _v2_requirements(data: dict[str, Any], template: bool) -> list[NydusdProblem]:
    problems: list[NydusdProblem] = []
    backend = _get(data, "backend", default=None)
    if isinstance(backend, dict):
        problems += _v2_backend_problems(backend, template)
    problems += _v2_cache_problems(data)
    for table in ("cache.prefetch", "rafs.prefetch"):
        prefetch = _get(data, *table.split("."), default=None)
        if isinstance(prefetch, dict):
            problems += _prefetch_problems(
                prefetch, table, "threads", "batch_size", enable_required=True
            )
    rafs = _get(data, "rafs", default=None)
    if isinstance(rafs, dict):
        problems += _batch_problems(rafs, "batch_size", "rafs.")
    return problems


def _v2_backend_problems(
    backend: dict[str, Any], template: bool
) -> list[NydusdProblem]:
    problems: list[NydusdProblem] = []
    backend_type = str(backend.get("type") or "")
    for name in _BACKEND_REQUIRED:
        table = backend.get(name)
        if isinstance(table, dict) and name != backend_type:
            problems += _absent_key_problems(name, table, f"backend.{name}", template)
    if backend_type not in NYDUSD_BACKENDS_V2:
        return problems
    table = backend.get(backend_type)
    where = f"backend.{backend_type}"
    if not isinstance(table, dict):
        problems.append(
            NydusdProblem(
                where,
                f"[{where}] is missing: the {backend_type} backend reads its keys "
                "there",
                f"add a [{where}] table with the keys of the {backend_type} backend",
            )
        )
        return problems
    return problems + _backend_problems(backend_type, table, where, template)


def _v2_cache_problems(data: dict[str, Any]) -> list[NydusdProblem]:
    cache_type = str(_get(data, "cache", "type", default="") or "")
    if cache_type not in ("blobcache", "filecache", "fscache"):
        return []
    sub = "fscache" if cache_type == "fscache" else "filecache"
    table = _get(data, "cache", sub, default=None)
    if not isinstance(table, dict):
        return [
            NydusdProblem(
                f"cache.{sub}",
                f"[cache.{sub}] is missing, which cache type {cache_type} needs",
                f'add [cache.{sub}] with work_dir = "<cache directory>"',
            )
        ]
    return _work_dir_problems(table, f"cache.{sub}", cache_type)


def _required_keys(kind: str, template: bool) -> tuple[str, ...]:
    if kind == "registry" and template:
        return ()
    return _BACKEND_REQUIRED.get(kind, ())


def _backend_problems(
    kind: str, config: dict[str, Any], where: str, template: bool
) -> list[NydusdProblem]:
    """Keys the chosen backend needs, absent or empty."""
    problems = [
        _required_problem(kind, where, key, absent=key not in config)
        for key in _required_keys(kind, template)
        if not config.get(key)
    ]
    if kind == "localfs" and not (config.get("blob_file") or config.get("dir")):
        problems.append(
            NydusdProblem(
                f"{where}.dir",
                f"{where} needs blob_file or dir",
                f"set {where}.dir to the directory of the blob files",
            )
        )
    if kind == "http-proxy":
        problems += _http_proxy_problems(config, where)
    return problems


def _absent_key_problems(
    kind: str, table: dict[str, Any], where: str, template: bool
) -> list[NydusdProblem]:
    """Keys absent from a v2 backend table that the chosen type does not read.

    nydusd still reads every backend table, and one without its keys makes
    the whole file unreadable.
    """
    return [
        _required_problem(kind, where, key, absent=True)
        for key in _required_keys(kind, template)
        if key not in table
    ]


def _required_problem(
    kind: str, where: str, key: str, *, absent: bool
) -> NydusdProblem:
    state = "is missing" if absent else "is empty"
    message = (
        f"{where}.{key} {state}: the {kind} backend needs it, so nydusd fails "
        "with 'failed to parse configuration information'"
    )
    what, example = _REQUIRED_EXAMPLES.get(key, ("value", ""))
    fix = f'set {where}.{key} = "{example}", with your {what}'
    if kind == "registry":
        fix += (
            "; if this file is the snapshotter's [daemon] nydusd_config, validate "
            "it together with that config.toml: the snapshotter fills host and "
            "repo for each image"
        )
    return NydusdProblem(f"{where}.{key}", message, fix)


def _http_proxy_problems(config: dict[str, Any], where: str) -> list[NydusdProblem]:
    address = str(config.get("addr") or "")
    if not address or address.startswith(("http://", "https://", "/")):
        return []
    return [
        NydusdProblem(
            f"{where}.addr",
            f"{where}.addr {address!r} is neither an http:// or https:// URL nor an "
            "absolute socket path",
            f"set {where}.addr to a URL such as http://127.0.0.1:8080 or a socket path",
        )
    ]


def _prefetch_problems(
    prefetch: Any,
    where: str,
    threads_key: str,
    batch_key: str,
    *,
    enable_required: bool = False,
) -> list[NydusdProblem]:
    if not isinstance(prefetch, dict):
        return []
    if enable_required and "enable" not in prefetch:
        return [
            NydusdProblem(
                f"{where}.enable",
                f"[{where}] has no enable key, which nydusd requires in this table",
                f"add enable = false (or true) to [{where}]",
            )
        ]
    if prefetch.get("enable") is not True:
        return []
    threads = prefetch.get(threads_key, 8)
    problems: list[NydusdProblem] = []
    if isinstance(threads, int) and not 1 <= threads <= MAX_PREFETCH_THREADS:
        problems.append(
            NydusdProblem(
                f"{where}.{threads_key}",
                f"{where}.{threads_key} {threads} is outside 1 to "
                f"{MAX_PREFETCH_THREADS}, which nydusd requires while prefetch is on",
                f"set {where}.{threads_key} = 8",
            )
        )
    return problems + _batch_problems(prefetch, batch_key, f"{where}.")


def _batch_problems(
    table: dict[str, Any], key: str, prefix: str = ""
) -> list[NydusdProblem]:
    size = table.get(key)
    if not isinstance(size, int) or size <= NYDUSD_MAX_BATCH:
        return []
    return [
        NydusdProblem(
            f"{prefix}{key}",
            f"{prefix}{key} {size} is over nydusd's maximum {NYDUSD_MAX_BATCH} "
            "(0x10000000)",
            f"set {prefix}{key} to at most {NYDUSD_MAX_BATCH}, such as 1048576",
        )
    ]


# -- secrets -------------------------------------------------------------------------

_SECRET_KEY = re.compile(
    r"""(?ix)
    (\\?["']?(?:auth|registry_token|token|password|secret|access_key_id|
    access_key_secret|encryption_key|auths)\\?["']?\s*[:=]\s*)
    ("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,}]+)
    """
)


# Every key _SECRET_KEY matches contains one of these; most text contains none,
# and the substring test is much cheaper than the regular expression.
_SECRET_HINTS = ("auth", "token", "password", "secret", "access_key", "encryption")


# The password of a URL's user information: http://user:PASSWORD@host.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@\"'<>]+):[^\s/@\"'<>]+@")
# The credentials of an HTTP Authorization header or a token in a log line.
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}")


def may_contain_secret(text: str) -> bool:
    """Return False when text surely contains no credential mask_secrets masks."""
    lowered = text.lower()
    if any(hint in lowered for hint in _SECRET_HINTS):
        return True
    return ("://" in text and "@" in text) or "bearer" in lowered or "basic" in lowered


def is_secret_name(name: str) -> bool:
    """Return whether a key name contains a credential word such as token."""
    lowered = name.lower()
    return any(hint in lowered for hint in _SECRET_HINTS)


def _masked_value(match: re.Match[str]) -> str:
    key = match.group(1)
    # JSON quoted inside a log message escapes its quotes; keep the line valid.
    quote = '\\"' if '\\"' in key else '"'
    return f"{key}{quote}***{quote}"


def mask_secrets(text: str) -> str:
    """Replace credentials in config or log text with ***.

    Masked: the values of credential keys, the password in a URL's user
    information, and the credentials after Bearer or Basic.
    """
    if not may_contain_secret(text):
        return text
    text = _SECRET_KEY.sub(_masked_value, text)
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    return _AUTH_SCHEME.sub(r"\1\2***", text)
