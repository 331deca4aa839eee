"""Validation of one config document against its schema and the config rules.

`validate(document, context)` returns every problem found, errors first.
Three sources feed it:

- the schema: wrong types, values not allowed, missing required keys, and
  keys that no program reads. nydusd and the snapshotter ignore unknown keys
  silently, so a misspelt key is reported as a warning with the closest
  known key;
- nydusd's own requirements (nydus_console.configs), such as the host and
  repo of a registry backend;
- the config rules shared with the health checks (nydus_console.configrules),
  some of which need the other configs or facts about the node. `context`
  carries what is known; a rule whose input is unknown is skipped.
"""

from __future__ import annotations

import difflib
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any, Literal

from nydus_console.checks import load_checks
from nydus_console.configedit.document import ConfigSyntaxError, Document
from nydus_console.configedit.keys import KeyPath, format_key, parse_key
from nydus_console.configedit.schema import KeyEntry, Schema
from nydus_console.configedit.values import (
    allowed_text,
    check_value,
    display_value,
    type_problem,
)
from nydus_console.configrules import (
    RuleProblem,
    cri_snapshotter_problem,
    fscache_kernel_problem,
    fuse_device_problem,
    mirrors_dir_problem,
    missing_nydusd_config_problem,
    proxy_plugin_problem,
    root_location_problem,
    root_problem,
    snapshot_annotations_problem,
)
from nydus_console.configs import (
    NYDUSD_DEFAULT_CONFIG,
    ConfigError,
    ContainerdConfig,
    SnapshotterConfig,
    nydusd_requirement_problems,
    parse_containerd_config,
    parse_snapshotter_config,
)
from nydus_console.facts import NodeFacts
from nydus_console.findings import Status
from nydus_console.inventory import NodePaths

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file, and the next step to fix it.

    `value` is the value as written (JSON syntax), *** for a secret, or ""
    when the key is not set. `line` and `column` are 1-based, None when the
    key is not in the file.
    """

    severity: Severity
    file: str
    key: str
    value: str
    message: str
    fix: str = ""
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "key": self.key,
            "value": self.value,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass
class ValidationContext:
    """Facts besides the document; None means unknown.

    The texts are the node's other configs. `nydusd_template` is whether a
    nydusd config is the snapshotter's [daemon] nydusd_config (which gets
    the registry host and repo from the snapshotter); None decides it from
    `snapshotter_text`. `path_types` maps probed paths to "dir", "file", "-"
    (missing) or another file type. `paths` names the files and units in
    fixes.
    """

    snapshotter_text: str | None = None
    containerd_text: str | None = None
    nydusd_text: str | None = None
    nydusd_template: bool | None = None
    kernel_release: str | None = None
    kernel_config: dict[str, str] | None = None
    devices: set[str] | None = None
    path_types: dict[str, str] | None = None
    paths: NodePaths = field(default_factory=NodePaths)

    @classmethod
    def from_facts(cls, facts: NodeFacts, paths: NodePaths) -> ValidationContext:
        """Build the context of a probed node."""

        def text(path: str) -> str | None:
            read = facts.file(path)
            return read.text if read.status == "ok" else None

        snapshotter_text = text(paths.snapshotter_config)
        nydusd_path = _nydusd_config_path(snapshotter_text)
        probed = bool(facts.kernel_release)
        return cls(
            snapshotter_text=snapshotter_text,
            containerd_text=text(paths.containerd_config),
            nydusd_text=text(nydusd_path) if nydusd_path else None,
            kernel_release=facts.kernel_release or None,
            kernel_config=facts.kernel_config,
            devices=set(facts.devices) if probed else None,
            path_types=dict(facts.path_types),
            paths=paths,
        )


def _nydusd_config_path(snapshotter_text: str | None) -> str:
    model = _parsed(snapshotter_text, parse_snapshotter_config)
    return model.nydusd_config if model is not None else ""


def _parsed(text: str | None, parser: Any) -> Any:
    if text is None:
        return None
    try:
        return parser(text)
    except ConfigError:
        return None


def validate(
    document: Document, context: ValidationContext | None = None
) -> list[Problem]:
    """Return every problem of `document`, errors first, then by line."""
    context = context or ValidationContext()
    entry_problems = _blob_cache_entry(document)
    if entry_problems:
        return entry_problems
    schema_problems, type_errors = _schema_problems(document)
    rule_problems = _rule_problems(document, context)
    ruled = {problem.key for problem in rule_problems}
    merged = [p for p in schema_problems if p.key not in ruled or p.key in type_errors]
    merged += [p for p in rule_problems if p.key not in type_errors]
    return sorted(merged, key=_order)


def _order(problem: Problem) -> tuple[int, int, int, str]:
    return (
        0 if problem.severity == "error" else 1,
        problem.line or 0,
        problem.column or 0,
        problem.key,
    )


def syntax_problem(error: ConfigSyntaxError) -> Problem:
    """Turn a syntax error from load_document into a problem."""
    where = f"line {error.line}" if error.line else "the place shown"
    if error.line and error.column:
        where += f", column {error.column}"
    return Problem(
        "error",
        error.file,
        "",
        "",
        error.message,
        f"fix the syntax at {where}, then validate again",
        error.line,
        error.column,
    )


def _problem(
    document: Document,
    severity: Severity,
    path: KeyPath,
    message: str,
    fix: str = "",
    *,
    secret: bool = False,
) -> Problem:
    """Build a problem about `path`, with its value and where it is written."""
    entry = document.schema.by_path(path, document.version)
    value: Any = document.get(format_key(path)) if path else None
    shown = ""
    if value is not None:
        shown = display_value(entry, path[-1], value, secret=secret)
    position = _position(document, path)
    return Problem(
        severity,
        document.path,
        format_key(path),
        shown,
        message,
        fix,
        *(position or (None, None)),
    )


def _position(document: Document, path: KeyPath) -> tuple[int, int] | None:
    """Return where `path` is written, else where its nearest written parent is."""
    for depth in range(len(path), 0, -1):
        found = document.locate(path[:depth])
        if found is not None:
            return found
    return None


# -- blob cache entries ----------------------------------------------------------------


def _blob_cache_entry(document: Document) -> list[Problem]:
    """Report a nydusd blob cache entry given as a daemon config."""
    if document.kind != "nydusd":
        return []
    data = document.data()
    if data.get("type") not in ("bootstrap", "datablob"):
        return []
    if "config" not in data and "config_v2" not in data:
        return []
    message = (
        "this is a nydusd blob cache entry (for PUT /api/v2/blobs or a "
        "singleton's blobs list), not a daemon config: nydusd started with it "
        "as --config fails with 'failed to parse configuration information'"
    )
    fix = (
        "give nydusd a daemon config (device and mode in the v1 layout, or "
        "version = 2 with backend and cache); send this file to the blob API"
    )
    return [_problem(document, "error", ("type",), message, fix)]


# -- schema ----------------------------------------------------------------------------


def _schema_problems(document: Document) -> tuple[list[Problem], set[str]]:
    """Check every key against the schema.

    Returns the problems and the keys whose values have the wrong type, so
    that rules on those keys (which would misread them) are dropped.
    """
    walker = _SchemaWalk(document)
    walker.visit(document.data(), ())
    walker.required()
    return walker.problems, walker.type_errors


class _SchemaWalk:
    def __init__(self, document: Document) -> None:
        self.document = document
        self.schema: Schema = document.schema
        self.version = document.version
        self.known = self.schema.paths(self.version)
        self.parents = {
            path[:depth] for path in self.known for depth in range(1, len(path))
        }
        self.problems: list[Problem] = []
        self.type_errors: set[str] = set()
        backend_type = document.get("device.backend.type")
        self.v1_backend = backend_type if document.layout == "v1" else None

    def visit(self, table: dict[str, Any], prefix: KeyPath) -> None:
        for name, value in table.items():
            path = (*prefix, name)
            entry = self.known.get(path)
            if entry is not None:
                self.check(entry, path, value)
            elif path in self.parents and isinstance(value, dict):
                self.visit(value, path)
            elif not self.schema.is_open(prefix, self.version):
                self.unknown(path, value)

    def check(self, entry: KeyEntry, path: KeyPath, value: Any) -> None:
        key = format_key(path)
        if entry.ignored:
            message = f"{key} has no effect: {entry.ignored}"
            self.add("warning", path, message, f"remove {key}")
            return
        reason = check_value(entry, value)
        if reason:
            if type_problem(entry, value):
                self.type_errors.add(format_key(path))
            message = f"invalid value for {format_key(path)}: {reason}"
            self.add("error", path, message, _fix(entry, path, self.document))
            return
        self.check_backend(entry, path)
        if entry.type == "table" and isinstance(value, dict):
            self.visit(value, path)

    def check_backend(self, entry: KeyEntry, path: KeyPath) -> None:
        """Warn about a v1 backend key that the chosen backend type does not read."""
        chosen = self.v1_backend
        if not entry.backends or not isinstance(chosen, str):
            return
        if self.schema.backend(chosen) is None or chosen in entry.backends:
            return
        self.add(
            "warning",
            path,
            f"{format_key(path)} has no effect: the {chosen} backend does not "
            f"read it (only {', '.join(entry.backends)} do)",
            f"remove {format_key(path)}, or check device.backend.type",
        )

    def unknown(self, path: KeyPath, value: Any) -> None:
        key = format_key(path)
        what = f"table [{key}]" if isinstance(value, dict) else f"key {key}"
        message = (
            f"unknown {what}: {_reader(self.document)} ignores keys it does not "
            "know, so this setting has no effect"
        )
        suggestion = self.suggest(path)
        if suggestion:
            message += f"; did you mean {suggestion}?"
            fix = f"rename {key} to {suggestion}"
        else:
            fix = f"remove {key}, or correct its name"
        # A misspelt secret key still contains a secret.
        close = None
        if suggestion:
            close = self.schema.by_path(parse_key(suggestion), self.version)
        secret = close is not None and close.secret
        self.problems.append(
            _problem(self.document, "warning", path, message, fix, secret=secret)
        )

    def suggest(self, path: KeyPath) -> str:
        siblings = [p[-1] for p in self.known if p[:-1] == path[:-1]]
        close = difflib.get_close_matches(path[-1], siblings, n=1, cutoff=0.6)
        if close:
            return format_key((*path[:-1], close[0]))
        names = [format_key(p) for p in self.known]
        close = difflib.get_close_matches(format_key(path), names, n=1, cutoff=0.7)
        return close[0] if close else ""

    def required(self) -> None:
        for path, entry in self.known.items():
            if not entry.required or self.document.has(format_key(path)):
                continue
            if path[:-1] and not self.document.has(format_key(path[:-1])):
                continue
            message = (
                f"{format_key(path)} is missing, and {_reader(self.document)} "
                "requires it"
            )
            self.add("error", path, message, _fix(entry, path, self.document))

    def add(self, severity: Severity, path: KeyPath, message: str, fix: str) -> None:
        self.problems.append(_problem(self.document, severity, path, message, fix))


def _reader(document: Document) -> str:
    return {"nydusd": "nydusd", "snapshotter": "the snapshotter"}.get(
        document.kind, "containerd"
    )


def _fix(entry: KeyEntry, path: KeyPath, document: Document) -> str:
    """Return the next step for a bad or missing value, with a value to write."""
    key = format_key(path)
    if entry.allowed:
        if len(entry.allowed) == 1:
            return f"set {key} = {_literal(entry.allowed[0])}"
        return f"set {key} to one of {allowed_text(entry)}"
    if entry.type == "table":
        return f"make {key} a table"
    if entry.minimum is not None or entry.maximum is not None:
        low = "" if entry.minimum is None else f"at least {entry.minimum}"
        high = "" if entry.maximum is None else f"at most {entry.maximum}"
        bounds = " and ".join(part for part in (low, high) if part)
        example = ""
        if entry.has_default:
            example = f", such as {key} = {_literal(entry.default)}"
        return f"set {key} to a whole number {bounds}{example}"
    if entry.max_bytes is not None:
        return f"set {key} to a path of at most {entry.max_bytes} bytes"
    if entry.has_default and not str(entry.default).startswith("<"):
        return f"set {key} = {_literal(entry.default)} (the default)"
    return f"set {key} to {_type_words(entry)}"


def _type_words(entry: KeyEntry) -> str:
    return {
        "string": "a quoted string",
        "int": "a whole number",
        "bool": "true or false",
        "duration": 'a duration such as "30s"',
        "list": "a list",
    }.get(entry.type, "a valid value")


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


# -- config rules ----------------------------------------------------------------------


def _rule_problems(document: Document, context: ValidationContext) -> list[Problem]:
    if document.kind == "snapshotter":
        found = _snapshotter_rules(document, context)
    elif document.kind == "containerd":
        found = _containerd_rules(document, context)
    else:
        return _nydusd_rules(document, context)
    return [_from_rule(document, rule) for rule in found]


def _from_rule(document: Document, rule: RuleProblem) -> Problem:
    severity = _SEVERITY[rule.status or _check_severity(rule.check)]
    path = document.resolve(rule.key)
    return _problem(document, severity, path, rule.message, rule.fix)


_SEVERITY: dict[Status, Severity] = {Status.FAIL: "error", Status.WARN: "warning"}


def _check_severity(check_id: str) -> Status:
    for check in load_checks():
        if check.id == check_id:
            return check.severity
    raise KeyError(check_id)


def _snapshotter_rules(
    document: Document, context: ValidationContext
) -> list[RuleProblem]:
    model = _parsed(document.dumps(), parse_snapshotter_config)
    if model is None:
        return []
    types = context.path_types or {}
    found = [root_problem(model.root, types.get(model.root))]
    containerd: ContainerdConfig | None = _parsed(
        context.containerd_text, parse_containerd_config
    )
    if containerd is not None:
        found.append(root_location_problem(model.root, containerd, context.paths))
    found += _kernel_rules(model, context)
    found += _file_rules(model, context)
    found += _keychain_rules(document)
    return [problem for problem in found if problem is not None]


def _kernel_rules(
    model: SnapshotterConfig, context: ValidationContext
) -> list[RuleProblem | None]:
    if context.devices is None:
        return []
    if model.fs_driver == "fusedev":
        return [fuse_device_problem(context.devices)]
    if model.fs_driver == "fscache" and context.kernel_release:
        return [
            fscache_kernel_problem(
                context.kernel_release, context.devices, context.kernel_config
            )
        ]
    return []


def _file_rules(
    model: SnapshotterConfig, context: ValidationContext
) -> list[RuleProblem | None]:
    types = context.path_types or {}
    found: list[RuleProblem | None] = []
    nydusd_type = types.get(model.nydusd_config)
    if model.needs_nydusd_config and nydusd_type == "-":
        default_exists = types.get(NYDUSD_DEFAULT_CONFIG, "-") != "-"
        found.append(
            missing_nydusd_config_problem(
                model.nydusd_config, default_exists, context.paths
            )
        )
    directory = model.mirrors_dir
    if directory and types.get(directory):
        found.append(mirrors_dir_problem(directory, types[directory]))
    return found


def _keychain_rules(document: Document) -> list[RuleProblem | None]:
    """Settings the snapshotter's ValidateConfig rejects on their own."""
    found: list[RuleProblem | None] = []
    cri = document.get("remote.auth.enable_cri_keychain") is True
    kubeconfig = document.get("remote.auth.enable_kubeconfig_keychain") is True
    if cri and kubeconfig:
        found.append(
            RuleProblem(
                "",
                "remote.auth.enable_kubeconfig_keychain",
                '"enable_cri_keychain" and "enable_kubeconfig_keychain" can\'t '
                "be set at the same time: the snapshotter refuses to start",
                "set one of remote.auth.enable_cri_keychain and "
                "remote.auth.enable_kubeconfig_keychain to false",
                Status.FAIL,
            )
        )
    signed = document.get("image.validate_signature") is True
    if signed and not document.get("image.public_key_file"):
        found.append(
            RuleProblem(
                "",
                "image.public_key_file",
                "image.validate_signature is true but image.public_key_file is "
                "empty: the snapshotter refuses to start",
                'set image.public_key_file = "<path of the public key>", or '
                "image.validate_signature = false",
                Status.FAIL,
            )
        )
    return found


def _containerd_rules(
    document: Document, context: ValidationContext
) -> list[RuleProblem]:
    model: ContainerdConfig | None = _parsed(document.dumps(), parse_containerd_config)
    if model is None:
        return []
    snapshotter: SnapshotterConfig | None = _parsed(
        context.snapshotter_text, parse_snapshotter_config
    )
    # Without the snapshotter's config its address is unknown, so only the
    # presence and type of the proxy plugin are checked.
    address = snapshotter.address if snapshotter else model.proxy_address or ""
    found = [
        proxy_plugin_problem(model, address),
        cri_snapshotter_problem(model),
        snapshot_annotations_problem(model),
    ]
    return [problem for problem in found if problem is not None]


def _nydusd_rules(document: Document, context: ValidationContext) -> list[Problem]:
    template = _is_template(document, context)
    return [
        _problem(document, "error", parse_key(found.key), found.message, found.fix)
        for found in nydusd_requirement_problems(document.data(), template=template)
    ]


def _is_template(document: Document, context: ValidationContext) -> bool:
    if context.nydusd_template is not None:
        return context.nydusd_template
    path = _nydusd_config_path(context.snapshotter_text)
    if not path or not document.path:
        return False
    return posixpath.normpath(path) == posixpath.normpath(document.path)
