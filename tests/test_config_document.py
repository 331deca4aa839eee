"""Config documents: lossless round trips, in-place edits, keys, values, schema."""

from __future__ import annotations

import difflib
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from factbuilder import SAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from nydus_console.configedit.document import (
    ConfigEditError,
    ConfigSyntaxError,
    detect_kind,
    load_document,
)
from nydus_console.configedit.keys import (
    KeySyntaxError,
    format_key,
    parse_key,
    toml_basic_string,
)
from nydus_console.configedit.schema import KINDS, load_schema
from nydus_console.configedit.values import ValueParseError, parse_value
from nydus_console.configs import (
    DAEMON_MODES,
    FAILOVER_POLICIES,
    FS_DRIVERS,
    MAX_ROOT_BYTES,
    MAX_THREADS,
    RECOVER_POLICIES,
)

NYDUS = SAMPLES / "nydus" / "misc"
SAMPLE_CONFIGS = [
    *sorted((SAMPLES / "snapshotter").glob("*.toml")),
    *sorted((SAMPLES / "containerd").glob("*.toml")),
    *sorted((NYDUS / "configs").iterdir()),
    *sorted((NYDUS / "dragonfly").glob("*.json")),
    *sorted((NYDUS / "performance").glob("*.json")),
]
EXPECTED_KINDS = {"snapshotter": "snapshotter", "containerd": "containerd"}
V2_TOML = NYDUS / "configs" / "nydusd-config-v2.toml"
CONTAINERD_V2 = SAMPLES / "containerd" / "config-v2.toml"
CONTAINERD_V3 = SAMPLES / "containerd" / "config-v3.toml"
SNAPSHOTTER = SAMPLES / "snapshotter" / "config.toml"
PERFORMANCE_JSON = NYDUS / "performance" / "nydusd_config.json"

HOSTILE = [
    'a"b',
    "line one\nline two",
    "$(reboot)",
    "`id`; rm -rf /",
    "]",
    '"""',
    "'''",
    '[table]\nkey = "injected"',
    'x" \nnew_key = "y',
    "\\",
    "\x00\x01\x1f\x7f",
    "tab\there\r\nand crlf",
    "emoji 😀 and ümlaut",
    "",
    "#not a comment",
]


def leaves(data: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every leaf key path of parsed config data."""
    if not isinstance(data, dict) or not data:
        return {prefix}
    found: set[tuple[str, ...]] = set()
    for key, value in data.items():
        found |= leaves(value, (*prefix, key))
    return found


def reparse(document_text: str, fmt: str) -> dict[str, Any]:
    if fmt == "json":
        data = json.loads(document_text)
    else:
        data = tomllib.loads(document_text)
    assert isinstance(data, dict)
    return data


# -- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_CONFIGS, ids=lambda p: p.name)
def test_unchanged_sample_dumps_byte_identical(path: Path) -> None:
    text = path.read_text()
    document = load_document("", text, str(path))
    assert document.dumps() == text
    assert document.changed is False
    assert document.diff() == ""


@pytest.mark.parametrize("path", SAMPLE_CONFIGS, ids=lambda p: p.name)
def test_setting_same_value_changes_nothing(path: Path) -> None:
    text = path.read_text()
    document = load_document("", text, str(path))
    data = document.data()
    for key_path in sorted(leaves(data)):
        value = document.get(format_key(key_path))
        if value is None or value == {}:
            continue
        document.set(format_key(key_path), value)
    assert document.dumps() == text


@pytest.mark.parametrize("path", SAMPLE_CONFIGS, ids=lambda p: p.name)
def test_sample_kind_is_detected(path: Path) -> None:
    expected = EXPECTED_KINDS.get(path.parent.name, "nydusd")
    assert detect_kind(path.read_text(), str(path)) == expected


def test_kind_from_name_when_content_is_empty() -> None:
    assert detect_kind("", "/etc/containerd/config.toml") == "containerd"
    assert detect_kind("", "/etc/nydus/nydusd-config.fusedev.json") == "nydusd"
    assert detect_kind("", "/etc/nydus/config.toml") == "snapshotter"
    assert detect_kind("", "/tmp/x.toml") == ""


# -- edits -----------------------------------------------------------------------------


def test_edit_keeps_every_comment() -> None:
    text = V2_TOML.read_text()
    document = load_document("nydusd", text, str(V2_TOML))
    document.set("rafs.mode", "cached")
    document.set("backend.localfs.dir", "/var/lib/nydus/blobs")
    document.set("cache.filecache.enable_encryption", False)
    edited = document.dumps()
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert comments
    edited_comments = [
        line for line in edited.splitlines() if line.lstrip().startswith("#")
    ]
    assert edited_comments == comments
    data = tomllib.loads(edited)
    assert data["rafs"]["mode"] == "cached"
    assert data["backend"]["localfs"]["dir"] == "/var/lib/nydus/blobs"
    assert data["cache"]["filecache"]["enable_encryption"] is False


def test_edit_changes_only_its_lines() -> None:
    text = V2_TOML.read_text()
    document = load_document("nydusd", text, str(V2_TOML))
    document.set("rafs.mode", "cached")
    changed = [
        line
        for line in difflib.unified_diff(
            text.splitlines(), document.dumps().splitlines(), lineterm="", n=0
        )
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert changed == ['-mode = "direct"', '+mode = "cached"']


def test_inline_comment_survives_replacement() -> None:
    document = load_document(
        "snapshotter", 'version = 1\n[daemon]\nfs_driver = "fscache"  # kernel 6\n'
    )
    document.set("daemon.fs_driver", "fusedev")
    assert 'fs_driver = "fusedev"  # kernel 6\n' in document.dumps()


def test_json_edit_keeps_order_and_indent() -> None:
    text = PERFORMANCE_JSON.read_text()
    document = load_document("nydusd", text, str(PERFORMANCE_JSON))
    document.set("device.backend.config.repo", "library/ubuntu")
    document.set("fs_prefetch.enable", True)
    edited = document.dumps()

    def order(raw: str) -> list[str]:
        keys: list[str] = []
        json.loads(
            raw, object_pairs_hook=lambda pairs: keys.extend(k for k, _ in pairs)
        )
        return keys

    assert order(edited) == [
        *order(text)[: order(text).index("retry_limit") + 1],
        "repo",
        *order(text)[order(text).index("retry_limit") + 1 :],
    ]
    for line in edited.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 4 == 0, line
    diff = [
        line
        for line in difflib.unified_diff(text.splitlines(), edited.splitlines(), n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert diff == [
        '-                "retry_limit": 4',
        '+                "retry_limit": 4,',
        '+                "repo": "library/ubuntu"',
        '-        "enable": false',
        '+        "enable": true',
    ]
    assert edited.endswith("\n") == text.endswith("\n")


def test_json_without_final_newline_keeps_none() -> None:
    path = NYDUS / "configs" / "nydusd-config.json"
    text = path.read_text()
    assert not text.endswith("\n")
    document = load_document("nydusd", text, str(path))
    document.set("mode", "cached")
    edited = document.dumps()
    assert not edited.endswith("\n")
    assert '"ca_cert_files": ["/etc/ssl/certs/my-ca.pem"]' in edited
    assert json.loads(edited)["mode"] == "cached"


def test_missing_table_created_before_next_header() -> None:
    text = CONTAINERD_V2.read_text()
    document = load_document("containerd", text, str(CONTAINERD_V2))
    document.set("proxy_plugins.nydus.exports.root", "/data/nydus")
    edited = document.dumps()
    assert tomllib.loads(edited)["proxy_plugins"]["nydus"]["exports"] == {
        "root": "/data/nydus"
    }
    lines = edited.splitlines()
    header = lines.index('[plugins."io.containerd.grpc.v1.cri".containerd]')
    assert lines[header - 1] == ""
    assert lines.index("  [proxy_plugins.nydus.exports]") < header


def test_missing_tables_created_at_end() -> None:
    document = load_document("containerd", "version = 3\n", "c.toml")
    document.set("cri.snapshotter", "nydus")
    document.set("proxy_plugins.nydus.type", "snapshot")
    document.set("proxy_plugins.nydus.address", "/run/x.sock")
    edited = document.dumps()
    assert edited == (
        "version = 3\n\n"
        '[plugins."io.containerd.cri.v1.images"]\n'
        'snapshotter = "nydus"\n\n'
        "[proxy_plugins.nydus]\n"
        'type = "snapshot"\n'
        'address = "/run/x.sock"\n'
    )


def test_new_key_lines_up_with_siblings() -> None:
    text = CONTAINERD_V2.read_text()
    document = load_document("containerd", text, str(CONTAINERD_V2))
    document.set("proxy_plugins.nydus.platform", "linux/amd64")
    assert '    platform = "linux/amd64"\n' in document.dumps()


def test_unset_removes_key_only() -> None:
    text = SNAPSHOTTER.read_text()
    document = load_document("snapshotter", text, str(SNAPSHOTTER))
    assert document.unset("daemon.threads_number") is True
    assert document.unset("daemon.threads_number") is False
    edited = document.dumps()
    assert "threads_number" not in edited
    assert leaves(tomllib.loads(edited)) == leaves(tomllib.loads(text)) - {
        ("daemon", "threads_number")
    }


def test_key_below_a_value_is_rejected() -> None:
    document = load_document("snapshotter", 'version = 1\nroot = "/x"\n')
    with pytest.raises(ConfigEditError, match="root contains a str, not a table"):
        document.set("root.inner", "y")


def test_lone_surrogate_is_rejected() -> None:
    document = load_document("snapshotter", "version = 1\n")
    with pytest.raises(ConfigEditError, match="lone surrogate"):
        document.set("root", "bad\udcff")


def test_diff_masks_secrets() -> None:
    path = NYDUS / "dragonfly" / "nydusd-config.json"
    document = load_document("nydusd", path.read_text(), str(path))
    document.set("device.backend.config.auth", "dXNlcjpzM2NyZXQ=")
    diff = document.diff()
    assert '"auth": "***"' in diff
    assert "dXNlcjpzM2NyZXQ=" not in diff
    assert "dXNlcjpzM2NyZXQ=" in document.diff(masked=False)


# -- logical names and real paths ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "table"),
    [
        (CONTAINERD_V2, ("plugins", "io.containerd.grpc.v1.cri", "containerd")),
        (CONTAINERD_V3, ("plugins", "io.containerd.cri.v1.images")),
    ],
)
def test_cri_names_resolve_per_version(path: Path, table: tuple[str, ...]) -> None:
    document = load_document("containerd", path.read_text(), str(path))
    assert document.resolve("cri.snapshotter") == (*table, "snapshotter")
    assert document.get("cri.snapshotter") == "nydus"
    real = format_key((*table, "disable_snapshot_annotations"))
    assert document.get(real) is False
    assert document.entry(real) is document.entry("cri.disable_snapshot_annotations")
    document.set("cri.discard_unpacked_layers", True)
    data = tomllib.loads(document.dumps())
    node: Any = data
    for segment in table:
        node = node[segment]
    assert node["discard_unpacked_layers"] is True


def test_unknown_logical_name_is_rejected() -> None:
    document = load_document("containerd", CONTAINERD_V3.read_text())
    with pytest.raises(ConfigEditError, match="cri.snapshotter"):
        document.set("cri.snapshoter", "nydus")


def test_quoted_real_path_with_single_quotes() -> None:
    document = load_document("containerd", CONTAINERD_V3.read_text())
    assert document.get("plugins.'io.containerd.cri.v1.images'.snapshotter") == "nydus"


# -- hostile values --------------------------------------------------------------------

STRING_KEYS = [
    (SNAPSHOTTER, "snapshotter", "root", "toml"),
    (SNAPSHOTTER, "snapshotter", "remote.mirrors_config.dir", "toml"),
    (SNAPSHOTTER, "snapshotter", "image.brand_new_table.key", "toml"),
    (CONTAINERD_V2, "containerd", "proxy_plugins.nydus.address", "toml"),
    (CONTAINERD_V3, "containerd", "proxy_plugins.nydus.exports.root", "toml"),
    (V2_TOML, "nydusd", "backend.registry.auth", "toml"),
    (PERFORMANCE_JSON, "nydusd", "device.backend.config.repo", "json"),
    (PERFORMANCE_JSON, "nydusd", "device.backend.config.proxy.url", "json"),
]


def assert_lands_as_data(path: Path, kind: str, key: str, fmt: str, value: str) -> None:
    text = path.read_text()
    document = load_document(kind, text, str(path))
    document.set(key, value)
    data = reparse(document.dumps(), fmt)
    node: Any = data
    key_path = document.resolve(key)
    for segment in key_path:
        node = node[segment]
    assert node == value
    assert leaves(data) - leaves(reparse(text, fmt)) <= {key_path}
    again = load_document(kind, document.dumps(), str(path))
    assert again.get(key) == value


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize(("path", "kind", "key", "fmt"), STRING_KEYS)
def test_hostile_value_lands_as_data(
    path: Path, kind: str, key: str, fmt: str, value: str
) -> None:
    assert_lands_as_data(path, kind, key, fmt, value)


@settings(max_examples=150, deadline=None)
@given(value=st.text(max_size=60), case=st.sampled_from(STRING_KEYS))
def test_any_text_lands_as_data(value: str, case: tuple[Path, str, str, str]) -> None:
    assert_lands_as_data(*case, value)


@settings(max_examples=100, deadline=None)
@given(name=st.text(min_size=1, max_size=30), value=st.text(max_size=20))
def test_any_key_name_lands_as_data(name: str, value: str) -> None:
    text = CONTAINERD_V2.read_text()
    document = load_document("containerd", text, str(CONTAINERD_V2))
    document.set(format_key(("proxy_plugins", name, "address")), value)
    data = tomllib.loads(document.dumps())
    assert data["proxy_plugins"][name]["address"] == value
    assert leaves(data) - leaves(tomllib.loads(text)) <= {
        ("proxy_plugins", name, "address")
    }


# -- keys ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=4))
def test_format_then_parse_key_round_trips(segments: list[str]) -> None:
    assert parse_key(format_key(tuple(segments))) == tuple(segments)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_toml_basic_string_reads_back(value: str) -> None:
    assert tomllib.loads(f"x = {toml_basic_string(value)}")["x"] == value


@pytest.mark.parametrize("bad", ["", "a..b", "a.", '"open', "a b", "a.[b]"])
def test_invalid_dotted_key_is_rejected(bad: str) -> None:
    with pytest.raises(KeySyntaxError):
        parse_key(bad)


# -- syntax errors ---------------------------------------------------------------------


def test_toml_syntax_error_has_line_and_column() -> None:
    text = 'version = 1\n[daemon]\nfs_driver = "fusedev\n'
    with pytest.raises(ConfigSyntaxError) as caught:
        load_document("snapshotter", text, "/etc/nydus/config.toml")
    assert caught.value.file == "/etc/nydus/config.toml"
    assert caught.value.line == 3
    assert caught.value.column is not None
    assert str(caught.value).startswith("/etc/nydus/config.toml:3:")


def test_json_syntax_error_has_line_and_column() -> None:
    text = '{\n  "mode": "direct",\n  "device": {,}\n}\n'
    with pytest.raises(ConfigSyntaxError) as caught:
        load_document("nydusd", text, "n.json")
    assert (caught.value.line, caught.value.column) == (3, 14)
    assert "Expecting property name" in caught.value.message


def test_undetectable_broken_text_reports_syntax() -> None:
    with pytest.raises(ConfigSyntaxError):
        load_document("", "x = [\n", "/tmp/unknown.toml")
    with pytest.raises(ValueError, match="cannot tell which config"):
        load_document("", "x = 1\n", "/tmp/unknown.toml")


# -- values ----------------------------------------------------------------------------


def snapshotter_entry(name: str) -> Any:
    entry = load_schema("snapshotter").by_name(name)
    assert entry is not None
    return entry


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("cleanup_on_close", "true", True),
        ("cleanup_on_close", "false", False),
        ("daemon.threads_number", "16", 16),
        ("daemon.fs_driver", "fscache", "fscache"),
        ("version", "1", 1),
        ("cache_manager.gc_period", "1h30m", "1h30m"),
        ("metrics.hung_io_interval", "500ms", "500ms"),
        ("cgroup.memory_limit", "200MiB", "200MiB"),
        ("cgroup.memory_limit", "10%", "10%"),
        ("root", "/data/n", "/data/n"),
    ],
)
def test_parse_value_typed(key: str, text: str, value: Any) -> None:
    parsed = parse_value(snapshotter_entry(key), text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("key", "text", "reason"),
    [
        ("cleanup_on_close", "yes", "expected true or false"),
        ("daemon.threads_number", "4.5", "expected a whole number"),
        ("daemon.threads_number", "2048", "must be at most 1024"),
        ("version", "2", "allowed values: 1"),
        ("cache_manager.gc_period", "1 day", "Go duration"),
        ("root", "/" + "r" * 80, "81 bytes long, max is 70 bytes"),
        ("system", "x", "this is a table"),
    ],
)
def test_parse_value_errors(key: str, text: str, reason: str) -> None:
    with pytest.raises(ValueParseError) as caught:
        parse_value(snapshotter_entry(key), text)
    assert reason in str(caught.value)
    assert key in str(caught.value)
    assert repr(text) in str(caught.value)


def test_parse_value_enum_names_allowed_values() -> None:
    with pytest.raises(ValueParseError) as caught:
        parse_value(snapshotter_entry("daemon.fs_driver"), "none")
    message = str(caught.value)
    assert "'none'" in message
    assert "daemon.fs_driver" in message
    for driver in FS_DRIVERS:
        assert f'"{driver}"' in message


def test_parse_value_list_and_secret() -> None:
    entry = load_schema("nydusd", "v1").by_name("device.backend.config.ca_cert_files")
    assert entry is not None
    assert parse_value(entry, '["/a.pem", "/b.pem"]') == ["/a.pem", "/b.pem"]
    with pytest.raises(ValueParseError, match="JSON array"):
        parse_value(entry, "/a.pem")
    secret = load_schema("nydusd", "v1").by_name("device.backend.config.auth")
    assert secret is not None
    assert parse_value(secret, "dXNlcg==") == "dXNlcg=="
    timeout = load_schema("nydusd", "v1").by_name("device.backend.config.timeout")
    assert timeout is not None
    with pytest.raises(ValueParseError) as caught:
        parse_value(timeout, "-1")
    assert "must be at least 0" in str(caught.value)


# -- schema ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "layout"),
    [("snapshotter", ""), ("nydusd", "v1"), ("nydusd", "v2"), ("containerd", "")],
)
def test_schema_entries_are_complete(kind: str, layout: str) -> None:
    schema = load_schema(kind, layout)
    assert kind in KINDS
    assert len(schema.entries) > 10
    for entry in schema:
        assert entry.help.strip(), entry.name
        assert entry.group, entry.name
        if entry.type == "enum":
            assert entry.allowed, entry.name


@pytest.mark.parametrize(
    ("layout", "secrets"),
    [
        (
            "v1",
            {
                "device.backend.config.auth",
                "device.backend.config.registry_token",
                "device.backend.config.access_key_id",
                "device.backend.config.access_key_secret",
                "device.cache.config.encryption_key",
            },
        ),
        (
            "v2",
            {
                "backend.registry.auth",
                "backend.registry.registry_token",
                "backend.oss.access_key_id",
                "backend.oss.access_key_secret",
                "backend.s3.access_key_id",
                "backend.s3.access_key_secret",
                "cache.filecache.encryption_key",
            },
        ),
    ],
)
def test_secret_keys_are_flagged(layout: str, secrets: set[str]) -> None:
    flagged = {e.name for e in load_schema("nydusd", layout) if e.secret}
    assert flagged == secrets


def test_schema_agrees_with_check_constants() -> None:
    schema = load_schema("snapshotter")

    def allowed(name: str) -> tuple[Any, ...]:
        entry = schema.by_name(name)
        assert entry is not None
        return entry.allowed

    assert allowed("daemon.fs_driver") == FS_DRIVERS
    assert allowed("daemon_mode") == DAEMON_MODES
    assert allowed("daemon.recover_policy") == RECOVER_POLICIES
    assert allowed("daemon.failover_policy") == FAILOVER_POLICIES
    root = schema.by_name("root")
    threads = schema.by_name("daemon.threads_number")
    assert root is not None and root.max_bytes == MAX_ROOT_BYTES
    assert threads is not None and threads.maximum == MAX_THREADS


@pytest.mark.parametrize(
    "path", sorted((SAMPLES / "snapshotter").glob("*.toml")), ids=lambda p: p.name
)
def test_every_snapshotter_sample_key_is_known(path: Path) -> None:
    schema = load_schema("snapshotter")
    for key_path in leaves(tomllib.loads(path.read_text())):
        assert schema.by_path(key_path) is not None, format_key(key_path)


def test_containerd_real_paths_per_version() -> None:
    schema = load_schema("containerd")
    entry = schema.by_name("cri.snapshotter")
    assert entry is not None
    assert entry.path(1) == ("plugins", "cri", "containerd", "snapshotter")
    assert entry.path(2)[1] == "io.containerd.grpc.v1.cri"
    assert entry.path(3)[1] == "io.containerd.cri.v1.images"
    assert entry.path(4) == entry.path(3)
    assert schema.lookup(
        'plugins."io.containerd.grpc.v1.cri".containerd.snapshotter', 2
    )
