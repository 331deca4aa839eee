"""The setup plan: every file to write and every command to run, in order.

A step is in the plan only when the node needs it: a binary whose checksum
differs, a file whose content differs, a directory that is missing, a unit
that is not running with the new settings. A node that is already set up
gets an empty plan. Restarts that an interrupted run still owed (its state
file says so) stay in the plan although the files now match.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources

from nydus_console.actions import Action
from nydus_console.configedit.document import ConfigSyntaxError, load_document
from nydus_console.configedit.validate import Problem, ValidationContext, validate
from nydus_console.configs import mask_secrets
from nydus_console.inventory import NodeSpec
from nydus_console.setup.answers import AnswerError, Settings
from nydus_console.setup.files import (
    DesiredFile,
    containerd_document,
    nydusd_document,
    snapshotter_document,
    unit_text,
)
from nydus_console.setup.release import Binary
from nydus_console.setup.state import SetupState
from nydus_console.setup.survey import (
    BIN_DIR,
    REQUIRED_BINARIES,
    Survey,
    unit_path,
)
from nydus_console.transport.base import Transport

STAGING_DIR = "/var/tmp/nydus-console-upload"
CONFIG_DIR = "/etc/nydus"
SNAPSHOTTER_INPUTS = ("containerd-nydus-grpc", "nydusd")
INSTALL_SCRIPT = "\n".join(
    line
    for line in resources.files("nydus_console.assets")
    .joinpath("install_binary.sh")
    .read_text()
    .splitlines()
    if not line.lstrip().startswith("#")
)

# The answer that decides each key setup writes, named when a file is refused.
KEY_ANSWERS = {
    "root": "root",
    "proxy_plugins.nydus.exports.root": "root",
    "metrics.address": "metrics_address",
    "cache_manager.cache_dir": "cache_dir",
    "device.cache.config.work_dir": "cache_dir",
    "daemon.fs_driver": "fs_driver",
    "daemon_mode": "daemon_mode",
    "daemon.recover_policy": "recover_policy",
    "device.backend.config.host": "registry_host",
    "device.backend.config.scheme": "registry_scheme",
    "device.backend.config.skip_verify": "registry_skip_verify",
}


class PlanError(ValueError):
    """The node cannot be set up as requested; the message names what is missing."""


class MissingBinaries(PlanError):
    """Binaries the node lacks and no release tarball brought."""

    def __init__(self, node: str, names: list[str]) -> None:
        self.node = node
        self.names = names
        verb = "is" if len(names) == 1 else "are"
        super().__init__(
            f"{', '.join(names)} {verb} not installed in {BIN_DIR} on {node}; give "
            "the release tarball that contains it with --tarball PATH (a .sha256 "
            "file must be beside it)"
        )


@dataclass
class PlanStep:
    """One change: an upload and install, a file write, or a command."""

    id: str
    title: str
    why: str
    kind: str
    action: Action | None = None
    file: DesiredFile | None = None
    binary: Binary | None = None
    unit: str = ""
    socket: str = ""
    # A directory that must exist afterwards (the mkdir steps).
    directory: str = ""
    # Done by an earlier, interrupted run and owed again (restarts).
    resumed: bool = False

    def commands(self) -> list[str]:
        """Return the commands this step runs, as the terminal shows them."""
        if self.binary is not None:
            staged = f"{STAGING_DIR}/{self.binary.name}"
            return [
                f"upload {self.binary.path.name} from {self.binary.tarball} "
                f"to {staged} (sha256 {self.binary.sha256})",
                f"sh -c <install_binary.sh> {staged} {BIN_DIR}/{self.binary.name}",
            ]
        if self.file is not None:
            return [f"write {self.file.path} atomically, keeping a backup"]
        if self.unit:
            lines = [
                f"systemctl reset-failed {self.unit}; systemctl restart {self.unit}"
            ]
            if self.action is not None:
                lines.insert(0, self.action.command_line)
            return lines
        return [self.action.command_line] if self.action is not None else []

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "id": self.id,
            "title": self.title,
            "why": self.why,
            "kind": self.kind,
            "commands": self.commands(),
        }
        if self.file is not None:
            data["path"] = self.file.path
            data["diff"] = file_diff(self.file)
        if self.resumed:
            data["resumed"] = True
        return data


@dataclass
class SetupPlan:
    node: str
    survey: Survey
    settings: Settings
    files: list[DesiredFile]
    steps: list[PlanStep] = field(default_factory=list)
    # Steps an interrupted run finished; this run checks them again.
    done_before: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.steps

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "survey": self.survey.to_dict(),
            "settings": [
                {"key": c.key, "value": c.value, "why": c.why}
                for c in self.settings.choices
            ],
            "steps": [step.to_dict() for step in self.steps],
            "done_before": list(self.done_before),
        }


def file_diff(desired: DesiredFile) -> str:
    """Return a unified diff from the node's file to the new one, credentials masked."""
    before = mask_secrets(desired.old_text or "")
    after = mask_secrets(desired.new_text)
    old_name = desired.path if desired.old_text is not None else "/dev/null"
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"{old_name} (on the node)",
        tofile=f"{desired.path} (after setup)",
    )
    return "".join(lines)


def desired_files(spec: NodeSpec, survey: Survey, s: Settings) -> list[DesiredFile]:
    snap_unit = spec.paths.snapshotter_unit
    ctd = survey.containerd
    snapshotter_path = spec.paths.snapshotter_config
    snapshotter = snapshotter_document(
        survey.text(snapshotter_path), snapshotter_path, s
    )
    nydusd = nydusd_document(survey.text(s.nydusd_config), s.nydusd_config, s)
    containerd = containerd_document(
        ctd.config_text, ctd.config_path, s, ctd.config_version
    )
    # A k3s or rke2 template that does not exist yet starts from the
    # generated file, so it is written as a new file.
    ctd_old = ctd.config_text
    if ctd.base_path and ctd.base_path != ctd.config_path:
        ctd_old = None
    return [
        DesiredFile(
            "nydusd",
            s.nydusd_config,
            survey.text(s.nydusd_config),
            nydusd.dumps(),
            (snap_unit,),
        ),
        DesiredFile(
            "snapshotter",
            snapshotter_path,
            survey.text(snapshotter_path),
            snapshotter.dumps(),
            (snap_unit,),
        ),
        DesiredFile(
            "unit",
            unit_path(spec),
            survey.text(unit_path(spec)),
            unit_text(snapshotter_path),
            (snap_unit,),
        ),
        DesiredFile(
            "containerd", ctd.config_path, ctd_old, containerd.dumps(), (ctd.unit,)
        ),
    ]


def validate_files(spec: NodeSpec, files: list[DesiredFile]) -> None:
    """Refuse files that `config validate` would reject; raise AnswerError.

    The files are checked together, as on the node after setup, with the
    validator and config rules of `config validate`, so that setup never
    writes a config that stops the snapshotter or containerd.
    """
    texts = {desired.kind: desired.new_text for desired in files}
    context = ValidationContext(
        snapshotter_text=texts.get("snapshotter"),
        containerd_text=texts.get("containerd"),
        nydusd_text=texts.get("nydusd"),
        paths=spec.paths,
    )
    for desired in files:
        if desired.kind == "unit":
            continue
        try:
            document = load_document(desired.kind, desired.new_text, desired.path)
        except (ConfigSyntaxError, ValueError) as exc:
            raise AnswerError(
                f"{desired.path} would not parse after setup: {exc}; nothing "
                "was changed"
            ) from None
        errors = [p for p in validate(document, context) if p.severity == "error"]
        if errors:
            raise AnswerError(_refusal(errors[0]))


def _refusal(problem: Problem) -> str:
    answer = KEY_ANSWERS.get(problem.key)
    written = f"{problem.key} = {problem.value}" if problem.value else problem.key
    if answer:
        return (
            f"answer {answer} gives {written} in {problem.file}, which config "
            f"validate rejects: {problem.message}. Give another {answer}; nothing "
            "was changed"
        )
    fix = f" The fix: {problem.fix}." if problem.fix else ""
    return (
        f"{problem.file} would be rejected by config validate after setup: "
        f"{written}: {problem.message}.{fix} Fix the file on the node, then run "
        "setup again; nothing was changed"
    )


def plan_directories(settings: Settings) -> list[str]:
    """Return the directories that setup creates when they are missing."""
    return [CONFIG_DIR, settings.root]


async def existing_directories(transport: Transport, paths: list[str]) -> set[str]:
    script = 'for p in "$@"; do [ -d "$p" ] && printf "%s\\n" "$p"; done; true'
    result = await transport.run(["sh", "-c", script, "dirs", *paths])
    return set(result.stdout.splitlines())


def check_node(survey: Survey) -> None:
    """Raise PlanError when the node lacks what setup builds on."""
    if not survey.systemd:
        raise PlanError(
            f"{survey.node} does not run systemd, and setup installs the "
            "snapshotter as a systemd unit; set it up by hand on such a node"
        )
    if survey.unit_enabled == "masked":
        raise PlanError(
            f"{survey.snapshotter_unit} is masked on {survey.node}: unmask it "
            f"(systemctl unmask {survey.snapshotter_unit}) so that setup can "
            "install and start it"
        )
    facts = survey.facts
    unit = facts.units.get(survey.containerd.unit) if facts is not None else None
    if not survey.containerd.version and (unit is None or not unit.loaded):
        raise PlanError(
            f"containerd was not found on {survey.node} (no containerd binary and "
            f"no {survey.containerd.unit}): install containerd first"
        )


def plan_binaries(survey: Survey, binaries: dict[str, Binary]) -> list[PlanStep]:
    missing = [
        name
        for name in REQUIRED_BINARIES
        if not survey.installed(name) and name not in binaries
    ]
    if missing:
        raise MissingBinaries(survey.node, missing)
    steps = []
    for name, binary in sorted(binaries.items()):
        if survey.binaries.get(name) == binary.sha256:
            continue
        verb = "replace" if survey.installed(name) else "install"
        steps.append(
            PlanStep(
                f"install:{name}",
                f"{verb} {BIN_DIR}/{name}",
                f"from {binary.tarball}, checksum verified",
                "upload",
                binary=binary,
            )
        )
    return steps


def build_plan(
    spec: NodeSpec,
    survey: Survey,
    settings: Settings,
    binaries: dict[str, Binary],
    state: SetupState | None,
    directories: set[str],
) -> SetupPlan:
    """Compare the node with the settings and list what must change.

    `directories` are those of `plan_directories` that exist on the node.
    """
    files = desired_files(spec, survey, settings)
    plan = SetupPlan(spec.name, survey, settings, files)
    pending = set(state.pending) if state else set()
    plan.done_before = list(state.done) if state else []
    check_node(survey)
    validate_files(spec, files)
    steps = plan_binaries(survey, binaries)
    for directory, mode in ((CONFIG_DIR, "0755"), (settings.root, "0700")):
        if directory not in directories:
            steps.append(
                PlanStep(
                    f"mkdir:{directory}",
                    f"create {directory}",
                    "the snapshotter's root must exist"
                    if directory == settings.root
                    else "the snapshotter's and nydusd's configs live here",
                    "command",
                    action=Action(
                        f"create {directory}",
                        ("mkdir", "-p", "-m", mode, "--", directory),
                    ),
                    directory=directory,
                )
            )
    by_kind = {f.kind: f for f in files}
    for kind in ("nydusd", "snapshotter", "unit"):
        steps += _write_step(by_kind[kind])
    if by_kind["unit"].changed or "daemon-reload" in pending:
        steps.append(
            PlanStep(
                "daemon-reload",
                "reload systemd's units",
                "systemd reads the new unit file",
                "command",
                action=Action("reload systemd units", ("systemctl", "daemon-reload")),
            )
        )
    steps += _snapshotter_restart(spec, survey, settings, steps, pending)
    steps += _write_step(by_kind["containerd"])
    steps += _containerd_restart(survey, steps, pending)
    for step in steps:
        step.resumed = step.id in pending and step.id in plan.done_before
    plan.steps = steps
    return plan


def _write_step(desired: DesiredFile) -> list[PlanStep]:
    if not desired.changed:
        return []
    verb = "update" if desired.old_text is not None else "create"
    whys = {
        "nydusd": "nydusd's registry backend and blob cache",
        "snapshotter": "the snapshotter's root, driver, sockets and metrics",
        "unit": "runs the snapshotter under systemd; KillMode=process keeps "
        "nydusd daemons alive across snapshotter restarts",
        "containerd": "containerd's proxy plugin for nydus and the CRI snapshotter",
    }
    return [
        PlanStep(
            f"write:{desired.path}",
            f"{verb} {desired.path}",
            whys[desired.kind],
            "write",
            file=desired,
        )
    ]


def _snapshotter_restart(
    spec: NodeSpec,
    survey: Survey,
    settings: Settings,
    steps: list[PlanStep],
    pending: set[str],
) -> list[PlanStep]:
    unit = spec.paths.snapshotter_unit
    step_id = f"restart:{unit}"
    inputs = {f"install:{name}" for name in SNAPSHOTTER_INPUTS} | {
        s.id for s in steps if s.file is not None and unit in s.file.restarts
    }
    reasons = []
    if any(s.id in inputs for s in steps):
        reasons.append("its binaries or configs change")
    if survey.unit_active != "active":
        reasons.append(f"it is {survey.unit_active or 'not installed'}")
    if survey.unit_enabled != "enabled":
        reasons.append("it does not start at boot yet")
    if step_id in pending:
        reasons.append("an interrupted run had not restarted it yet")
    if not reasons:
        return []
    enable = Action(f"enable {unit}", ("systemctl", "enable", unit))
    return [
        PlanStep(
            step_id,
            f"enable and restart {unit}",
            "; ".join(reasons),
            "restart",
            action=enable,
            unit=unit,
            socket=settings.address,
        )
    ]


def _containerd_restart(
    survey: Survey, steps: list[PlanStep], pending: set[str]
) -> list[PlanStep]:
    ctd = survey.containerd
    step_id = f"restart:{ctd.unit}"
    reasons = []
    if any(s.file is not None and s.file.kind == "containerd" for s in steps):
        reasons.append("its config changes")
    facts = survey.facts
    listed = facts is not None and any(
        row.id == "nydus" and row.type == "io.containerd.snapshotter.v1"
        for row in facts.plugins
    )
    if not listed:
        reasons.append("`ctr plugin ls` does not list nydus yet")
    if step_id in pending:
        reasons.append("an interrupted run had not restarted it yet")
    if not reasons:
        return []
    return [
        PlanStep(
            step_id,
            f"restart {ctd.unit}",
            "; ".join(reasons),
            "restart",
            unit=ctd.unit,
            socket=ctd.socket,
        )
    ]
