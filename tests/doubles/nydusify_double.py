"""Test double of nydusify (`convert` and `check`), for the testbed nodes.

It converts nothing. It reads the flags the way nydusify's command line
does: global flags before the subcommand, `--flag value` or `--flag=value`.
Like nydusify, it rejects unknown flags and a missing --source or --target.
It reads the prefetch patterns from standard input when --prefetch-patterns
is given. It logs the converter's documented lines to stderr in logrus'
text format without a terminal:

    time="2026-12-04T22:10:00Z" level=info msg="pulling image REF" module=converter

What it does is chosen by a JSON control file (NYDUSIFY_DOUBLE_CONTROL,
default /etc/nydus-doubles/nydusify.json) or environment variables:

- ``exit`` / NYDUSIFY_DOUBLE_EXIT: exit status at the end (default 0; a
  non-zero status is preceded by a fatal line, as logrus.Fatal does);
- ``fail_at`` / NYDUSIFY_DOUBLE_FAIL_AT: pull, convert or push: log that
  stage's start, then ``error`` at level fatal and exit 1 (or ``exit``);
- ``hang_at`` / NYDUSIFY_DOUBLE_HANG_AT: log that stage's start, write the
  PID to /run/nydusify-double.pid and sleep until killed;
- ``cached``: the `(cached N/M)` text of the pulled line;
- ``check_fail``: manifest, bootstrap or filesystem: `check` fails there.

Every call is appended to /var/log/nydusify-double.jsonl (argv, standard
input, PID) so a test can see exactly what arrived.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time

CONTROL = os.environ.get("NYDUSIFY_DOUBLE_CONTROL", "/etc/nydus-doubles/nydusify.json")
RECORD = os.environ.get("NYDUSIFY_DOUBLE_RECORD", "/var/log/nydusify-double.jsonl")
PID_FILE = "/run/nydusify-double.pid"
GLOBAL_VALUE = {"-l", "--log-level", "--log-file"}
GLOBAL_BOOL = {"-D", "--debug"}
CONVERT_VALUE = {
    "--source",
    "--target",
    "--target-suffix",
    "--source-archive",
    "--target-archive",
    "--backend-type",
    "--backend-config",
    "--backend-config-file",
    "--platform",
    "--fs-version",
    "--compressor",
    "--fs-chunk-size",
    "--chunk-size",
    "--batch-size",
    "--work-dir",
    "--nydus-image",
    "--output-json",
    "--prefetch-dir",
    "--chunk-dict",
    "--build-cache",
    "--build-cache-tag",
    "--build-cache-version",
    "--build-cache-max-records",
    "--push-retry-count",
    "--push-retry-delay",
}
CONVERT_BOOL = {
    "--source-insecure",
    "--target-insecure",
    "--backend-force-push",
    "--merge-platform",
    "--multi-platform",
    "--all-platforms",
    "--oci-ref",
    "--with-referrer",
    "--oci",
    "--reverse",
    "--fs-align-chunk",
    "--prefetch-patterns",
    "--plain-http",
    "--build-cache-insecure",
    "--chunk-dict-insecure",
    "--docker-v2-format",
}
CHECK_VALUE = {
    "--source",
    "--target",
    "--platform",
    "--work-dir",
    "--nydus-image",
    "--nydusd",
    "--source-backend-type",
    "--source-backend-config",
    "--source-backend-config-file",
    "--target-backend-type",
    "--target-backend-config",
    "--target-backend-config-file",
}
CHECK_BOOL = {"--source-insecure", "--target-insecure", "--multi-platform"}


def control() -> dict[str, object]:
    data: dict[str, object] = {}
    try:
        with open(CONTROL) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        data = {}
    for key in ("exit", "fail_at", "hang_at"):
        value = os.environ.get(f"NYDUSIFY_DOUBLE_{key.upper()}")
        if value:
            data[key] = int(value) if key == "exit" else value
    return data


def log(level: str, message: str, module: bool = True) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f'time="{now}" level={level} msg={json.dumps(message)}'
    if module:
        text += " module=converter"
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def fatal(message: str, status: int = 1) -> None:
    log("fatal", message, module=False)
    sys.exit(status)


def parse(args: list[str], values: set[str], bools: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    index = 0
    while index < len(args):
        word = args[index]
        name, equals, value = word.partition("=")
        if name in bools:
            found[name] = value if equals else "true"
        elif name in values:
            if not equals:
                index += 1
                if index >= len(args):
                    fatal(f"flag needs an argument: {name}")
                value = args[index]
            found[name] = value
        else:
            sys.stderr.write(
                f"Incorrect Usage: flag provided but not defined: {name}\n"
            )
            sys.exit(1)
        index += 1
    return found


def record(argv: list[str], stdin: str) -> None:
    entry = {"argv": argv, "stdin": stdin, "pid": os.getpid(), "time": time.time()}
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


def stage(name: str, start: str, settings: dict[str, object]) -> None:
    log("info", start)
    if settings.get("hang_at") == name:
        hang()
    if settings.get("fail_at") == name:
        error = str(settings.get("error") or f"failed to {name} image: boom")
        fatal(error, int(str(settings.get("exit") or 1)))
    time.sleep(0.05)


def convert(flags: dict[str, str], settings: dict[str, object]) -> None:
    source = flags.get("--source")
    if not source:
        fatal('Required flag "source" not set')
    target = flags.get("--target")
    if not target and flags.get("--target-suffix"):
        target = source + flags["--target-suffix"]
    if not target:
        fatal("--target or --target-suffix is required")
    if flags.get("--fs-version", "6") not in ("5", "6"):
        fatal(f"invalid fs version {flags['--fs-version']}")
    if flags.get("--compressor", "zstd") not in ("none", "lz4_block", "zstd"):
        fatal(f"unsupported compressor {flags['--compressor']}")
    cached = str(settings.get("cached") or "")
    stage("pull", f"pulling image {source}", settings)
    log("info", f"pulled image {source} {cached}, elapse 52ms")
    stage("convert", f"converting image {source}", settings)
    log("info", f"converted image {target} {cached}, elapse 1.25s")
    stage("push", f"pushing image {target}", settings)
    log("info", f"pushed image {target}, elapse 310ms")
    status = int(str(settings.get("exit") or 0))
    if status:
        fatal(str(settings.get("error") or "conversion failed"), status)


def check(flags: dict[str, str], settings: dict[str, object]) -> None:
    if not flags.get("--target"):
        fatal('Required flag "target" not set')
    failing = settings.get("check_fail")
    log("info", f"parsing image {flags['--target']}", module=False)
    for rule, line in (
        ("manifest", "checking manifest"),
        ("bootstrap", "checking bootstrap"),
        ("filesystem", "comparing filesystem"),
    ):
        log("info", line, module=False)
        if failing == rule:
            fatal(f"validate {rule} failed: double told to fail")
    log("info", "verified image", module=False)


def main() -> None:
    args = sys.argv[1:]
    while args and (args[0] in GLOBAL_BOOL or args[0].split("=")[0] in GLOBAL_VALUE):
        skip = 1 if args[0] in GLOBAL_BOOL or "=" in args[0] else 2
        args = args[skip:]
    if not args or args[0] not in ("convert", "check"):
        sys.stderr.write("nydusify double: only convert and check are doubled\n")
        sys.exit(1)
    command, rest = args[0], args[1:]
    settings = control()
    if command == "convert":
        flags = parse(rest, CONVERT_VALUE, CONVERT_BOOL)
        stdin = sys.stdin.read() if "--prefetch-patterns" in flags else ""
        record(sys.argv[1:], stdin)
        convert(flags, settings)
    else:
        flags = parse(rest, CHECK_VALUE, CHECK_BOOL)
        record(sys.argv[1:], "")
        check(flags, settings)


if __name__ == "__main__":
    main()
