"""The same config file compared across nodes, key by key.

One node with another root or fs_driver than the rest is a classic cause of
"works everywhere but one node". For every key whose value is not the same
on all nodes, the report gives each node's value, the value most nodes have,
and the nodes that differ from it. Secret values are compared by digest and
shown as ***.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nydus_console.configedit.document import Document, load_document
from nydus_console.configedit.keys import KeyPath, format_key
from nydus_console.configedit.values import display_value

ABSENT = "(not set)"
# Keys named in the description of one change; the rest are counted.
CHANGES_SHOWN = 8


@dataclass
class KeyDrift:
    """One key whose value differs between nodes."""

    key: str
    shown: dict[str, str]
    majority: str | None
    outliers: list[str]
    # The majority's raw value, to align a node with; None when it is "not set".
    majority_value: Any = None


@dataclass
class DriftReport:
    kind: str
    nodes: list[str]
    keys: list[KeyDrift] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)

    def outliers_of(self, node: str) -> list[KeyDrift]:
        return [k for k in self.keys if node in k.outliers]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "nodes": self.nodes,
            "unreadable": self.unreadable,
            "keys": [
                {
                    "key": k.key,
                    "values": k.shown,
                    "majority": k.majority,
                    "outliers": k.outliers,
                }
                for k in self.keys
            ],
        }


def flatten(document: Document) -> dict[str, Any]:
    """Return every leaf value of a document by its dotted key; lists are leaves."""
    leaves: dict[str, Any] = {}
    _walk(document.data(), (), leaves)
    return leaves


def _walk(node: Any, prefix: KeyPath, leaves: dict[str, Any]) -> None:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            _walk(value, (*prefix, str(key)), leaves)
    elif prefix:
        leaves[format_key(prefix)] = node


def _fingerprint(document: Document, key: str, value: Any) -> str:
    """Return a comparable form of a value, a digest for secrets."""
    text = json.dumps(value, sort_keys=True, default=str)
    entry = document.entry(key)
    if display_value(entry, key, value) == "***":
        return "secret:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def compare(kind: str, documents: dict[str, Document]) -> DriftReport:
    """Compare the documents of several nodes; keep the keys that differ."""
    report = DriftReport(kind, list(documents))
    flat = {node: flatten(doc) for node, doc in documents.items()}
    keys = sorted({key for leaves in flat.values() for key in leaves})
    for key in keys:
        drift = _key_drift(key, documents, flat)
        if drift is not None:
            report.keys.append(drift)
    report.keys.sort(key=lambda k: (-len(k.outliers), k.key))
    return report


def _key_drift(
    key: str, documents: dict[str, Document], flat: dict[str, dict[str, Any]]
) -> KeyDrift | None:
    prints: dict[str, str] = {}
    shown: dict[str, str] = {}
    raw: dict[str, Any] = {}
    for node, leaves in flat.items():
        if key in leaves:
            value = leaves[key]
            raw[node] = value
            prints[node] = _fingerprint(documents[node], key, value)
            shown[node] = display_value(documents[node].entry(key), key, value)
        else:
            prints[node] = ABSENT
            shown[node] = ABSENT
    if len(set(prints.values())) <= 1:
        return None
    counts = Counter(prints.values()).most_common()
    tie = len(counts) > 1 and counts[0][1] == counts[1][1]
    if tie:
        return KeyDrift(key, shown, None, sorted(prints))
    winner = counts[0][0]
    holder = next(n for n, p in prints.items() if p == winner)
    outliers = sorted(n for n, p in prints.items() if p != winner)
    return KeyDrift(key, shown, shown[holder], outliers, raw.get(holder))


def align(document: Document, drift: KeyDrift) -> None:
    """Give `document` the majority's value of one drifting key."""
    if drift.majority is None:
        raise ValueError(f"{drift.key}: no value is held by most nodes")
    if drift.majority == ABSENT:
        document.unset(drift.key)
    else:
        document.set(drift.key, drift.majority_value)


def describe_changes(kind: str, old_text: str | None, new_text: str) -> str:
    """Return the keys `new_text` changes as `key = value`, secrets as ***.

    Return "" when either text is not a config of `kind`. A new file
    (`old_text` None) names every key it sets.
    """
    try:
        after = load_document(kind, new_text)
        flat_before = {} if old_text is None else flatten(load_document(kind, old_text))
    except ValueError:
        return ""
    parts = []
    for key, value in sorted(flatten(after).items()):
        if key in flat_before and flat_before[key] == value:
            continue
        parts.append(f"{key} = {display_value(after.entry(key), key, value)}")
    parts += [f"{key} unset" for key in sorted(flat_before) if not after.has(key)]
    if len(parts) > CHANGES_SHOWN:
        rest = len(parts) - CHANGES_SHOWN
        parts = [*parts[:CHANGES_SHOWN], f"and {rest} more keys"]
    return "; ".join(parts)
