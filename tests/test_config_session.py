"""The editing session behind the config screen, without Textual."""

from __future__ import annotations

import json

import pytest
from doubles.recorded_facts import load_recorded
from factbuilder import SAMPLES

from nydus_console.configedit.document import ConfigSyntaxError, load_document
from nydus_console.configedit.remote import NodeConfig
from nydus_console.configedit.schema import load_schema
from nydus_console.configedit.session import UNSET, EditSession
from nydus_console.configedit.validate import ValidationContext
from nydus_console.inventory import NodeSpec

FILES = load_recorded(SAMPLES / "facts")["nc-node1"].files
SNAPSHOTTER = "/etc/nydus/config.toml"
NYDUSD = "/etc/nydus/nydusd-config.json"
SECRET = "dXNlcjpzZWNyZXQtcGFzc3dvcmQ="


def session_of(kind: str, path: str, text: str | None) -> EditSession:
    config = NodeConfig("nc-node1", kind, path, text)
    if text is not None:
        try:
            config.document = load_document(kind, text, path)
        except ConfigSyntaxError as exc:
            config.syntax = exc
    return EditSession(config, ValidationContext())


def snapshotter(text: str | None = None) -> EditSession:
    if text is None:
        text = FILES[SNAPSHOTTER].text
    return session_of("snapshotter", SNAPSHOTTER, text)


def nydusd_with_auth() -> EditSession:
    data = json.loads(FILES[NYDUSD].text)
    data["device"]["backend"]["config"]["auth"] = SECRET
    return session_of("nydusd", NYDUSD, json.dumps(data, indent=2) + "\n")


def test_put_and_unset_change_the_text() -> None:
    session = snapshotter()
    level = load_schema("snapshotter").by_name("log.level")
    assert level is not None
    assert session.put(level, "debug")
    assert 'level = "debug"' in session.text
    assert session.changed
    assert not session.put(level, "debug")
    assert session.put(level, UNSET)
    assert "level =" not in session.text.split("[log]")[1].split("[")[0]


def test_put_back_the_old_value_is_no_change() -> None:
    session = snapshotter()
    threads = load_schema("snapshotter").by_name("daemon.threads_number")
    assert threads is not None
    session.put(threads, 8)
    session.put(threads, 4)
    assert not session.changed
    assert session.diff() == ""


def test_old_errors_do_not_block_new_ones_do() -> None:
    text = FILES[SNAPSHOTTER].text.replace(
        "threads_number = 4", "threads_number = 2000"
    )
    session = snapshotter(text)
    (old,) = session.problems()
    assert old.existing
    assert not old.blocking
    assert session.blocking() == []
    root = load_schema("snapshotter").by_name("root")
    assert root is not None
    session.put(root, "relative/root")
    new = [m for m in session.problems() if not m.existing]
    assert new
    assert all(m.problem.key == "root" for m in new)
    assert session.blocking()


def test_diff_masks_a_changed_credential() -> None:
    session = nydusd_with_auth()
    auth = load_schema("nydusd", "v1").by_name("device.backend.config.auth")
    assert auth is not None
    session.put(auth, "bmV3")
    diff = session.diff()
    assert '-        "auth": "***"' in diff
    assert '+        "auth": "***"' in diff
    assert SECRET not in diff
    assert "bmV3" not in diff


def test_raw_text_masks_and_restores_credentials() -> None:
    session = nydusd_with_auth()
    raw, masked = session.raw_text()
    assert masked
    assert SECRET not in raw
    assert '"auth": "***"' in raw
    session.replace_text(raw.replace('"retry_limit": 2', '"retry_limit": 3'))
    assert session.document is not None
    assert session.document.get("device.backend.config.auth") == SECRET
    assert session.document.get("device.backend.config.retry_limit") == 3


def test_raw_text_keeps_a_replaced_credential() -> None:
    session = nydusd_with_auth()
    raw, _ = session.raw_text()
    session.replace_text(raw.replace('"auth": "***"', '"auth": "bmV3"'))
    assert session.document is not None
    assert session.document.get("device.backend.config.auth") == "bmV3"


def test_raw_text_unmasked_when_masking_breaks_syntax() -> None:
    text = FILES[SNAPSHOTTER].text + '\n[remote.auth]\npassword = { a = "b" }\n'
    session = snapshotter(text)
    raw, masked = session.raw_text()
    assert not masked
    assert raw == session.text


def test_replace_text_with_a_syntax_error_keeps_the_document() -> None:
    session = snapshotter()
    before = session.text
    with pytest.raises(ConfigSyntaxError) as caught:
        session.replace_text(before.replace("[daemon]", "[daemon"))
    assert caught.value.line == 11
    assert session.text == before


def test_toml_syntax_error_column_counts_from_one() -> None:
    with pytest.raises(ConfigSyntaxError) as caught:
        load_document("snapshotter", "a = = 4\n", SNAPSHOTTER)
    assert (caught.value.line, caught.value.column) == (1, 5)


def test_syntax_error_session_has_no_document() -> None:
    session = snapshotter("version = = 1\n")
    assert session.document is None
    assert not session.changed
    (problem,) = session.problems()
    assert problem.existing
    session.replace_text("version = 1\n")
    assert session.document is not None
    assert session.changed


def test_missing_file_starts_from_an_empty_object() -> None:
    session = session_of("nydusd", NYDUSD, None)
    assert session.text == "{}\n"
    assert not session.changed
    mode = load_schema("nydusd", "v1").by_name("mode")
    assert mode is not None
    session.put(mode, "direct")
    spec = NodeSpec(name="nc-node1", host="10.201.0.6", user="root")
    change = session.plan(spec, None, restart=False)
    assert change.old_text is None
    assert json.loads(change.new_text) == {"mode": "direct"}
    assert session.diff().startswith(f"--- {NYDUSD} (on nc-node1)")


def test_unknown_keys_mask_close_credentials() -> None:
    data = json.loads(FILES[NYDUSD].text)
    data["device"]["backend"]["config"]["autth"] = SECRET
    data["device"]["backend"]["config"]["colour"] = "blue"
    session = session_of("nydusd", NYDUSD, json.dumps(data, indent=2))
    unknown = dict(session.unknown_keys())
    assert unknown["device.backend.config.autth"] == "***"
    assert unknown["device.backend.config.colour"] == '"blue"'
