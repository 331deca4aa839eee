"""Plan a Nydus image build with buildkit: checked options, the argument list.

`buildctl build` runs on a node that has buildkitd, reads the build context
and the Dockerfile from a directory on that node and pushes the result
with `compression=nydus`. buildkitd converts the layers with nydus-image,
which must be in its PATH. `force-compression=true` recompresses layers
that come cached in another compression, since nydus layers cannot be
mixed with gzip ones in one image; `oci-mediatypes=true` writes OCI
manifests, which the nydus layers need.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from nydus_console.images.convert import ConvertError, check_path
from nydus_console.images.reference import (
    BadReference,
    ImageReference,
    parse_reference,
)

DEFAULT_SOCKET = "/run/buildkit/buildkitd.sock"
_PLATFORM = re.compile(r"[a-z0-9_]+/[a-z0-9_]+(?:/[a-z0-9_]+)?")
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Build args are kept in the image's history, so they must not hold secrets.
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL",
    re.IGNORECASE,
)
OUTPUT_ATTRS = "push=true,compression=nydus,force-compression=true,oci-mediatypes=true"


class BuildError(ConvertError):
    """An option buildctl would not get; the message names flag and value."""


@dataclass(frozen=True)
class BuildOptions:
    """Options as the operator gave them; the history stores these."""

    context: str
    output: str
    file: str = "Dockerfile"
    platform: str = ""
    build_args: tuple[str, ...] = ()
    insecure: bool = False
    buildctl: str = "buildctl"
    socket: str = DEFAULT_SOCKET

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["build_args"] = list(self.build_args)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["build_args"] = tuple(values.get("build_args") or ())
        return cls(**values)


@dataclass(frozen=True)
class BuildPlan:
    options: BuildOptions
    output: ImageReference
    context: str
    dockerfile_dir: str
    filename: str
    argv: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def dockerfile(self) -> str:
        return posixpath.join(self.dockerfile_dir, self.filename)


def _path(flag: str, text: str, *, absolute: bool = False) -> str:
    try:
        return check_path(flag, text, absolute=absolute)
    except ConvertError as exc:
        raise BuildError(str(exc)) from None


def check_build_arg(text: str) -> tuple[str, str]:
    """Split KEY=VALUE; refuse bad names, control characters and secrets."""
    name, equals, value = text.partition("=")
    if not equals or not _ARG_NAME.fullmatch(name):
        raise BuildError(
            f"--build-arg {text!r} is not KEY=VALUE with a KEY of letters, digits "
            "and '_', such as VERSION=1.2"
        )
    if not value.isprintable():
        raise BuildError(
            f"--build-arg {name}: the value must not hold control characters "
            "such as newlines"
        )
    if _SECRET_NAME.search(name):
        raise BuildError(
            f"--build-arg {name} looks like a secret: build args are kept in the "
            "image's history; mount secrets with a RUN --mount=type=secret instead"
        )
    return name, value


def _platforms(text: str) -> str:
    for platform in text.split(","):
        if not _PLATFORM.fullmatch(platform):
            raise BuildError(
                f"--platform {text!r} is not OS/ARCH[/VARIANT] (comma-separated "
                "for more), such as linux/amd64 or linux/amd64,linux/arm64"
            )
    return text


def _dockerfile(context: str, file: str) -> tuple[str, str]:
    """Return the Dockerfile's directory and name as buildctl takes them."""
    _path("--file", file)
    if file.startswith("/"):
        directory, name = posixpath.split(posixpath.normpath(file))
        return directory, name
    if ".." in file.split("/"):
        raise BuildError(
            f"--file {file!r} leaves the context directory: give an absolute path"
        )
    return context, file


def _output(text: str) -> ImageReference:
    try:
        output = parse_reference(text)
    except BadReference as exc:
        raise BuildError(f"--output: {exc}") from None
    if output.digest:
        raise BuildError(
            f"--output {text!r} names a digest, which the build cannot know "
            "before it runs: give a tag, such as registry.example.com/app:v1-nydus"
        )
    return output


def plan_build(o: BuildOptions) -> BuildPlan:
    """Check every option and build the argument list; raise BuildError."""
    output = _output(o.output)
    context = _path("--context", o.context, absolute=True)
    directory, filename = _dockerfile(context, o.file)
    _path("--buildctl", o.buildctl)
    _path("--buildkit-socket", o.socket, absolute=True)
    args = [check_build_arg(a) for a in o.build_args]
    argv = [o.buildctl, "--addr", f"unix://{o.socket}", "build"]
    argv += ["--progress", "plain", "--frontend", "dockerfile.v0"]
    argv += ["--local", f"context={context}", "--local", f"dockerfile={directory}"]
    argv += ["--opt", f"filename={filename}"]
    if o.platform:
        argv += ["--opt", f"platform={_platforms(o.platform)}"]
    for name, value in args:
        argv += ["--opt", f"build-arg:{name}={value}"]
    attrs = f"type=image,name={output},{OUTPUT_ATTRS}"
    if o.insecure:
        attrs += ",registry.insecure=true"
    argv += ["--output", attrs]
    return BuildPlan(o, output, context, directory, filename, tuple(argv))
