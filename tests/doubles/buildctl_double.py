"""Test double of buildctl (`build` with the Dockerfile frontend), for the nodes.

It builds nothing. It reads buildctl's global flags (--addr before the
subcommand) and the `build` flags, each `--flag value` or `--flag=value`,
and rejects unknown ones. Like buildctl it fails when the --addr socket
does not exist, and like the Dockerfile frontend when the Dockerfile is not
in the `dockerfile` local directory. It reads the Dockerfile's FROM, RUN
and COPY lines to name the steps, and prints buildctl's plain progress to
stderr:

    #4 [2/3] RUN make
    #4 0.104 output of the step
    #4 DONE 0.2s
    #6 exporting to image
    #6 pushing layers
    #6 pushing layers 0.3s done
    #6 DONE 0.5s

What it does is chosen by a JSON control file (BUILDCTL_DOUBLE_CONTROL,
default /etc/nydus-doubles/buildctl.json):

- ``exit``: exit status at the end (default 0; a non-zero status is
  preceded by an `error: ` line, as buildctl prints its error);
- ``fail_at``: a Dockerfile step number (1 is the first instruction) or
  ``push``: that step ends with `#N ERROR: error` and buildctl exits 1
  (or ``exit``) after `error: failed to solve: error`;
- ``hang_at``: a step number or ``push``: start that step, write the PID
  to /run/buildctl-double.pid and sleep until killed;
- ``cached``: the first step (FROM) is reported as CACHED.

Every call is appended to /var/log/buildctl-double.jsonl (argv, PID).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time

CONTROL = os.environ.get("BUILDCTL_DOUBLE_CONTROL", "/etc/nydus-doubles/buildctl.json")
RECORD = os.environ.get("BUILDCTL_DOUBLE_RECORD", "/var/log/buildctl-double.jsonl")
PID_FILE = "/run/buildctl-double.pid"
DEFAULT_ADDR = "unix:///run/buildkit/buildkitd.sock"
GLOBAL_VALUE = {"--addr", "--tlsservername", "--tlscacert", "--tlscert", "--tlskey"}
GLOBAL_BOOL = {"--debug"}
BUILD_VALUE = {
    "--progress",
    "--frontend",
    "--output",
    "-o",
    "--trace",
    "--metadata-file",
    "--ref-file",
}
BUILD_MULTI = {
    "--local",
    "--opt",
    "--secret",
    "--ssh",
    "--allow",
    "--export-cache",
    "--import-cache",
}
BUILD_BOOL = {"--no-cache"}
INSTRUCTIONS = ("FROM", "RUN", "COPY", "ADD")


def control() -> dict[str, object]:
    try:
        with open(CONTROL) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def fail(message: str, status: int = 1) -> None:
    say(f"error: {message}")
    sys.exit(status)


def take_value(args: list[str], index: int) -> tuple[str, str, int]:
    name, equals, value = args[index].partition("=")
    if equals:
        return name, value, index + 1
    if index + 1 >= len(args):
        fail(f"flag needs an argument: {name}")
    return name, args[index + 1], index + 2


def parse_globals(args: list[str]) -> tuple[dict[str, str], list[str]]:
    found: dict[str, str] = {}
    index = 0
    while index < len(args) and args[index].startswith("-"):
        if args[index] in GLOBAL_BOOL:
            index += 1
            continue
        name, value, index = take_value(args, index)
        if name not in GLOBAL_VALUE:
            fail(f"flag provided but not defined: {name}")
        found[name] = value
    return found, args[index:]


def parse_build(args: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    index = 0
    while index < len(args):
        word = args[index]
        if word in BUILD_BOOL:
            found[word] = ["true"]
            index += 1
            continue
        name, value, index = take_value(args, index)
        if name not in BUILD_VALUE | BUILD_MULTI:
            fail(f"flag provided but not defined: {name}")
        found.setdefault(name, []).append(value)
    return found


def pairs(values: list[str], flag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        key, equals, rest = value.partition("=")
        if not equals:
            fail(f"invalid value {value!r} for {flag}: expected key=value")
        found[key] = rest
    return found


def record(argv: list[str]) -> None:
    entry = {"argv": argv, "pid": os.getpid(), "time": time.time()}
    try:
        with open(RECORD, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
    except OSError:
        pass


def hang() -> None:
    with open(PID_FILE, "w") as handle:
        handle.write(str(os.getpid()))
    while True:
        time.sleep(3600)


def check_daemon(addr: str) -> None:
    path = addr.removeprefix("unix://")
    try:
        is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        is_socket = False
    if not is_socket:
        fail(
            f"failed to get buildkit information: connection error: dial unix "
            f"{path}: connect: no such file or directory"
        )


def dockerfile_steps(locals_: dict[str, str], opts: dict[str, str]) -> list[str]:
    name = opts.get("filename", "Dockerfile")
    path = os.path.join(locals_.get("dockerfile", ""), name)
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        fail(
            "failed to solve: failed to read dockerfile: open "
            f"{name}: no such file or directory"
        )
    steps = []
    for line in lines:
        word = line.strip().split(" ", 1)[0].upper()
        if word in INSTRUCTIONS:
            steps.append(line.strip())
    return steps


def step_failure(number: int, what: str, settings: dict[str, object]) -> None:
    if str(settings.get("hang_at")) == what:
        hang()
    if str(settings.get("fail_at")) == what:
        error = str(settings.get("error") or f"step {what} failed")
        say(f"#{number} ERROR: {error}")
        say("------")
        fail(f"failed to solve: {error}", int(str(settings.get("exit") or 1)))


def build(steps: list[str], image: str, settings: dict[str, object]) -> None:
    say("#1 [internal] load build definition from Dockerfile")
    say("#1 transferring dockerfile: 120B done")
    say("#1 DONE 0.0s")
    total = len(steps)
    for index, text in enumerate(steps, start=1):
        number = index + 1
        say("")
        say(f"#{number} [{index}/{total}] {text}")
        step_failure(number, str(index), settings)
        if index == 1 and settings.get("cached"):
            say(f"#{number} CACHED")
            continue
        say(f"#{number} 0.104 output of step {index}")
        say(f"#{number} DONE 0.2s")
    export(total + 2, image, settings)


def export(number: int, image: str, settings: dict[str, object]) -> None:
    say("")
    say(f"#{number} exporting to image")
    say(f"#{number} exporting layers")
    say(f"#{number} exporting layers 0.1s done")
    say(f"#{number} naming to {image} done")
    say(f"#{number} pushing layers")
    step_failure(number, "push", settings)
    say(f"#{number} pushing layers 0.3s done")
    say(f"#{number} DONE 0.5s")
    status = int(str(settings.get("exit") or 0))
    if status:
        fail(str(settings.get("error") or "build failed"), status)


def main() -> None:
    flags, rest = parse_globals(sys.argv[1:])
    if not rest or rest[0] != "build":
        fail("buildctl double: only build is doubled")
    options = parse_build(rest[1:])
    record(sys.argv[1:])
    check_daemon(flags.get("--addr", DEFAULT_ADDR))
    if options.get("--frontend") != ["dockerfile.v0"]:
        fail("buildctl double: only --frontend dockerfile.v0 is doubled")
    locals_ = pairs(options.get("--local", []), "--local")
    opts = pairs(options.get("--opt", []), "--opt")
    output = dict(
        part.partition("=")[::2]
        for part in (options.get("--output") or options.get("-o") or [""])[0].split(",")
    )
    if not os.path.isdir(locals_.get("context", "")):
        fail(f"failed to solve: context directory {locals_.get('context')!r} missing")
    steps = dockerfile_steps(locals_, opts)
    build(steps, output.get("name", ""), control())


if __name__ == "__main__":
    main()
