"""Plan a nydusify conversion: checked options and the exact argument lists.

Every value is checked before anything runs: references with the image
reference grammar, numbers and enums against what nydusify and nydus-image
accept, paths and patterns for characters no command line should carry.
The plan contains the `nydusify convert` argument list, the optional
`nydusify check` list and the prefetch patterns nydusify reads from its
standard input.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from nydus_console.images.reference import (
    BadReference,
    ImageReference,
    parse_reference,
)
from nydus_console.transport.quoting import quote_argv

FS_VERSIONS = ("5", "6")
COMPRESSORS = ("none", "lz4_block", "zstd")
BACKEND_TYPES = ("oss", "s3", "localfs")
# Chunk and batch sizes: powers of two up to RAFS_MAX_CHUNK_SIZE (16 MiB in
# nydus' storage crate).
# NOTE: the 4 KiB minimum, and the same range for the batch size, are assumed.
MIN_SIZE = 0x1000
MAX_SIZE = 0x1000000
TARGET_SUFFIX = "-nydus"
_PLATFORM = re.compile(r"[a-z0-9_]+/[a-z0-9_]+(?:/[a-z0-9_]+)?")


class ConvertError(ValueError):
    """An option nydusify would not get; the message names flag and value."""


@dataclass(frozen=True)
class ConvertOptions:
    """Options as the operator gave them; the history stores these."""

    source: str
    target: str = ""
    fs_version: str = "6"
    compressor: str = "zstd"
    chunk_size: str = ""
    platform: str = ""
    all_platforms: bool = False
    oci: bool = False
    oci_ref: bool = False
    merge_platform: bool = False
    source_insecure: bool = False
    target_insecure: bool = False
    backend_type: str = ""
    backend_config_file: str = ""
    prefetch_patterns: tuple[str, ...] = ()
    batch_size: str = ""
    work_dir: str = ""
    nydusify: str = "nydusify"
    check: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["prefetch_patterns"] = list(self.prefetch_patterns)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConvertOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["prefetch_patterns"] = tuple(values.get("prefetch_patterns") or ())
        return cls(**values)


@dataclass(frozen=True)
class ConvertPlan:
    options: ConvertOptions
    source: ImageReference
    target: ImageReference
    argv: tuple[str, ...]
    check_argv: tuple[str, ...] = ()
    stdin: str = ""
    notes: list[str] = field(default_factory=list)


def _reference(flag: str, text: str) -> ImageReference:
    try:
        return parse_reference(text)
    except BadReference as exc:
        raise ConvertError(f"{flag}: {exc}") from None


def default_target(source: ImageReference) -> ImageReference:
    """Return the source repository tagged `<source tag>-nydus`."""
    if not source.tag:
        raise ConvertError(
            f"SOURCE {source} names a digest and no tag, so there is no "
            f"`<tag>{TARGET_SUFFIX}` to default to: give TARGET"
        )
    tag = source.tag + TARGET_SUFFIX
    if len(tag) > 128:
        raise ConvertError(
            f"the default target tag {tag!r} is longer than 128 characters: give TARGET"
        )
    return source.with_tag(tag)


def parse_size(flag: str, text: str) -> int:
    """Parse a decimal or 0x hex size that is a power of two in range."""
    try:
        value = int(text, 0)
    except ValueError:
        raise ConvertError(
            f"{flag} {text!r} is not a number: write it as 0x100000 or 1048576"
        ) from None
    if value < MIN_SIZE or value > MAX_SIZE or value & (value - 1):
        raise ConvertError(
            f"{flag} {text!r} must be a power of two from {MIN_SIZE:#x} to "
            f"{MAX_SIZE:#x}, such as 0x100000 (1 MiB)"
        )
    return value


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConvertError(f"{flag} {value!r} is not one of: {', '.join(choices)}")
    return value


def check_path(flag: str, text: str, *, absolute: bool = False) -> str:
    """Refuse paths that could be read as an option or break a command line."""
    if not text or not text.isprintable() or text.startswith("-"):
        raise ConvertError(
            f"{flag} {text!r} is not a usable path: it must not be empty, start "
            "with '-' or hold control characters"
        )
    if absolute and not text.startswith("/"):
        raise ConvertError(f"{flag} {text!r} must be an absolute path on the node")
    return text


def _check_pattern(pattern: str) -> str:
    if not pattern.startswith("/") or not pattern.isprintable():
        raise ConvertError(
            f"--prefetch-pattern {pattern!r} must be an absolute path in the image "
            "(such as /usr/bin) without control characters"
        )
    return pattern


def _check_combinations(o: ConvertOptions) -> None:
    if o.platform and o.all_platforms:
        raise ConvertError("give --platform or --all-platforms, not both")
    if o.platform and not _PLATFORM.fullmatch(o.platform):
        raise ConvertError(
            f"--platform {o.platform!r} is not OS/ARCH[/VARIANT], such as "
            "linux/amd64 or linux/arm64/v8"
        )
    if o.oci_ref and o.fs_version != "6":
        raise ConvertError("--oci-ref needs --fs-version 6 (nydusify forces it)")
    if bool(o.backend_type) != bool(o.backend_config_file):
        raise ConvertError(
            "--backend-type and --backend-config-file go together: the backend "
            "config holds the storage's address and credentials"
        )


def _convert_argv(
    o: ConvertOptions, source: ImageReference, target: ImageReference
) -> list[str]:
    argv = [o.nydusify, "convert", "--source", str(source), "--target", str(target)]
    argv += ["--fs-version", o.fs_version, "--compressor", o.compressor]
    if o.chunk_size:
        argv += ["--chunk-size", hex(parse_size("--chunk-size", o.chunk_size))]
    if o.batch_size:
        argv += ["--batch-size", hex(parse_size("--batch-size", o.batch_size))]
    if o.platform:
        argv += ["--platform", o.platform]
    flags = [
        ("--all-platforms", o.all_platforms),
        ("--oci", o.oci and not o.oci_ref),
        ("--oci-ref", o.oci_ref),
        ("--merge-platform", o.merge_platform),
        ("--source-insecure", o.source_insecure),
        ("--target-insecure", o.target_insecure),
    ]
    argv += [flag for flag, wanted in flags if wanted]
    if o.backend_type:
        argv += ["--backend-type", o.backend_type]
        argv += ["--backend-config-file", o.backend_config_file]
    if o.prefetch_patterns:
        argv.append("--prefetch-patterns")
    if o.work_dir:
        argv += ["--work-dir", o.work_dir]
    return argv


def _check_argv(
    o: ConvertOptions, source: ImageReference, target: ImageReference
) -> list[str]:
    argv = [o.nydusify, "check", "--source", str(source), "--target", str(target)]
    if o.source_insecure:
        argv.append("--source-insecure")
    if o.target_insecure:
        argv.append("--target-insecure")
    if o.platform:
        argv += ["--platform", o.platform]
    if o.all_platforms or o.merge_platform:
        argv.append("--multi-platform")
    if o.backend_type:
        argv += ["--target-backend-type", o.backend_type]
        argv += ["--target-backend-config-file", o.backend_config_file]
    return argv


def plan_convert(o: ConvertOptions) -> ConvertPlan:
    """Check every option and build the argument lists; raise ConvertError."""
    source = _reference("SOURCE", o.source)
    target = _reference("TARGET", o.target) if o.target else default_target(source)
    if target == source:
        raise ConvertError(
            f"TARGET {target} is SOURCE: converting in place would overwrite the "
            "OCI image; give another tag"
        )
    _choice("--fs-version", o.fs_version, FS_VERSIONS)
    _choice("--compressor", o.compressor, COMPRESSORS)
    if o.backend_type:
        _choice("--backend-type", o.backend_type, BACKEND_TYPES)
    check_path("--nydusify", o.nydusify)
    if o.backend_config_file:
        check_path("--backend-config-file", o.backend_config_file, absolute=True)
    if o.work_dir:
        check_path("--work-dir", o.work_dir)
    patterns = [_check_pattern(p) for p in o.prefetch_patterns]
    _check_combinations(o)
    argv = _convert_argv(o, source, target)
    check_argv = _check_argv(o, source, target) if o.check else []
    stdin = "".join(p + "\n" for p in patterns)
    return ConvertPlan(o, source, target, tuple(argv), tuple(check_argv), stdin)


def plan_lines(plan: ConvertPlan) -> list[str]:
    """Return every command the plan runs, as the preview and confirmation show."""
    lines = [f"command: {quote_argv(plan.argv)}"]
    if plan.stdin:
        patterns = ", ".join(plan.stdin.split())
        lines.append(f"prefetch patterns (standard input): {patterns}")
    if plan.check_argv:
        lines.append(f"then:    {quote_argv(plan.check_argv)}")
    return lines
