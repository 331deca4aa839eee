"""The operator's answers, their safe defaults, and the settings they lead to.

Answers come from a TOML file (so that several nodes share one set) and from
`--set KEY=VALUE` flags, which win. Every answer has a default that works on
a plain containerd node. `resolve` combines them with the node's survey into
the settings that the plan writes, each with the reason for its value.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nydus_console.configs import (
    MAX_ROOT_BYTES,
    NYDUS_ROOT_SUFFIX,
    NYDUSD_DEFAULT_CONFIG,
    SNAPSHOTTER_DEFAULT_ADDRESS,
    SNAPSHOTTER_DEFAULT_SYSTEM_ADDRESS,
)
from nydus_console.setup.survey import Survey

# A root outside containerd's, used when <containerd root>/io.containerd.
# snapshotter.v1.nydus is longer than the snapshotter allows.
SHORT_ROOT = "/var/lib/nydus-snapshotter"
LOCAL_METRICS = "127.0.0.1:9110"
SCRAPED_METRICS = ":9110"
FS_DRIVERS = ("fusedev", "fscache")
DAEMON_MODES = ("dedicated", "shared")
RECOVER_POLICIES = ("restart", "failover", "none")
SCHEMES = ("https", "http")
# Tables of answers that share a prefix: [setup.registry] host = ... is
# the answer registry_host.
ANSWER_TABLES = ("registry",)
# One DNS label: letters, digits and inner hyphens.
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class AnswerError(ValueError):
    """An answer that cannot be used; the message names it and the fix."""


@dataclass
class Answers:
    """Choices of the operator; an empty string means "derive it from the node"."""

    fs_driver: str = "fusedev"
    daemon_mode: str = "dedicated"
    root: str = ""
    registry_host: str = ""
    registry_scheme: str = "https"
    registry_skip_verify: bool = False
    cache_dir: str = ""
    prometheus: bool = False
    metrics_address: str = ""
    system_controller: bool = True
    recover_policy: str = "restart"
    cri_snapshotter: bool = True

    def with_values(self, values: dict[str, Any], source: str) -> Answers:
        """Return a copy with `values` applied; raise AnswerError for bad ones."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = [key for key in values if _name(key) not in data]
        if unknown:
            raise AnswerError(f"{source}: {unknown_text(unknown, 'answer')}")
        for key, value in values.items():
            name = _name(key)
            data[name] = _typed(name, value, type(data[name]), source)
        answers = Answers(**data)
        answers.check(source)
        return answers

    def check(self, source: str) -> None:
        _choice("fs_driver", self.fs_driver, FS_DRIVERS, source)
        _choice("daemon_mode", self.daemon_mode, DAEMON_MODES, source)
        _choice("recover_policy", self.recover_policy, RECOVER_POLICIES, source)
        _choice("registry_scheme", self.registry_scheme, SCHEMES, source)
        host_problem = registry_host_problem(self.registry_host)
        if host_problem:
            raise AnswerError(
                f"{source}: registry_host = {self.registry_host!r} {host_problem}; "
                "give a host name or address with an optional :port, such as "
                "registry.example.com:5000, without a scheme or path"
            )
        for name in ("root", "cache_dir"):
            value = getattr(self, name)
            if value and not value.startswith("/"):
                raise AnswerError(
                    f"{source}: {name} {value!r} is not an absolute path; give "
                    "one that starts with /"
                )
        if len(self.root.encode()) > MAX_ROOT_BYTES:
            raise AnswerError(
                f"{source}: root {self.root!r} is {len(self.root.encode())} bytes; "
                f"the snapshotter allows at most {MAX_ROOT_BYTES}. Choose a "
                "shorter path, or leave root out to derive it"
            )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def answer_names() -> list[str]:
    return [f.name for f in fields(Answers)]


def _name(key: str) -> str:
    return key.replace("-", "_").replace(".", "_")


def unknown_text(names: list[str], what: str) -> str:
    """Name each unknown answer or table once, with the closest known name."""
    tables = what == "table"
    known = ["setup", *ANSWER_TABLES] if tables else answer_names()
    parts = []
    for name in dict.fromkeys(names):
        last = name.rsplit(".", 1)[-1] if tables else _name(name)
        close = difflib.get_close_matches(last, known, n=1, cutoff=0.6)
        shown = f"[{name}]" if tables else repr(name)
        parent = name.rpartition(".")[0] if tables else ""
        guess = f"{parent}.{close[0]}" if close and parent else "".join(close[:1])
        parts.append(shown + (f" (did you mean {guess}?)" if guess else ""))
    plural = "s" if len(parts) > 1 else ""
    found = f"unknown {what}{plural} {', '.join(parts)}"
    if tables:
        return (
            f"{found}: the answers go in the [setup] table, and its "
            f"{', '.join(f'[setup.{t}]' for t in ANSWER_TABLES)} table"
        )
    return f"{found}; known answers: {', '.join(sorted(known))}"


def registry_host_problem(value: str) -> str:
    """Return what is wrong with a registry host[:port], or "" when it is fine."""
    if not value:
        return ""
    if "://" in value or "/" in value:
        return "is a URL or has a path: give only the host, and :port if any"
    host, port = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            return "has text after the IPv6 address"
        port = rest[1:]
        if not _is_ipv6(host):
            return "is not an IPv6 address in brackets"
    elif value.count(":") == 1:
        host, port = value.split(":")
    if port or value.endswith(":"):
        if not port.isdigit() or not 0 < int(port) < 65536:
            return f"has port {port!r}, which is not a number from 1 to 65535"
    if value.startswith("["):
        return ""
    labels = host.rstrip(".").split(".")
    if not host or not all(HOST_LABEL.fullmatch(label) for label in labels):
        return "is not a host name: only letters, digits, dots and hyphens"
    return ""


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _typed(name: str, value: Any, wanted: type, source: str) -> Any:
    if wanted is bool and isinstance(value, str):
        lowered = value.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
    if isinstance(value, wanted):
        return value
    raise AnswerError(
        f"{source}: answer {name} = {value!r} must be "
        f"{'true or false' if wanted is bool else 'a string'}"
    )


def _choice(name: str, value: str, allowed: tuple[str, ...], source: str) -> None:
    if value not in allowed:
        raise AnswerError(
            f"{source}: {name} = {value!r} is not one of {', '.join(allowed)}"
        )


def load_answers(path: Path | None, assignments: list[str]) -> Answers:
    """Read the answers file (its [setup] table or top level), then `--set` flags."""
    answers = Answers()
    if path is not None:
        answers = answers.with_values(_read_file(path), str(path))
    flags: dict[str, Any] = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise AnswerError(
                f"--set {text!r}: expected KEY=VALUE, such as fs_driver=fusedev"
            )
        flags[key.strip()] = value.strip()
    return answers.with_values(flags, "--set") if flags else answers


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AnswerError(
            f"answers file {str(path)!r} not found; create it or drop --answers"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnswerError(f"cannot read answers file {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AnswerError(
            f"answers file {str(path)!r} is not valid TOML: {exc}"
        ) from None
    table = data.get("setup", data)
    if not isinstance(table, dict):
        raise AnswerError(f"{path}: [setup] must be a table of answers")
    others = [key for key in data if key != "setup"] if "setup" in data else []
    prefix = "setup." if "setup" in data else ""
    others += [
        f"{prefix}{key}"
        for key, value in table.items()
        if isinstance(value, dict) and key not in ANSWER_TABLES
    ]
    if others:
        raise AnswerError(f"{path}: {unknown_text(others, 'table')}")
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update({f"{key}_{inner}": v for inner, v in value.items()})
        else:
            flat[key] = value
    return flat


@dataclass
class Choice:
    """One setting with its value and the reason for it."""

    key: str
    value: str
    why: str


@dataclass
class Settings:
    """Settings the plan writes on one node."""

    fs_driver: str
    daemon_mode: str
    root: str
    export_root: bool
    address: str
    system_address: str
    system_controller: bool
    nydusd_config: str
    cache_dir: str
    metrics_address: str
    recover_policy: str
    registry_host: str
    registry_scheme: str
    registry_skip_verify: bool
    cri_snapshotter: bool
    choices: list[Choice] = field(default_factory=list)

    def explain(self, key: str, value: object, why: str) -> None:
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        self.choices.append(Choice(key, shown, why))


def resolve(answers: Answers, survey: Survey) -> Settings:
    """Turn answers into settings for this node; raise AnswerError if impossible."""
    driver = _fs_driver(answers, survey)
    root, export, root_why = _root(answers, survey)
    cache_dir = answers.cache_dir or f"{root}/cache"
    metrics = answers.metrics_address or (
        SCRAPED_METRICS if answers.prometheus else LOCAL_METRICS
    )
    mode = "shared" if driver == "fscache" else answers.daemon_mode
    settings = Settings(
        fs_driver=driver,
        daemon_mode=mode,
        root=root,
        export_root=export,
        address=SNAPSHOTTER_DEFAULT_ADDRESS,
        system_address=SNAPSHOTTER_DEFAULT_SYSTEM_ADDRESS,
        system_controller=answers.system_controller,
        nydusd_config=NYDUSD_DEFAULT_CONFIG,
        cache_dir=cache_dir,
        metrics_address=metrics,
        recover_policy=answers.recover_policy,
        registry_host=answers.registry_host,
        registry_scheme=answers.registry_scheme,
        registry_skip_verify=answers.registry_skip_verify,
        cri_snapshotter=answers.cri_snapshotter,
    )
    _explain(settings, answers, survey, root_why)
    return settings


def _fs_driver(answers: Answers, survey: Survey) -> str:
    if answers.fs_driver == "fscache":
        if not survey.fscache:
            raise AnswerError(
                f"fs_driver = 'fscache' cannot work on {survey.node}: "
                f"{survey.fscache_reason}. Answer fs_driver = 'fusedev'"
            )
        return "fscache"
    if not survey.fuse:
        raise AnswerError(
            f"{survey.node} has no /dev/fuse, which the fusedev driver needs: load "
            "the fuse module (modprobe fuse) and run setup again"
        )
    return "fusedev"


def _root(answers: Answers, survey: Survey) -> tuple[str, bool, str]:
    """Return the root, whether containerd must be told it, and why."""
    containerd_root = survey.containerd.root
    derived = f"{containerd_root.rstrip('/')}/{NYDUS_ROOT_SUFFIX}"
    if answers.root and answers.root == derived:
        return derived, False, "as answered; it is containerd's root for nydus"
    if answers.root:
        return (
            answers.root,
            True,
            (
                f"as answered; it is not {derived}, so the proxy plugin exports it "
                "and CRI reports it as the image filesystem"
            ),
        )
    size = len(derived.encode())
    if size <= MAX_ROOT_BYTES:
        return (
            derived,
            False,
            (
                f"<containerd root>/{NYDUS_ROOT_SUFFIX}, where CRI and kubelet look "
                "for the image filesystem"
            ),
        )
    return (
        SHORT_ROOT,
        True,
        (
            f"{derived} is {size} bytes, over the snapshotter's limit of "
            f"{MAX_ROOT_BYTES}, so the root is {SHORT_ROOT} and containerd's "
            "[proxy_plugins.nydus.exports] root names it for CRI"
        ),
    )


def _explain(
    settings: Settings, answers: Answers, survey: Survey, root_why: str
) -> None:
    say = settings.explain
    if settings.fs_driver == "fscache":
        say("fs_driver", "fscache", f"as answered; fscache is {survey.fscache_reason}")
    else:
        extra = "" if survey.fscache else f" (fscache is {survey.fscache_reason})"
        say("fs_driver", "fusedev", "works on every kernel with /dev/fuse" + extra)
    mode_why = (
        "fscache runs one shared nydusd"
        if settings.fs_driver == "fscache"
        else "one nydusd per image: a failing image does not affect others"
        if settings.daemon_mode == "dedicated"
        else "one nydusd for every image"
    )
    say("daemon_mode", settings.daemon_mode, mode_why)
    say("root", settings.root, root_why)
    if settings.export_root and survey.containerd.version.lstrip("v")[:1] in "01":
        say(
            "exports.root",
            settings.root,
            "needs containerd 2.x, or a 1.6 or 1.7 release with the April 2024 "
            "backport of proxy plugin exports; check yours",
        )
    say(
        "cache_dir",
        settings.cache_dir,
        "as answered" if answers.cache_dir else "blob cache under the root",
    )
    metrics_why = (
        "as answered"
        if answers.metrics_address
        else "every address, so that Prometheus can scrape it"
        if answers.prometheus
        else "this node only: the port also serves pprof, so it stays local "
        "unless Prometheus scrapes it (answer prometheus = true)"
    )
    say("metrics.address", settings.metrics_address, metrics_why)
    say(
        "system.enable",
        settings.system_controller,
        "the console reads nydusd daemons from the system controller socket",
    )
    say(
        "recover_policy",
        settings.recover_policy,
        "restarts a nydusd that died; failover also allows hot upgrades",
    )
    host = settings.registry_host or "(from each image)"
    say(
        "registry.host",
        host,
        "the snapshotter fills in each image's registry and repository",
    )
    logins = survey.registry_credentials
    cred_why = (
        f"the snapshotter reads the logins for {', '.join(logins)} from "
        "/root/.docker/config.json (not shown)"
        if logins
        else "no logins in /root/.docker/config.json: public images only until "
        "one is added"
    )
    say("registry.credentials", "docker config", cred_why)
    tls = "skip verify" if settings.registry_skip_verify else "verified"
    say(
        "registry.tls",
        f"{settings.registry_scheme}, {tls}",
        "as answered"
        if answers.registry_skip_verify
        else "certificates are verified; answer registry_skip_verify = true only "
        "for a test registry",
    )
    say(
        "cri.snapshotter",
        "nydus" if settings.cri_snapshotter else "unchanged",
        "Kubernetes pulls go through nydus, with disable_snapshot_annotations = "
        "false so nydus sees the layer annotations"
        if settings.cri_snapshotter
        else "as answered",
    )
