"""The support bundle's masking, naming, archive and command-line errors."""

from __future__ import annotations

import datetime
import json
import tarfile
from pathlib import Path

import pytest

from nydus_console.bundle import BundleExists, NodeBundle, bundle_stem, write_bundle
from nydus_console.bundle.model import mask
from nydus_console.cli import main
from nydus_console.diagnose.inputs import read_path

NOW = datetime.datetime(2026, 3, 1, 8, 30, 5, tzinfo=datetime.UTC)


def test_journal_json_message_is_masked() -> None:
    message = 'config {"auth": "c2VjcmV0OnB3", "host": "r.example"}'
    line = json.dumps({"MESSAGE": message, "_SYSTEMD_UNIT": "x.service"})
    masked = mask(line + "\nplain password=hunter2 kept")
    assert "c2VjcmV0OnB3" not in masked
    assert "hunter2" not in masked
    entry = json.loads(masked.splitlines()[0])
    assert '"auth": "***"' in entry["MESSAGE"]
    assert "r.example" in entry["MESSAGE"]
    assert masked.splitlines()[1] == 'plain password="***" kept'


def test_stem_names_nodes_and_utc_time() -> None:
    assert bundle_stem(["gpu-1", "ops@n:22"], NOW) == (
        "nydus-bundle-gpu-1-ops_n_22-20260301T083005Z"
    )
    many = bundle_stem([f"n{i}" for i in range(5)], NOW)
    assert many == "nydus-bundle-n0-n1-n2-and-2-more-20260301T083005Z"


def _bundle(tmp_path: Path) -> Path:
    node = NodeBundle("n1", "root@n1")
    node.add(
        "logs/files/var/log/nydusd.log",
        "[2026-03-01 08:00:00.000000 +00:00] ERROR failed to mount: password=abc\n",
        "nydusd log",
    )
    node.add(
        "findings.txt", "FAIL copied failed to mount\n", "findings", diagnose=False
    )
    node.missing("/var/log/other.log", "exit status 1: No such file")
    node.without_entries(
        "journal of kubelet.service", "kubelet.service is not installed on n1"
    )
    path = tmp_path / "b.tar.gz"
    write_bundle(path, [node], 100, NOW)
    return path


def test_archive_layout_and_refusal(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    with tarfile.open(path) as archive:
        names = archive.getnames()
    assert names == [
        "b/MANIFEST.json",
        "b/README.md",
        "b/n1/logs/files/var/log/nydusd.log",
        "b/n1/findings.txt",
    ]
    with pytest.raises(BundleExists):
        write_bundle(path, [], 100, NOW)


def test_diagnose_reads_archive_without_derived_files(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    read = read_path(str(path))
    assert [name for name, _ in read] == [f"{path}/b/n1/logs/files/var/log/nydusd.log"]
    assert "abc" not in read[0][1]


@pytest.mark.parametrize("value", ["0", "-5", "many", "1000001", "99999999999"])
def test_bad_lines_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bundle", "--lines", value])
    assert exit_info.value.code == 64
    assert f"--lines {value!r}" in capsys.readouterr().err


def test_output_in_a_missing_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    output = tmp_path / "typo" / "b.tar.gz"
    assert main(["bundle", "--output", str(output)]) == 64
    err = capsys.readouterr().err
    assert f"folder {tmp_path / 'typo'} of --output" in err
    assert "create it first" in err
    assert not (tmp_path / "typo").exists()


def test_sources_without_entries_are_listed_not_stored(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    with tarfile.open(path) as archive:
        manifest = json.loads(_text(archive, "b/MANIFEST.json"))
        readme = _text(archive, "b/README.md")
    (node,) = manifest["nodes"]
    assert node["no_entries"] == [
        {
            "item": "journal of kubelet.service",
            "reason": "kubelet.service is not installed on n1",
        }
    ]
    assert (
        "Read, with nothing in them (no file in the bundle):\n"
        "- journal of kubelet.service: kubelet.service is not installed on n1"
    ) in readme


def _text(archive: tarfile.TarFile, name: str) -> str:
    member = archive.extractfile(name)
    assert member is not None
    return member.read().decode()
