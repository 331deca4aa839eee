"""Read what an operator collected and tell each file's format and source.

The formats:

- `journal`: journalctl output in the short, short-iso, short-precise,
  short-full, short-monotonic or json format;
- `log`: logrus, nydusd or klog lines;
- `describe`: `kubectl describe pod`;
- `events`: `kubectl get events` or `kubectl get pods`;
- `ctr` (`ctr plugin ls`), `ps` and `lsof` tables;
- `unit`: a systemd unit file;
- `config`: a snapshotter, containerd or nydusd config;
- `text`: anything else, read line by line.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from nydus_console.configedit.document import (
    ConfigSyntaxError,
    Document,
    detect_kind,
    load_document,
)
from nydus_console.diagnose.content import NotText, text_of
from nydus_console.diagnose.lines import (
    SourceClassifier,
    is_journal_json,
    journal_short_parts,
    parse_line,
)
from nydus_console.diagnose.units import UnitFile, looks_like_unit, parse_unit
from nydus_console.logs.parsers import parse_structured
from nydus_console.logs.records import LogRecord

# Lines looked at to tell a file's format.
HEAD_LINES = 40
CONFIG_SUFFIXES = (".toml", ".tmpl", ".json")
MAX_CONFIG_CHARS = 1024 * 1024
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# The manifest of a support bundle (nydus_console.bundle) and its schema.
BUNDLE_MANIFEST = "MANIFEST.json"
BUNDLE_SCHEMA = "nydus-console/bundle/v1"

_TABLE_HEADERS = (
    ("events", re.compile(r"^(?:NAMESPACE\s+)?LAST SEEN\s+TYPE\s+REASON\s+OBJECT")),
    ("events", re.compile(r"^(?:NAMESPACE\s+)?NAME\s+READY\s+STATUS\s+RESTARTS")),
    ("ctr", re.compile(r"^TYPE\s+ID\s+PLATFORMS\s+STATUS\s*$")),
    ("lsof", re.compile(r"^COMMAND\s+PID\s+(?:TID\s+)?(?:TASKCMD\s+)?USER\s+FD")),
    (
        "ps",
        re.compile(r"^\s*(?:UID\s+|USER\s+)?PID\b.{0,200}?\b(?:CMD|COMMAND|ARGS)\s*$"),
    ),
)
_DESCRIBE = re.compile(r"^Name:\s+\S")
_DESCRIBE_MARK = re.compile(r"^(?:Namespace|Events|Containers|Init Containers):")


@dataclass
class Line:
    """One line of an input file, parsed, with the source it came from."""

    number: int
    text: str
    record: LogRecord
    source: str


@dataclass
class InputFile:
    """One file given to diagnose. `config_kind` is set for configs."""

    name: str
    text: str
    format: str
    source: str
    lines: list[Line] = field(default_factory=list)
    config_kind: str = ""
    document: Document | None = None
    syntax_error: ConfigSyntaxError | None = None
    unit: UnitFile | None = None


@dataclass(frozen=True)
class Skipped:
    """A file that was not analysed, and why (compressed, binary, empty)."""

    name: str
    reason: str


Read = tuple[list[tuple[str, str]], list[Skipped]]


def read_path(path: str, stdin: str | bytes | None = None) -> list[tuple[str, str]]:
    """Return (name, text) of the files at `path` that hold text; see read_inputs."""
    return read_inputs(path, stdin)[0]


def read_inputs(path: str, stdin: str | bytes | None = None) -> Read:
    """Return (name, text) of a file, every file under a directory, or stdin.

    A tar archive (.tar, .tar.gz, .tgz) stands for its files, like a
    directory. In a support bundle, the files its manifest marks as derived
    by the console (findings, summaries) are left out. Files without text
    (compressed other than gzip, binary, empty) come back as Skipped.
    """
    if path == "-":
        data = stdin.encode() if isinstance(stdin, str) else stdin or b""
        return _texts([("<stdin>", data)])
    target = Path(path)
    if target.is_dir():
        files = sorted(p for p in target.rglob("*") if p.is_file())
        found = [(str(p), p.read_bytes()) for p in files]
    elif target.name.endswith(ARCHIVE_SUFFIXES):
        found = _read_archive(target)
    else:
        return _texts([(path, target.read_bytes())])
    texts, skipped = _texts(found)
    derived = _derived_names(texts)
    return (
        [(name, text) for name, text in texts if name not in derived],
        [item for item in skipped if item.name not in derived],
    )


def _texts(found: list[tuple[str, bytes]]) -> Read:
    texts: list[tuple[str, str]] = []
    skipped: list[Skipped] = []
    for name, data in found:
        try:
            texts.append((name, text_of(name, data)))
        except NotText as exc:
            skipped.append(Skipped(name, str(exc)))
    return texts, skipped


def _read_archive(path: Path) -> list[tuple[str, bytes]]:
    try:
        with tarfile.open(path) as archive:
            found = []
            for member in archive.getmembers():
                data = archive.extractfile(member) if member.isfile() else None
                if data is not None:
                    found.append((f"{path}/{member.name}", data.read()))
            return found
    except tarfile.TarError as exc:
        raise OSError(f"{path} is not a readable tar archive: {exc}") from None


def _derived_names(found: list[tuple[str, str]]) -> set[str]:
    """Return the names of a bundle's manifest, README and derived files."""
    skipped: set[str] = set()
    for name, text in found:
        if Path(name).name != BUNDLE_MANIFEST or BUNDLE_SCHEMA not in text[:200]:
            continue
        top = str(Path(name).parent)
        skipped |= {name, f"{top}/README.md"}
        skipped |= {f"{top}/{entry}" for entry in _derived(text)}
    return skipped


def _derived(manifest: str) -> list[str]:
    try:
        document = json.loads(manifest)
    except ValueError:
        return []
    return [
        entry["path"]
        for node in document.get("nodes", [])
        for entry in node.get("files", [])
        if not entry.get("diagnose", True)
    ]


def load_input(name: str, text: str, classifier: SourceClassifier) -> InputFile:
    """Tell the format and source of one file and parse its lines."""
    head = [line for line in text.splitlines()[: HEAD_LINES * 4] if line.strip()]
    head = head[:HEAD_LINES]
    form, source = detect_format(name, text, head, classifier)
    item = InputFile(name, text, form, source)
    if form == "config":
        _load_config(item)
    elif form == "unit":
        item.unit = parse_unit(name, text)
        item.source = "unit"
    item.lines = list(_lines(item, classifier))
    return item


def detect_format(
    name: str, text: str, head: list[str], classifier: SourceClassifier
) -> tuple[str, str]:
    """Return (format, source) of a file from its first lines and its name."""
    if not head:
        return "text", ""
    if looks_like_unit(head):
        return "unit", "unit"
    if any(is_journal_json(line) or journal_short_parts(line) for line in head):
        return "journal", _file_source(name, head, classifier)
    if _DESCRIBE.match(head[0]) and any(_DESCRIBE_MARK.match(x) for x in head):
        return "describe", "events"
    for form, header in _TABLE_HEADERS:
        if header.match(head[0]):
            return form, form
    if any(parse_structured("", "", line) for line in head):
        return "log", _file_source(name, head, classifier)
    kind = config_kind(name, text)
    if kind:
        return "config", f"{kind}-config"
    return "text", _file_source(name, head, classifier)


def _file_source(name: str, head: list[str], classifier: SourceClassifier) -> str:
    base = Path(name).name
    return classifier.by_name(base) or classifier.by_content(head)


def config_kind(name: str, text: str) -> str:
    """Return the config kind of a file that is a config, else ""."""
    stripped = text.lstrip()
    suffixed = name.lower().endswith(CONFIG_SUFFIXES)
    if not suffixed and not stripped.startswith("{"):
        # Without a config suffix, only text that parses as a known config
        # counts. Configs are small, and parsing a large text costs seconds.
        return detect_kind(text, "") if len(text) < MAX_CONFIG_CHARS else ""
    kind = detect_kind(text, name)
    if kind == "nydusd" and stripped.startswith("{"):
        return kind if _nydusd_json(stripped) else ""
    if kind:
        return kind
    if "proxy_plugins" in text or "io.containerd." in text:
        return "containerd"
    if re.search(r"^\s*(?:daemon_mode|\[daemon\])", text, re.M):
        return "snapshotter"
    return ""


# Top-level keys of a nydusd JSON config (v1 or v2) or blob cache entry.
_NYDUSD_JSON_KEYS = frozenset(
    {"device", "mode", "fs_prefetch", "version", "backend", "cache", "rafs", "blobs"}
    | {"config", "config_v2", "digest_validate", "iostats_files", "enable_xattr"}
)


def _nydusd_json(text: str) -> bool:
    """Return whether JSON text looks like a nydusd config, not other JSON output.

    JSON that does not parse counts, so that its syntax error is reported.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return True
    return isinstance(data, dict) and bool(set(data) & _NYDUSD_JSON_KEYS)


def _load_config(item: InputFile) -> None:
    item.config_kind = item.source.removesuffix("-config")
    try:
        item.document = load_document(item.config_kind, item.text, item.name)
    except ConfigSyntaxError as exc:
        item.syntax_error = exc
    except ValueError:
        item.format, item.source, item.config_kind = "text", "", ""


def _lines(item: InputFile, classifier: SourceClassifier) -> list[Line]:
    if item.format == "describe":
        texts = describe_lines(item.text)
    else:
        texts = item.text.splitlines()
    lines: list[Line] = []
    for number, text in enumerate(texts, 1):
        if not text.strip():
            continue
        if item.format in ("journal", "log", "text"):
            parsed = parse_line(text, item.source, classifier)
            lines.append(Line(number, text, parsed.record, parsed.source))
        else:
            record = LogRecord("", item.source, text, raw=text)
            lines.append(Line(number, text, record, item.source))
    return lines


def describe_lines(text: str) -> list[str]:
    """Prefix the lines of `kubectl describe pod` init containers with their section.

    A container's state sits on lines of its own ("Reason: CreateContainerError"),
    so each line under "Init Containers:" becomes "Init Containers NAME: line",
    which a one-line pattern can tell apart from the same line of a container.
    """
    result: list[str] = []
    section = ""
    container = ""
    for line in text.splitlines():
        if line and not line[0].isspace():
            section = line.split(":", 1)[0]
            container = ""
            result.append(line)
            continue
        name = re.match(r"^  (\S[^:]*):\s*$", line)
        if name:
            container = name.group(1)
        if section == "Init Containers" and container and not name:
            result.append(f"Init Containers {container}: {line.strip()}")
        else:
            result.append(line)
    return result
