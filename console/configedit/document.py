"""Config documents that edit in place and dump back without losing anything.

`load_document` parses a snapshotter, nydusd or containerd config. TOML goes
through tomlkit, which keeps comments, order and formatting. JSON keeps its
key order, indent and final newline. An unchanged document dumps its original
text byte for byte.

Keys are dotted paths in TOML syntax (`plugins."io.containerd.grpc.v1.cri".x`)
or the schema's logical names (`cri.snapshotter`), which resolve to the real
path of the document's config version.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
from collections.abc import MutableMapping
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Item, Table

from nydus_console.configedit.keys import KeyPath, format_key, parse_key
from nydus_console.configedit.locate import (
    json_key_positions,
    next_header_line,
    toml_key_positions,
)
from nydus_console.configedit.schema import KINDS, KeyEntry, Schema, load_schema
from nydus_console.configs import mask_secrets


class ConfigSyntaxError(ValueError):
    """A config that does not parse, with the position of the error.

    `line` and `column` are 1-based, or None when the parser gave none.
    """

    def __init__(
        self, file: str, message: str, line: int | None, column: int | None
    ) -> None:
        self.file = file
        self.message = message
        self.line = line
        self.column = column
        where = ":".join(str(part) for part in (file, line, column) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigEditError(ValueError):
    """An edit that cannot be made, such as a key below a value that is no table."""


class Document:
    """One config file: its original text and the edits made since loading."""

    def __init__(self, kind: str, path: str, text: str, fmt: str, data: Any) -> None:
        self.kind = kind
        self.path = path
        self.original = text
        self.format = fmt
        self._data = data
        self._dirty = False
        # Paths of the tables that set() created, to keep them apart from the
        # table that follows (see _separate_tables).
        self._created: list[KeyPath] = []

    # -- what the document is ------------------------------------------------------

    @property
    def version(self) -> int | None:
        """The config format version the file declares, with each kind's default.

        containerd reads a file without `version` as version 1; nydusd reads
        JSON without `version = 2` as its legacy v1 layout.
        """
        declared = self._data.get("version")
        version: int | None = None
        if isinstance(declared, int) and not isinstance(declared, bool):
            version = int(declared)
        if self.kind == "containerd":
            return version if version is not None else 1
        if self.kind == "nydusd":
            return 2 if version == 2 or self.format == "toml" else 1
        return version

    @property
    def layout(self) -> str:
        """The schema layout: `v1` or `v2` for nydusd, `toml` for the others."""
        if self.kind == "nydusd":
            return f"v{self.version}"
        return "toml"

    @property
    def schema(self) -> Schema:
        return load_schema(self.kind, self.layout)

    def resolve(self, key: str) -> KeyPath:
        """Turn a logical name or a dotted path into the real path in this file."""
        entry = self.schema.by_name(key)
        if entry is not None:
            return entry.path(self.version)
        path = parse_key(key)
        logical = [
            e.name for e in self.schema if e.paths and parse_key(e.name)[0] == path[0]
        ]
        if logical:
            raise ConfigEditError(
                f"unknown key {key}: the logical keys under {path[0]} are "
                f"{', '.join(logical)}. Use one of them or the real dotted path"
            )
        return path

    def entry(self, key: str) -> KeyEntry | None:
        """Return the schema entry of a logical name or real dotted path."""
        return self.schema.by_path(self.resolve(key), self.version)

    # -- reading ---------------------------------------------------------------

    def has(self, key: str) -> bool:
        return _lookup(self._data, self.resolve(key)) is not _MISSING

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value at `key` as plain Python data, or `default`."""
        found = _lookup(self._data, self.resolve(key))
        if found is _MISSING:
            return default
        return _plain(found)

    def data(self) -> dict[str, Any]:
        """Return the whole document as plain Python data."""
        plain = _plain(self._data)
        assert isinstance(plain, dict)
        return plain

    def locate(self, key: str | KeyPath) -> tuple[int, int] | None:
        """Return the 1-based line and column where `key` is set, if it is."""
        path = self.resolve(key) if isinstance(key, str) else key
        text = self.dumps()
        if self.format == "json":
            return json_key_positions(text).get(path)
        return toml_key_positions(text).get(path)

    # -- editing -----------------------------------------------------------------

    def set(self, key: str, value: Any) -> None:
        """Set `key` to `value`, creating missing tables on the way.

        Nothing else in the file changes. Setting the value a key already
        has (same type and value) leaves the document unchanged.
        """
        _check_value(value, key)
        path = self.resolve(key)
        current = _lookup(self._data, path)
        if current is not _MISSING and _same(_plain(current), value):
            return
        if self.format == "json":
            _json_set(self._data, path, value)
        else:
            _toml_set(self._data, path, value, self._created)
        self._dirty = True

    def unset(self, key: str) -> bool:
        """Remove `key`; return whether it was there."""
        path = self.resolve(key)
        parent = _lookup(self._data, path[:-1])
        if not isinstance(parent, MutableMapping) or path[-1] not in parent:
            return False
        del parent[path[-1]]
        self._dirty = True
        return True

    # -- writing -----------------------------------------------------------------

    def dumps(self) -> str:
        """Return the document's text: the original when nothing changed."""
        if not self._dirty:
            return self.original
        if self.format == "json":
            return _json_dumps(self._data, self.original)
        return _separate_tables(tomlkit.dumps(self._data), self._created)

    @property
    def changed(self) -> bool:
        return self.dumps() != self.original

    def diff(self, *, masked: bool = True) -> str:
        """Return a unified diff from the original text to the edited one.

        With `masked`, values of credential keys show as *** on both sides.
        """
        before, after = self.original, self.dumps()
        if masked:
            before, after = mask_secrets(before), mask_secrets(after)
        name = self.path or self.kind
        lines = difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{name} (current)",
            tofile=f"{name} (edited)",
        )
        return "".join(lines)


# -- loading ---------------------------------------------------------------------------


def load_document(kind: str, text: str, path: str = "") -> Document:
    """Parse a config of `kind` (snapshotter, nydusd or containerd).

    An empty `kind` is detected from the content and the file name. Raises
    ConfigSyntaxError with the position of a syntax error, and ValueError for
    a kind that is unknown or cannot be detected.
    """
    kind = kind or detect_kind(text, path)
    if not kind:
        _reject_unknown_text(text, path)
    if kind not in KINDS:
        raise ValueError(
            f"cannot tell which config {path or 'the text'} is; name its kind: "
            f"{', '.join(KINDS)}"
        )
    if kind == "nydusd" and _looks_like_json(text, path):
        return Document(kind, path, text, "json", _parse_json(text, path))
    return Document(kind, path, text, "toml", _parse_toml(text, path))


def _reject_unknown_text(text: str, path: str) -> None:
    """Raise the syntax error of a config whose kind is unknown.

    A file named *.toml or *.json gets its syntax error, the better report.
    Any other file that parses as neither is probably not a config at all.
    """
    try:
        if _looks_like_json(text, path):
            _parse_json(text, path)
        else:
            _parse_toml(text, path)
    except ConfigSyntaxError as exc:
        if posixpath.basename(path).lower().endswith((".toml", ".json")):
            raise
        raise ValueError(
            f"cannot tell which config {path or 'the text'} is: it is neither "
            f"TOML nor JSON ({exc}); give a config file, or name its kind "
            f"({', '.join(KINDS)}) if it is one"
        ) from None


def _looks_like_json(text: str, path: str = "") -> bool:
    """Return whether a config is JSON: a JSON config is an object, `{...}`.

    Text that starts with `[` is TOML (a table header such as `[daemon]`),
    unless the file is named *.json, where it is a JSON array to reject.
    """
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return True
    return stripped.startswith("[") and path.lower().endswith(".json")


def _parse_json(text: str, path: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigSyntaxError(path, exc.msg, exc.lineno, exc.colno) from None
    if not isinstance(data, dict):
        raise ConfigSyntaxError(path, "the top level must be a JSON object", 1, 1)
    return data


def _parse_toml(text: str, path: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        message = str(exc)
        # tomlkit appends " at line L col C"; the position has fields of its own.
        message = re.sub(r" at line \d+ col \d+$", "", message)
        # tomlkit counts columns from 0 (Source._to_linecol in tomlkit 0.15).
        raise ConfigSyntaxError(path, message, exc.line, exc.col + 1) from None


def detect_kind(text: str, path: str = "") -> str:
    """Guess the kind of a config from its content, then its file name.

    Returns "" when neither decides.
    """
    by_content = _kind_by_content(text)
    if by_content:
        return by_content
    name = posixpath.basename(path).lower()
    if "nydusd" in name or name.endswith(".json"):
        return "nydusd"
    if "containerd" in path.lower() and "nydus" not in name:
        return "containerd"
    if "nydus" in path.lower() and name.endswith(".toml"):
        return "snapshotter"
    return ""


_SNAPSHOTTER_TABLES = {"daemon", "snapshot", "cache_manager", "remote", "system"}
_NYDUSD_TABLES = {"backend", "cache", "rafs", "device", "config_v2", "fs_prefetch"}
_CONTAINERD_TABLES = {"plugins", "proxy_plugins", "grpc", "stream_processors"}


def _kind_by_content(text: str) -> str:
    if _looks_like_json(text):
        return "nydusd"
    try:
        keys = set(tomlkit.parse(text))
    except tomlkit.exceptions.ParseError:
        return ""
    if keys & _CONTAINERD_TABLES:
        return "containerd"
    if keys & _SNAPSHOTTER_TABLES or "daemon_mode" in keys:
        return "snapshotter"
    if keys & _NYDUSD_TABLES:
        return "nydusd"
    return ""


# -- walking and plain values ----------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _lookup(node: Any, path: KeyPath) -> Any:
    for segment in path:
        if not isinstance(node, MutableMapping) or segment not in node:
            return _MISSING
        node = node[segment]
    return node


def _plain(value: Any) -> Any:
    if isinstance(value, (Item, tomlkit.TOMLDocument)):
        value = value.unwrap()
    if isinstance(value, MutableMapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _same(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(
            _same(left[k], right[k]) for k in left
        )
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    return bool(left == right)


def _check_value(value: Any, key: str) -> None:
    """Reject values a config file cannot hold."""
    if isinstance(value, str):
        if re.search(r"[\ud800-\udfff]", value):
            raise ConfigEditError(
                f"value of {key} contains a lone surrogate (bytes that are not "
                "UTF-8), which no config file can hold"
            )
        return
    if isinstance(value, (bool, int, float)):
        return
    if isinstance(value, list):
        for item in value:
            _check_value(item, key)
        return
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise ConfigEditError(f"{key}: table keys must be strings")
            _check_value(name, key)
            _check_value(item, key)
        return
    raise ConfigEditError(f"{key}: cannot store a {type(value).__name__} in a config")


def _not_a_table(path: KeyPath, node: Any) -> ConfigEditError:
    kind = "list" if isinstance(node, list) else type(_plain(node)).__name__
    return ConfigEditError(
        f"{format_key(path)} contains a {kind}, not a table, so no key can go "
        "below it"
    )


# -- TOML ------------------------------------------------------------------------------


def _toml_set(
    document: tomlkit.TOMLDocument, path: KeyPath, value: Any, created: list[KeyPath]
) -> None:
    node: Any = document
    for depth, segment in enumerate(path[:-1]):
        if segment not in node:
            last_table = depth == len(path) - 2
            table = tomlkit.table(is_super_table=not last_table)
            node[segment] = table
            if last_table:
                created.append(path[: depth + 1])
        node = node[segment]
        if isinstance(node, AoT) or not isinstance(node, MutableMapping):
            raise _not_a_table(path[: depth + 1], node)
    key = path[-1]
    if key in node:
        node[key] = _toml_item(value)
        return
    indent = _sibling_indent(node)
    node[key] = _toml_item(value)
    item = node.item(key) if isinstance(node, Table) else None
    if isinstance(item, Item) and indent and not isinstance(item, (Table, AoT)):
        item.trivia.indent = indent


def _toml_item(value: Any) -> Item:
    if isinstance(value, dict):
        table = tomlkit.table()
        for name, inner in value.items():
            table[name] = _toml_item(inner)
        return table
    item: Item = tomlkit.item(value)
    return item


def _sibling_indent(table: Any) -> str:
    """Return the indent of the table's last plain key, to line new keys up."""
    body = getattr(getattr(table, "value", table), "body", [])
    for name, item in reversed(body):
        if name is not None and not isinstance(item, (Table, AoT)):
            return str(item.trivia.indent)
    return ""


def _separate_tables(text: str, created: list[KeyPath]) -> str:
    """Put a blank line between each created table and the header after it.

    tomlkit places a new table right after its parent's last child, which
    may sit before another table with no blank line between them. Comment
    lines directly above the next header stay with that header.
    """
    lines = text.split("\n")
    for path in created:
        start = toml_key_positions("\n".join(lines)).get(path)
        if start is None:
            continue
        following = next_header_line(lines, start[0])
        if following is None:
            continue
        index = following - 1
        while index > start[0] and lines[index - 1].lstrip().startswith("#"):
            index -= 1
        if lines[index - 1].strip():
            lines.insert(index, "")
    return "\n".join(lines)


# -- JSON ------------------------------------------------------------------------------


def _json_set(data: dict[str, Any], path: KeyPath, value: Any) -> None:
    node: Any = data
    for depth, segment in enumerate(path[:-1]):
        if segment not in node:
            node[segment] = {}
        node = node[segment]
        if not isinstance(node, dict):
            raise _not_a_table(path[: depth + 1], node)
    node[path[-1]] = value


def _json_dumps(data: dict[str, Any], original: str) -> str:
    """Render JSON with the original's indent, inline lists and final newline."""
    indent = _json_indent(original)
    inline = not re.search(r"\[[ \t]*\r?\n[ \t]*[^\s\]]", original)
    text = _render_json(data, indent, 0, inline)
    return text + "\n" if original.endswith("\n") else text


def _json_indent(text: str) -> str | None:
    match = re.search(r"^([ \t]+)\S", text, re.MULTILINE)
    return match.group(1) if match else None


def _render_json(value: Any, indent: str | None, level: int, inline: bool) -> str:
    if indent is None:
        return json.dumps(value, ensure_ascii=False)
    pad, inner = indent * level, indent * (level + 1)
    if isinstance(value, dict) and value:
        members = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}: "
            f"{_render_json(v, indent, level + 1, inline)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(members) + f"\n{pad}}}"
    if isinstance(value, list) and value:
        scalars = not any(isinstance(v, (dict, list)) for v in value)
        if inline and scalars:
            return json.dumps(value, ensure_ascii=False)
        items = [f"{inner}{_render_json(v, indent, level + 1, inline)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False)
