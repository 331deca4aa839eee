"""One rule per check id: pure functions from a CheckContext to an Outcome."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from nydus_console.checks.context import CheckContext
from nydus_console.checks.evidence import command_lines, file_lines, unit_lines
from nydus_console.checks.outcome import (
    Outcome,
    not_applicable,
    ok,
    problem,
    unknown,
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
    same_path,
    snapshot_annotations_problem,
)
from nydus_console.configs import (
    DAEMON_MODES,
    FAILOVER_POLICIES,
    FS_DRIVERS,
    MAX_THREADS,
    NYDUSD_DEFAULT_CONFIG,
    RECOVER_POLICIES,
    SnapshotterConfig,
    expected_root,
    mask_secrets,
)
from nydus_console.findings import Evidence, Status
from nydus_console.transport.base import SocketState

Rule = Callable[[CheckContext], Outcome]
RULES: dict[str, Rule] = {}


def rule(check_id: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        RULES[check_id] = function
        return function

    return register


def _config(ctx: CheckContext) -> SnapshotterConfig:
    config = ctx.snapshotter.model
    assert config is not None, "rule ran although config.parses did not pass"
    return config


def _config_evidence(ctx: CheckContext, *keys: str) -> Evidence:
    return file_lines(ctx.snapshotter.file, *keys)


def _broken(found: RuleProblem, *evidence: Evidence) -> Outcome:
    """Turn a shared config rule's problem into this check's outcome."""
    return problem(found.message, *evidence, next_step=found.fix, status=found.status)


# -- installation and service ------------------------------------------------------


@rule("snapshotter.installed")
def snapshotter_installed(ctx: CheckContext) -> Outcome:
    path, version = ctx.facts.versions.get("snapshotter", ("", ""))
    if ctx.snapshotter_installed:
        if path:
            return ok(
                f"containerd-nydus-grpc {version} at {path}",
                Evidence("command -v containerd-nydus-grpc", [path]),
            )
        return ok(
            "containerd-nydus-grpc is not in PATH, but the node has "
            + ", ".join(installed_signs(ctx)),
            Evidence("command -v containerd-nydus-grpc", ["(not found)"]),
        )
    return problem(
        "nydus-snapshotter is not installed: no containerd-nydus-grpc in PATH, "
        f"no {ctx.paths.snapshotter_unit} unit and no "
        f"{ctx.paths.snapshotter_config}",
        Evidence("command -v containerd-nydus-grpc", ["(not found)"]),
    )


def installed_signs(ctx: CheckContext) -> list[str]:
    signs = []
    unit = ctx.snapshotter_unit
    if unit is not None and unit.loaded:
        signs.append(f"the {ctx.paths.snapshotter_unit} unit")
    if ctx.facts.processes_named("containerd-nydu"):
        signs.append("a running containerd-nydus-grpc process")
    if ctx.snapshotter.file.status == "ok":
        signs.append(ctx.paths.snapshotter_config)
    return signs


@rule("systemd.running")
def systemd_running(ctx: CheckContext) -> Outcome:
    evidence = command_lines("systemctl show", ctx.facts.systemd_output, 3)
    if ctx.facts.systemd_running:
        return ok(
            "systemd is the init system",
        )
    return problem(
        "System has not been booted with systemd: unit states are not available",
        evidence,
    )


def _service_without_systemd(ctx: CheckContext) -> Outcome:
    found = ctx.facts.processes_named("containerd-nydu")
    evidence = Evidence("/proc", [f"{p.pid} {p.command}" for p in found] or ["-"])
    if found:
        return ok(f"containerd-nydus-grpc runs as PID {found[0].pid}", evidence)
    return problem(
        "no containerd-nydus-grpc process runs",
        evidence,
        next_step="start containerd-nydus-grpc --config "
        f"{shlex.quote(ctx.paths.snapshotter_config)} the way this host runs "
        "daemons (it has no systemd)",
    )


@rule("service.state")
def service_state(ctx: CheckContext) -> Outcome:
    if not ctx.facts.systemd_running:
        return _service_without_systemd(ctx)
    name = ctx.paths.snapshotter_unit
    unit = ctx.snapshotter_unit
    evidence = unit_lines(unit, name)
    if unit is None or not unit.loaded:
        return problem(
            f"unit {name} is not installed",
            evidence,
            next_step=f"install the {name} unit with nydus-console setup (user "
            "guide, Setup), or set snapshotter_unit in the inventory",
        )
    active, sub = unit.get("ActiveState"), unit.get("SubState")
    if active == "active":
        return ok(f"{active} ({sub}), main PID {unit.main_pid}", evidence)
    journal = _journal_evidence(ctx)
    cause = _last_error(ctx.facts.snapshotter_journal)
    because = f"; last error: {cause}" if cause else ""
    if active == "activating" or sub == "auto-restart":
        return problem(
            f"restart loop: {name} keeps exiting (result {unit.get('Result')}, "
            f"{unit.restarts} restarts){because}",
            evidence,
            *journal,
        )
    if active == "failed":
        return problem(
            f"{name} failed (result {unit.get('Result')}, exit status "
            f"{unit.get('ExecMainStatus') or '?'}){because}",
            evidence,
            *journal,
        )
    return problem(
        f"{name} is {active} ({sub})",
        evidence,
        next_step=f"systemctl enable --now {name}",
    )


_ERROR_LINE = re.compile(r"level=(?:fatal|error)|^Error: |\bERROR\b")
_LOGRUS_FIELD = re.compile(r'(msg|error)="((?:[^"\\]|\\.)*)"')


def _last_error(journal: str) -> str:
    """Return the text of the newest error line of the snapshotter's journal."""
    for line in reversed(journal.splitlines()):
        text = line.split(": ", 1)[1] if ": " in line else line
        if not _ERROR_LINE.search(text):
            continue
        fields = dict(_LOGRUS_FIELD.findall(text))
        if fields:
            joined = ": ".join(v for v in (fields.get("msg"), fields.get("error")) if v)
            return mask_secrets(joined.replace('\\"', '"'))
        return mask_secrets(text.strip())
    return ""


def _journal_evidence(ctx: CheckContext) -> list[Evidence]:
    journal = ctx.facts.snapshotter_journal
    if not journal.strip():
        return []
    source = f"journalctl -u {ctx.paths.snapshotter_unit} -n 12"
    return [command_lines(source, journal, 12)]


@rule("service.restarts")
def service_restarts(ctx: CheckContext) -> Outcome:
    unit = ctx.snapshotter_unit
    if unit is None or not unit.loaded:
        return not_applicable("no unit")
    evidence = unit_lines(unit, ctx.paths.snapshotter_unit)
    if unit.restarts == 0:
        return ok("no automatic restarts", evidence)
    return problem(
        f"systemd restarted the snapshotter {unit.restarts} times "
        f"(last start {unit.get('ExecMainStartTimestamp') or 'unknown'})",
        evidence,
    )


@rule("process.single_snapshotter")
def single_snapshotter(ctx: CheckContext) -> Outcome:
    running = [
        p for p in ctx.facts.processes_named("containerd-nydu") if p.state != "Z"
    ]
    unit = ctx.snapshotter_unit
    main_pid = unit.main_pid if unit is not None else 0
    lines = [
        f"{p.pid} {p.command}"
        + ("  <- systemd's main PID" if p.pid == main_pid else "")
        for p in running
    ]
    evidence = Evidence("/proc/*/comm, /proc/*/cmdline", lines or ["-"])
    if len(running) <= 1:
        return ok(f"{len(running)} containerd-nydus-grpc process", evidence)
    strays = [str(p.pid) for p in running if p.pid != main_pid]
    message = (
        f"{len(running)} containerd-nydus-grpc processes run; a second one keeps "
        "the database locked and daemons fail with 'api.sock: not found'"
    )
    if not ctx.facts.systemd_running or not main_pid:
        return problem(
            message,
            evidence,
            next_step="keep the one your service manager started, kill the "
            "others, then start the snapshotter again",
        )
    return problem(
        message,
        evidence,
        next_step=f"kill {' '.join(strays)} (not systemd's main PID {main_pid}), "
        f"then systemctl restart {ctx.paths.snapshotter_unit}",
    )


@rule("process.zombie_nydusd")
def zombie_nydusd(ctx: CheckContext) -> Outcome:
    daemons = ctx.facts.processes_named("nydusd")
    zombies = [p for p in daemons if p.state == "Z"]
    lines = [f"{p.pid} state {p.state} parent {p.ppid}" for p in zombies]
    if not zombies:
        return ok(f"{len(daemons)} nydusd processes, none defunct")
    return problem(
        f"{len(zombies)} nydusd process(es) are zombies (exited, not reaped)",
        Evidence("/proc/*/stat", lines),
    )


@rule("cgroup.leftover")
def leftover_cgroup(ctx: CheckContext) -> Outcome:
    populated = {p: n for p, n in ctx.facts.nydusd_cgroups.items() if n > 0}
    lines = [f"{path}: {count} processes" for path, count in populated.items()]
    if not populated:
        return ok("no populated system.slice/nydusd cgroup")
    if ctx.service_active:
        return ok(
            "nydusd cgroup in use by the running service",
            Evidence("cgroup.procs", lines),
        )
    return problem(
        "the system.slice/nydusd cgroup still holds processes while the service "
        "is stopped; the next start fails with 'failed to destroy cgroup'",
        Evidence("cgroup.procs", lines),
    )


# -- snapshotter config ---------------------------------------------------------------


@rule("config.present")
def config_present(ctx: CheckContext) -> Outcome:
    read = ctx.snapshotter.file
    if read.status == "ok":
        return ok(f"{read.path} ({len(read.text.encode())} bytes)")
    if read.status == "unreadable":
        return unknown(
            f"{read.path} exists but cannot be read; log in as root or set sudo "
            "= true for this node",
            Evidence(read.path, ["(permission denied)"]),
        )
    return problem(f"{read.path} does not exist", Evidence(read.path, ["(missing)"]))


@rule("config.parses")
def config_parses(ctx: CheckContext) -> Outcome:
    parsed = ctx.snapshotter
    if parsed.model is not None:
        return ok("valid TOML")
    return problem(
        f"config.toml does not parse: {parsed.error}",
        file_lines(parsed.file, line=parsed.error_line),
        next_step=(
            f"fix line {parsed.error_line} of {parsed.file.path}, then restart the "
            "snapshotter"
            if parsed.error_line
            else ""
        ),
    )


@rule("config.version")
def config_version(ctx: CheckContext) -> Outcome:
    version = _config(ctx).version
    evidence = _config_evidence(ctx, "version")
    if version == 1 and not isinstance(version, bool):
        return ok("version = 1", evidence)
    shown = 0 if version is None else version
    return problem(
        f"unsupported configuration version {shown}: the snapshotter refuses to start",
        evidence,
    )


@rule("config.root")
def config_root(ctx: CheckContext) -> Outcome:
    root = _config(ctx).root
    evidence = _config_evidence(ctx, "root")
    found = root_problem(root, ctx.facts.path_types.get(root))
    if found is not None:
        return _broken(found, evidence)
    return ok(f"{root} ({len(root.encode())} bytes)", evidence)


@rule("config.root_location")
def root_location(ctx: CheckContext) -> Outcome:
    config = _config(ctx)
    containerd = ctx.containerd.model
    assert containerd is not None
    evidence = [
        _config_evidence(ctx, "root"),
        file_lines(ctx.containerd.file, "root", "exports"),
    ]
    found = root_location_problem(config.root, containerd, ctx.paths)
    if found is not None:
        return _broken(found, *evidence)
    if same_path(config.root, expected_root(containerd.root)):
        return ok(f"{config.root} is under containerd's root", *evidence)
    return ok("containerd's proxy plugin exports this root", *evidence)


@rule("config.fs_driver")
def fs_driver(ctx: CheckContext) -> Outcome:
    driver = _config(ctx).fs_driver
    evidence = _config_evidence(ctx, "fs_driver")
    if driver in FS_DRIVERS:
        return ok(f"fs_driver = {driver}", evidence)
    hint = (
        " ('none' is not valid; 'nodev' means no filesystem)"
        if driver == "none"
        else ""
    )
    return problem(f"invalid filesystem driver {driver!r}{hint}", evidence)


@rule("config.fscache_kernel")
def fscache_kernel(ctx: CheckContext) -> Outcome:
    facts = ctx.facts
    if _config(ctx).fs_driver != "fscache":
        return not_applicable("fs_driver is not fscache")
    release = facts.kernel_release
    lines = [
        f"uname -r: {release}",
        f"/dev/cachefiles: {'cachefiles' in facts.devices}",
    ]
    kconfig = facts.kernel_config or {}
    lines += [f"{key}={value}" for key, value in sorted(kconfig.items())]
    evidence = Evidence("kernel", lines)
    found = fscache_kernel_problem(release, facts.devices, facts.kernel_config)
    if found is not None:
        return _broken(found, evidence)
    return ok(f"kernel {release} with on-demand cachefiles", evidence)


@rule("config.fuse_device")
def fuse_device(ctx: CheckContext) -> Outcome:
    if _config(ctx).fs_driver != "fusedev":
        return not_applicable("fs_driver is not fusedev")
    found = fuse_device_problem(ctx.facts.devices)
    if found is None:
        return ok("/dev/fuse is a character device")
    return _broken(found, Evidence("/dev/fuse", ["(missing)"]))


@rule("config.nydusd_config")
def nydusd_config(ctx: CheckContext) -> Outcome:
    config = _config(ctx)
    if not config.needs_nydusd_config:
        return not_applicable(f"fs_driver {config.fs_driver} needs no nydusd config")
    parsed = ctx.nydusd
    path = config.nydusd_config
    evidence = [_config_evidence(ctx, "nydusd_config")]
    if parsed.file.status == "missing":
        default_exists = ctx.facts.file(NYDUSD_DEFAULT_CONFIG).status == "ok"
        found = missing_nydusd_config_problem(path, default_exists, ctx.paths)
        return _broken(found, *evidence)
    if parsed.file.status != "ok":
        return unknown(f"{path}: {parsed.file.status}", *evidence)
    if parsed.model is None:
        return problem(
            f"{path} does not parse: {parsed.error}",
            *evidence,
            next_step=f"fix the syntax of {path} where the error points, then "
            f"restart {ctx.paths.snapshotter_unit}",
        )
    if parsed.model.problems:
        return problem(
            f"{path} is invalid: " + "; ".join(parsed.model.problems),
            *evidence,
            Evidence(path, parsed.model.problems),
        )
    return ok(
        f"{path}: {parsed.model.format}, {parsed.model.backend_type} backend", *evidence
    )


@rule("config.mirrors_dir")
def mirrors_dir(ctx: CheckContext) -> Outcome:
    directory = _config(ctx).mirrors_dir
    if not directory:
        return not_applicable("no mirrors directory configured")
    evidence = _config_evidence(ctx, "dir")
    kind = ctx.facts.path_types.get(directory, "")
    if kind == "dir":
        return ok(f"{directory} exists", evidence)
    if not kind:
        return unknown(f"{directory} was not probed", evidence)
    found = mirrors_dir_problem(directory, kind)
    assert found is not None
    return _broken(found, evidence)


def _choice(
    ctx: CheckContext, key: str, value: object, allowed: tuple[str, ...], error: str
) -> Outcome:
    evidence = _config_evidence(ctx, key)
    if value in allowed:
        return ok(f"{key} = {value}", evidence)
    return problem(f"{error} {value!r} (allowed: {', '.join(allowed)})", evidence)


@rule("config.daemon_mode")
def daemon_mode(ctx: CheckContext) -> Outcome:
    config = _config(ctx)
    outcome = _choice(
        ctx, "daemon_mode", config.daemon_mode, DAEMON_MODES, "invalid daemon mode"
    )
    if outcome.passed and config.fs_driver == "fscache":
        outcome.message += " (fscache forces shared)"
    elif outcome.passed and config.daemon_mode == "multiple":
        outcome.message += " (deprecated alias of dedicated)"
    return outcome


@rule("config.recover_policy")
def recover_policy(ctx: CheckContext) -> Outcome:
    return _choice(
        ctx,
        "recover_policy",
        _config(ctx).recover_policy,
        RECOVER_POLICIES,
        "invalid recover policy",
    )


@rule("config.failover_policy")
def failover_policy(ctx: CheckContext) -> Outcome:
    return _choice(
        ctx,
        "failover_policy",
        _config(ctx).failover_policy,
        FAILOVER_POLICIES,
        "invalid failover policy",
    )


@rule("config.threads_number")
def threads_number(ctx: CheckContext) -> Outcome:
    value = _config(ctx).threads_number
    evidence = _config_evidence(ctx, "threads_number")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return problem(f"threads_number {value!r} is not a whole number", evidence)
    if value > MAX_THREADS:
        return problem(
            f"nydusd worker thread number {value} is too big, max {MAX_THREADS}",
            evidence,
        )
    return ok(f"threads_number = {value}", evidence)


# -- containerd -----------------------------------------------------------------------


@rule("containerd.config")
def containerd_config(ctx: CheckContext) -> Outcome:
    parsed = ctx.containerd
    if parsed.model is not None:
        return ok(
            f"{parsed.file.path}: version {parsed.model.version}, "
            f"root {parsed.model.root}"
        )
    if parsed.file.status == "missing":
        return problem(
            f"{parsed.file.path} does not exist",
            Evidence(parsed.file.path, ["(missing)"]),
        )
    if parsed.file.status != "ok":
        return unknown(f"{parsed.file.path}: {parsed.file.status}")
    return problem(
        f"{parsed.file.path} does not parse: {parsed.error}",
        file_lines(parsed.file, line=parsed.error_line),
        status=Status.FAIL,
        next_step="fix the TOML syntax, check with `containerd config dump`, then "
        "restart containerd",
    )


def _snapshotter_address(ctx: CheckContext) -> str:
    config = ctx.snapshotter.model
    return (
        config.address if config else "/run/containerd-nydus/containerd-nydus-grpc.sock"
    )


@rule("containerd.proxy_plugin")
def proxy_plugin(ctx: CheckContext) -> Outcome:
    containerd = ctx.containerd.model
    assert containerd is not None
    evidence = file_lines(ctx.containerd.file, "proxy_plugins", "type", "address")
    address = _snapshotter_address(ctx)
    found = proxy_plugin_problem(containerd, address)
    if found is not None:
        return _broken(found, evidence)
    return ok(f"type snapshot, address {address}", evidence)


@rule("containerd.cri_snapshotter")
def cri_snapshotter(ctx: CheckContext) -> Outcome:
    containerd = ctx.containerd.model
    assert containerd is not None
    evidence = file_lines(ctx.containerd.file, "snapshotter")
    found = cri_snapshotter_problem(containerd)
    if found is not None:
        return _broken(found, evidence)
    return ok(f"{containerd.cri.table} snapshotter = nydus", evidence)


@rule("containerd.snapshot_annotations")
def snapshot_annotations(ctx: CheckContext) -> Outcome:
    containerd = ctx.containerd.model
    assert containerd is not None
    evidence = file_lines(ctx.containerd.file, "disable_snapshot_annotations")
    found = snapshot_annotations_problem(containerd)
    if found is not None:
        return _broken(found, evidence)
    return ok("disable_snapshot_annotations = false", evidence)


@rule("containerd.plugin")
def containerd_plugin(ctx: CheckContext) -> Outcome:
    facts = ctx.facts
    command = f"ctr --address {ctx.paths.containerd_socket} plugin ls"
    if facts.plugins_output is None:
        return unknown("ctr plugin ls has not run yet")
    evidence = command_lines(command, facts.plugins_output, 3)
    if facts.plugins_rc != 0:
        return problem(
            "containerd does not answer, so no snapshotter can be used",
            evidence,
            next_step="start containerd: systemctl restart containerd",
        )
    rows = [r for r in facts.plugins if r.id == "nydus" and "snapshotter" in r.type]
    if not rows:
        return problem("containerd loaded no nydus snapshotter plugin", evidence)
    row = rows[0]
    line = Evidence(command, [f"{row.type} {row.id} {row.platforms} {row.status}"])
    if row.status != "ok":
        return problem(f"containerd reports the nydus plugin as {row.status}", line)
    return ok(
        "listed as ok (containerd reports ok even when nothing listens; the "
        "gRPC socket check connects for real)",
        line,
    )


# -- sockets ---------------------------------------------------------------------


def _socket_outcome(ctx: CheckContext, path: str, what: str) -> Outcome:
    state = ctx.facts.sockets.get(path)
    evidence = Evidence(f"connect {path}", [str(state) if state else "(not probed)"])
    if state is SocketState.LISTENING:
        return ok(f"{what} {path} accepts connections", evidence)
    if state is SocketState.REFUSED:
        return problem(
            f"{what} {path} exists but refuses connections (stale "
            "socket: its server is gone)",
            evidence,
        )
    if state is SocketState.MISSING:
        return problem(f"{what} {path} does not exist", evidence)
    if state is SocketState.DENIED:
        return unknown(
            f"{what} {path} exists but this login may not connect to it "
            "(permission denied); log in as root to test it",
            evidence,
        )
    return unknown(f"{what} {path}: {state or 'not probed'}", evidence)


@rule("socket.grpc")
def grpc_socket(ctx: CheckContext) -> Outcome:
    return _socket_outcome(ctx, _config(ctx).address, "gRPC socket")


@rule("socket.system")
def system_socket(ctx: CheckContext) -> Outcome:
    config = _config(ctx)
    if not config.system_enable:
        return not_applicable("[system] enable is false")
    return _socket_outcome(ctx, config.system_address, "system controller socket")


@rule("nydusd.daemons")
def nydusd_daemons(ctx: CheckContext) -> Outcome:
    sockets = ctx.facts.api_sockets
    states = {path: ctx.facts.sockets.get(path) for path in sockets}
    lines = [f"{path}: {state}" for path, state in states.items()]
    evidence = Evidence(f"{_config(ctx).root}/socket/*/api.sock", lines or ["-"])
    denied = [p for p, s in states.items() if s is SocketState.DENIED]
    dead = [
        p
        for p, s in states.items()
        if s is not SocketState.LISTENING and p not in denied
    ]
    if not sockets:
        return ok(
            "no nydusd daemon sockets (daemons start when images are used)",
            evidence,
        )
    if dead:
        return problem(
            f"{len(dead)} of {len(sockets)} nydusd API sockets do not "
            "answer; pods on those daemons fail",
            evidence,
        )
    if denied:
        return unknown(
            f"{len(denied)} nydusd API sockets could not be tested by this login "
            "(permission denied); log in as root to test them",
            evidence,
        )
    return ok(f"{len(sockets)} nydusd daemon(s) answer", evidence)
