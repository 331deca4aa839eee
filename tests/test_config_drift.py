"""Comparing one config file across nodes, and aligning a node with the rest."""

from __future__ import annotations

from nydus_console.configedit.document import Document, load_document
from nydus_console.configedit.drift import (
    ABSENT,
    align,
    compare,
    describe_changes,
    flatten,
)

BASE = """\
version = 1
root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"

[daemon]
fs_driver = "fusedev"
threads_number = 4
"""


def documents(**texts: str) -> dict[str, Document]:
    return {name: load_document("snapshotter", text) for name, text in texts.items()}


def test_flatten_names_nested_keys() -> None:
    leaves = flatten(load_document("snapshotter", BASE))
    assert leaves["daemon.fs_driver"] == "fusedev"
    assert leaves["root"].endswith(".nydus")


def test_identical_nodes_have_no_drift() -> None:
    report = compare("snapshotter", documents(a=BASE, b=BASE, c=BASE))
    assert report.keys == []


def test_odd_node_is_the_outlier() -> None:
    odd = BASE.replace('fs_driver = "fusedev"', 'fs_driver = "fscache"')
    report = compare("snapshotter", documents(a=BASE, b=BASE, c=odd))
    (drift,) = report.keys
    assert drift.key == "daemon.fs_driver"
    assert drift.majority == '"fusedev"'
    assert drift.outliers == ["c"]
    assert drift.shown["c"] == '"fscache"'
    assert [d.key for d in report.outliers_of("c")] == ["daemon.fs_driver"]


def test_missing_key_counts_as_a_value() -> None:
    extra = BASE + '\n[metrics]\naddress = "127.0.0.1:9110"\n'
    report = compare("snapshotter", documents(a=BASE, b=extra, c=extra))
    (drift,) = report.keys
    assert drift.key == "metrics.address"
    assert drift.shown["a"] == ABSENT
    assert drift.outliers == ["a"]


def test_tie_has_no_majority() -> None:
    other = BASE.replace("threads_number = 4", "threads_number = 8")
    report = compare("snapshotter", documents(a=BASE, b=other))
    (drift,) = report.keys
    assert drift.majority is None
    assert drift.outliers == ["a", "b"]


def test_secrets_are_compared_but_not_shown() -> None:
    nydusd = '{"device": {"backend": {"type": "registry", "config": {"auth": "%s"}}}}'
    docs = {
        name: load_document("nydusd", nydusd % secret)
        for name, secret in (
            ("a", "c2VjcmV0MQ=="),
            ("b", "c2VjcmV0MQ=="),
            ("c", "b3RoZXI="),
        )
    }
    report = compare("nydusd", docs)
    (drift,) = report.keys
    assert drift.outliers == ["c"]
    assert set(drift.shown.values()) == {"***"}
    assert "c2VjcmV0MQ" not in str(report.to_dict())


def test_align_gives_the_majority_value_and_keeps_comments() -> None:
    odd = "# tuned by hand\n" + BASE.replace("threads_number = 4", "threads_number = 9")
    docs = documents(a=BASE, b=BASE, c=odd)
    report = compare("snapshotter", docs)
    target = docs["c"]
    for drift in report.outliers_of("c"):
        align(target, drift)
    text = target.dumps()
    assert "threads_number = 4" in text
    assert text.startswith("# tuned by hand\n")


def test_align_removes_a_key_most_nodes_lack() -> None:
    extra = BASE + '\n[metrics]\naddress = "127.0.0.1:9110"\n'
    docs = documents(a=BASE, b=BASE, c=extra)
    (drift,) = compare("snapshotter", docs).keys
    align(docs["c"], drift)
    assert "127.0.0.1:9110" not in docs["c"].dumps()


def test_changes_name_keys_and_mask_secrets() -> None:
    edited = BASE.replace("threads_number = 4\n", "") + '\n[log]\nlevel = "debug"\n'
    assert describe_changes("snapshotter", BASE, edited) == (
        'log.level = "debug"; daemon.threads_number unset'
    )
    assert describe_changes("snapshotter", BASE, BASE) == ""
    assert describe_changes("snapshotter", BASE, "not [toml") == ""
    nydusd = '{"device": {"backend": {"type": "registry", "config": {"auth": "%s"}}}}'
    changes = describe_changes("nydusd", nydusd % "b2xk", nydusd % "c2VjcmV0MQ==")
    assert changes == "device.backend.config.auth = ***"
    many = "".join(f"k{i} = {i}\n" for i in range(10))
    assert describe_changes("snapshotter", None, many).endswith("; and 2 more keys")
