"""The keys of each config kind, read from assets/schema-<kind>.toml.

A schema lists the keys a config may contain, their types, defaults,
allowed values and help text, and which of them are secrets. Kinds:
`snapshotter` (config.toml), `nydusd` (layouts `v1` JSON and `v2`) and
`containerd`, whose CRI keys have a logical name such as `cri.snapshotter`
and a real path per config version.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from nydus_console.configedit.keys import KeyPath, format_key, parse_key

KINDS = ("snapshotter", "nydusd", "containerd")
TYPES = ("string", "int", "bool", "duration", "enum", "list", "table")
# Layouts of each kind's schema. nydusd has two, and `version = 2` selects v2.
LAYOUTS = {"snapshotter": ("toml",), "nydusd": ("v1", "v2"), "containerd": ("toml",)}


class SchemaError(ValueError):
    """A schema file that does not describe its keys correctly."""


@dataclass(frozen=True)
class KeyEntry:
    """One key of a config: its type, default, allowed values and help."""

    name: str
    type: str
    help: str
    group: str = ""
    default: Any = None
    allowed: tuple[Any, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_bytes: int | None = None
    pattern: str = ""
    items: str = ""
    required: bool = False
    secret: bool = False
    since: str = ""
    # Why the program reads past this key; empty when the key takes effect.
    ignored: str = ""
    # For a table: whether keys the schema does not list are accepted silently.
    open: bool = False
    # nydusd backend types that read this key; empty means every type.
    backends: tuple[str, ...] = ()
    # Real path per config version, for logical names (containerd's CRI keys).
    paths: tuple[tuple[int, KeyPath], ...] = ()

    def path(self, version: int | None = None) -> KeyPath:
        """Return the real path of this key in a config of `version`."""
        if not self.paths:
            return parse_key(self.name)
        chosen = self.paths[-1][1]
        if version is not None:
            for since, path in self.paths:
                if since <= version:
                    chosen = path
        return chosen

    @property
    def has_default(self) -> bool:
        return self.default is not None


@dataclass(frozen=True)
class Backend:
    """A nydusd storage backend type and the keys nydusd requires for it."""

    name: str
    layouts: tuple[str, ...]
    required: tuple[str, ...]
    proxy: bool
    help: str


@dataclass(frozen=True)
class Schema:
    """Every known key of one config kind and layout."""

    kind: str
    layout: str
    title: str
    entries: tuple[KeyEntry, ...]
    root_open: bool = False
    backends: tuple[Backend, ...] = field(default_factory=tuple)
    _by_version: dict[int | None, dict[KeyPath, KeyEntry]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def by_name(self, name: str) -> KeyEntry | None:
        """Find an entry by its logical name (its dotted path where it has one)."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None

    def by_path(self, path: KeyPath, version: int | None = None) -> KeyEntry | None:
        """Find the entry whose real path in a config of `version` is `path`."""
        return self.paths(version).get(path)

    def lookup(self, key: str, version: int | None = None) -> KeyEntry | None:
        """Find an entry by logical name or by real dotted path."""
        entry = self.by_name(key)
        if entry is not None:
            return entry
        return self.by_path(parse_key(key), version)

    def paths(self, version: int | None = None) -> dict[KeyPath, KeyEntry]:
        """Map the real path of every entry, in a config of `version`."""
        if version not in self._by_version:
            self._by_version[version] = {
                entry.path(version): entry for entry in self.entries
            }
        return self._by_version[version]

    def names(self, version: int | None = None) -> list[str]:
        """Return the real dotted path of every entry, for suggestions."""
        return [format_key(path) for path in self.paths(version)]

    def is_open(self, table: KeyPath, version: int | None = None) -> bool:
        """Return whether unknown keys directly inside `table` are accepted."""
        if not table:
            return self.root_open
        entry = self.by_path(table, version)
        if entry is not None:
            return entry.open
        # A table the schema lists only as a parent of entries, such as
        # containerd's `plugins`, is as open as the document root.
        return self.root_open

    def backend(self, name: str) -> Backend | None:
        for backend in self.backends:
            if backend.name == name:
                return backend
        return None

    def __iter__(self) -> Iterator[KeyEntry]:
        return iter(self.entries)


@cache
def load_schema(kind: str, layout: str = "") -> Schema:
    """Read the schema of `kind` (and `layout` for nydusd: v1 or v2)."""
    if kind not in KINDS:
        raise SchemaError(f"unknown config kind {kind!r}; known: {', '.join(KINDS)}")
    layout = layout or LAYOUTS[kind][0]
    if layout not in LAYOUTS[kind]:
        raise SchemaError(
            f"unknown layout {layout!r} of {kind}; known: {', '.join(LAYOUTS[kind])}"
        )
    name = f"schema-{kind}.toml"
    data = tomllib.loads(
        resources.files("nydus_console.assets").joinpath(name).read_text()
    )
    if kind == "nydusd":
        return _nydusd_schema(data, layout, name)
    entries = tuple(_entry(raw, name) for raw in data["key"])
    return _checked(
        Schema(kind, layout, data["title"], entries, bool(data.get("open"))), name
    )


def _nydusd_schema(data: dict[str, Any], layout: str, source: str) -> Schema:
    backends = tuple(
        Backend(
            name=raw["name"],
            layouts=tuple(raw["layouts"]),
            required=tuple(raw["required"]),
            proxy=bool(raw["proxy"]),
            help=raw["help"],
        )
        for raw in data["backend"]
        if layout in raw["layouts"]
    )
    entries = [_entry(raw, source) for raw in data[layout]]
    entries += _backend_entries(data, backends, layout, source)
    schema = Schema("nydusd", layout, data["title"], tuple(entries), False, backends)
    return _checked(schema, source)


def _backend_entries(
    data: dict[str, Any], backends: tuple[Backend, ...], layout: str, source: str
) -> list[KeyEntry]:
    """Place the shared backend and proxy keys under each layout's tables.

    v1 has one `device.backend.config` table whatever the type, so its
    entries list the backend types that read them; v2 has a table per type.
    """
    if layout == "v1":
        names = tuple(backend.name for backend in backends)
        return _placed_keys(data, "device.backend.config", names, source)
    entries: list[KeyEntry] = []
    for backend in backends:
        prefix = format_key(("backend", backend.name))
        text = f"Keys of the {backend.name} backend. {backend.help}"
        entries.append(KeyEntry(prefix, "table", text, group="backend"))
        entries += _placed_keys(data, prefix, (backend.name,), source)
    return entries


def _placed_keys(
    data: dict[str, Any], prefix: str, types: tuple[str, ...], source: str
) -> list[KeyEntry]:
    entries: list[KeyEntry] = []
    for raw in data["backend_key"]:
        readers = tuple(t for t in raw["backends"] if t in types)
        if not readers:
            continue
        placed = {**raw, "path": f"{prefix}.{raw['name']}", "group": "backend"}
        placed["backends"] = readers
        entries.append(_entry(placed, source))
        if raw["name"] == "proxy":
            entries += _proxy_keys(data, f"{prefix}.proxy", readers, source)
    return entries


def _proxy_keys(
    data: dict[str, Any], prefix: str, readers: tuple[str, ...], source: str
) -> list[KeyEntry]:
    return [
        _entry(
            {
                **raw,
                "path": f"{prefix}.{raw['name']}",
                "group": "backend proxy",
                "backends": readers,
            },
            source,
        )
        for raw in data["proxy_key"]
    ]


_ENTRY_FIELDS = {
    "path",
    "name",
    "type",
    "help",
    "group",
    "default",
    "allowed",
    "min",
    "max",
    "max_bytes",
    "pattern",
    "items",
    "required",
    "secret",
    "since",
    "ignored",
    "open",
    "backends",
    "paths",
}


def _entry(raw: Mapping[str, Any], source: str) -> KeyEntry:
    unknown = set(raw) - _ENTRY_FIELDS
    if unknown:
        raise SchemaError(f"{source}: {raw.get('path')}: unknown fields {unknown}")
    if raw["type"] not in TYPES:
        raise SchemaError(f"{source}: {raw['path']}: unknown type {raw['type']!r}")
    paths = tuple(
        sorted(
            (int(version), parse_key(path))
            for version, path in raw.get("paths", {}).items()
        )
    )
    return KeyEntry(
        name=raw["path"],
        type=raw["type"],
        help=raw["help"],
        group=raw.get("group", ""),
        default=raw.get("default"),
        allowed=tuple(raw.get("allowed", ())),
        minimum=raw.get("min"),
        maximum=raw.get("max"),
        max_bytes=raw.get("max_bytes"),
        pattern=raw.get("pattern", ""),
        items=raw.get("items", ""),
        required=bool(raw.get("required", False)),
        secret=bool(raw.get("secret", False)),
        since=raw.get("since", ""),
        ignored=raw.get("ignored", ""),
        open=bool(raw.get("open", False)),
        backends=tuple(raw.get("backends", ())),
        paths=paths,
    )


def _checked(schema: Schema, source: str) -> Schema:
    names = [entry.name for entry in schema.entries]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise SchemaError(f"{source}: keys listed twice: {sorted(duplicates)}")
    for entry in schema.entries:
        if entry.type == "enum" and not entry.allowed:
            raise SchemaError(f"{source}: {entry.name}: an enum needs allowed values")
    return schema
