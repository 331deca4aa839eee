"""Config rules shared by the health checks and `config validate`.

Each rule reads parsed configs (and, where it needs them, facts about the
node) and returns a RuleProblem, or None when the rule holds. The checks in
nydus_console.checks.rules add evidence to these; the validator in
nydus_console.configedit.validate turns them into problems of one file.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

from nydus_console.configedit.keys import format_key, toml_basic_string
from nydus_console.configs import (
    MAX_ROOT_BYTES,
    NYDUSD_DEFAULT_CONFIG,
    ContainerdConfig,
    expected_root,
)
from nydus_console.facts import parse_kernel_release
from nydus_console.findings import Status
from nydus_console.inventory import NodePaths


@dataclass(frozen=True)
class RuleProblem:
    """A rule that does not hold.

    `check` is the id of the health check that reports it; its severity in
    assets/checks.toml applies unless `status` overrides it. `key` is the
    dotted key to change, in the config the check names.
    """

    check: str
    key: str
    message: str
    fix: str = ""
    status: Status | None = None


def toml_string(value: str) -> str:
    """Quote a value as a TOML basic string, for fixes that show a line to write."""
    return toml_basic_string(value)


def same_path(left: str, right: str) -> bool:
    return posixpath.normpath(left) == posixpath.normpath(right)


# -- snapshotter root ---------------------------------------------------------------


def root_problem(root: str, path_type: str | None = None) -> RuleProblem | None:
    """Check that root is absolute, fits 70 bytes and, when probed, is a directory.

    `path_type` is what the node has at root ("dir", "-" for nothing, another
    type), or None when unknown.
    """
    size = len(root.encode())
    if not root.startswith("/"):
        return RuleProblem(
            "config.root", "root", f"root {root!r} is not an absolute path"
        )
    if size > MAX_ROOT_BYTES:
        return RuleProblem(
            "config.root",
            "root",
            f"root directory path is too long: {size} bytes, max is "
            f"{MAX_ROOT_BYTES} bytes (<root>/socket/<id>/api.sock must fit a unix "
            "socket path)",
            "use a shorter root and export it from containerd: "
            '[proxy_plugins.nydus.exports] root = "<short root>"',
        )
    if path_type == "-":
        return RuleProblem(
            "config.root",
            "root",
            f"root {root} does not exist: the snapshotter creates it when it "
            "starts, and until then kubelet's image filesystem stats fail",
            f"mkdir -p {shlex.quote(root)}, then start the snapshotter",
            Status.WARN,
        )
    if path_type not in (None, "dir"):
        return RuleProblem(
            "config.root",
            "root",
            f"root {root} exists but is not a directory ({path_type})",
        )
    return None


def root_location_problem(
    root: str, containerd: ContainerdConfig, paths: NodePaths
) -> RuleProblem | None:
    """Check that CRI's image filesystem path is the snapshotter's root.

    CRI reports `<containerd root>/io.containerd.snapshotter.v1.nydus`, unless
    the proxy plugin exports another root (containerd 2.x, or 1.6 and 1.7
    releases with the April 2024 backport).
    """
    wanted = expected_root(containerd.root)
    if same_path(root, wanted):
        return None
    if containerd.exported_root and same_path(containerd.exported_root, root):
        return None
    return RuleProblem(
        "config.root_location",
        "root",
        f"root {root} is not {wanted}: CRI reports the image filesystem as "
        f"{wanted}, so kubelet's imagefs stats (and image GC) fail with 'no such "
        "file or directory'",
        _root_fix(paths, root, wanted),
    )


def _root_fix(paths: NodePaths, root: str, wanted: str) -> str:
    export = (
        f"[proxy_plugins.nydus.exports] root = {toml_string(root)} to "
        f"{paths.containerd_config} (needs a containerd with proxy plugin "
        "exports: 2.x, or a 1.6 or 1.7 release with the April 2024 backport), then "
        "restart containerd"
    )
    move = (
        f"set root = {toml_string(wanted)} in {paths.snapshotter_config}, run "
        f"mkdir -p {shlex.quote(wanted)}, then restart {paths.snapshotter_unit}"
    )
    wanted_fits = len(wanted.encode()) <= MAX_ROOT_BYTES
    root_fits = len(root.encode()) <= MAX_ROOT_BYTES
    if wanted_fits and root_fits:
        return f"{move}; or keep root and add {export}"
    if wanted_fits:
        return move
    if root_fits:
        return f"{wanted} is over {MAX_ROOT_BYTES} bytes, so keep root and add {export}"
    return (
        f"both {wanted} and the current root are over {MAX_ROOT_BYTES} bytes: pick "
        f"a root of at most {MAX_ROOT_BYTES} bytes, set it in "
        f"{paths.snapshotter_config}, and add it as "
        "[proxy_plugins.nydus.exports] root in containerd's config"
    )


# -- fs_driver against the kernel ------------------------------------------------------

FSCACHE_MIN_KERNEL = (5, 19)


def fscache_kernel_problem(
    release: str, devices: set[str], kernel_config: dict[str, str] | None
) -> RuleProblem | None:
    """Check the kernel can serve fs_driver = "fscache".

    fscache needs kernel 5.19 or later, CONFIG_CACHEFILES_ONDEMAND=y (checked
    when the kernel config was readable) and /dev/cachefiles.
    """
    key = "daemon.fs_driver"
    if parse_kernel_release(release) < FSCACHE_MIN_KERNEL:
        return RuleProblem(
            "config.fscache_kernel",
            key,
            f"kernel {release} is older than 5.19, which fscache needs",
        )
    config = kernel_config or {}
    if kernel_config is not None and config.get("CONFIG_CACHEFILES_ONDEMAND") != "y":
        return RuleProblem(
            "config.fscache_kernel",
            key,
            f"kernel {release} lacks CONFIG_CACHEFILES_ONDEMAND=y",
        )
    if "cachefiles" not in devices:
        return RuleProblem(
            "config.fscache_kernel",
            key,
            "/dev/cachefiles is missing (modprobe cachefiles)",
        )
    return None


def fuse_device_problem(devices: set[str]) -> RuleProblem | None:
    """Check that fs_driver = "fusedev" has /dev/fuse."""
    if "fuse" in devices:
        return None
    return RuleProblem(
        "config.fuse_device",
        "daemon.fs_driver",
        "fs_driver is fusedev but /dev/fuse is missing",
    )


# -- files the snapshotter config names ---------------------------------------------


def missing_nydusd_config_problem(
    path: str, default_exists: bool, paths: NodePaths
) -> RuleProblem:
    """The problem of a [daemon] nydusd_config that does not exist on the node.

    `default_exists` says whether /etc/nydus/nydusd-config.json exists, so the
    fix can offer it.
    """
    install = f"install a nydusd JSON config at {path}"
    if path == NYDUSD_DEFAULT_CONFIG or not default_exists:
        fix = f"{install}, then restart {paths.snapshotter_unit}"
    else:
        fix = (
            f"{install}, or set [daemon] nydusd_config = "
            f"{toml_string(NYDUSD_DEFAULT_CONFIG)} (that file exists), then restart "
            f"{paths.snapshotter_unit}"
        )
    return RuleProblem(
        "config.nydusd_config",
        "daemon.nydusd_config",
        f"nydusd_config {path} does not exist: the snapshotter exits with "
        f"'read FUSE configuration file {path}: ... no such file or directory'",
        fix,
    )


def mirrors_dir_problem(directory: str, path_type: str) -> RuleProblem | None:
    """Check that [remote.mirrors_config] dir exists; `path_type` as probed."""
    if path_type == "dir":
        return None
    return RuleProblem(
        "config.mirrors_dir",
        "remote.mirrors_config.dir",
        f"mirrors config directory {directory} does not exist",
    )


# -- containerd ------------------------------------------------------------------


def proxy_plugin_problem(
    containerd: ContainerdConfig, snapshotter_address: str
) -> RuleProblem | None:
    """Check that [proxy_plugins.nydus] exists and dials the snapshotter's socket."""
    if not containerd.has_proxy_plugin:
        return RuleProblem(
            "containerd.proxy_plugin",
            "proxy_plugins.nydus",
            "containerd has no [proxy_plugins.nydus]; it cannot reach the snapshotter",
        )
    if containerd.proxy_type != "snapshot":
        return RuleProblem(
            "containerd.proxy_plugin",
            "proxy_plugins.nydus.type",
            f"[proxy_plugins.nydus] type is {containerd.proxy_type!r}, "
            'must be "snapshot"',
        )
    if not same_path(containerd.proxy_address or "", snapshotter_address):
        return RuleProblem(
            "containerd.proxy_plugin",
            "proxy_plugins.nydus.address",
            f"containerd dials {containerd.proxy_address} but the snapshotter "
            f"listens on {snapshotter_address}",
            f"set address = {toml_string(snapshotter_address)} in "
            "[proxy_plugins.nydus], then restart containerd",
        )
    return None


def cri_snapshotter_problem(containerd: ContainerdConfig) -> RuleProblem | None:
    """Check that CRI pulls use the nydus snapshotter, from the right table."""
    cri = containerd.cri
    if cri.misplaced:
        return RuleProblem(
            "containerd.cri_snapshotter",
            format_key(cri.misplaced_paths[0]),
            f"version {containerd.version} config sets {', '.join(cri.misplaced)}, "
            f"which containerd ignores for pulls; they belong in {cri.table}",
            f"move the keys into {cri.table}, restart containerd, pull again",
            Status.FAIL,
        )
    if cri.snapshotter == "nydus":
        return None
    current = cri.snapshotter or "overlayfs (default)"
    return RuleProblem(
        "containerd.cri_snapshotter",
        "cri.snapshotter",
        f"CRI pulls use {current}: Kubernetes pods of nydus images fail with "
        "'no processor for media-type'",
        f'set snapshotter = "nydus" in {cri.table}, then restart containerd',
    )


def snapshot_annotations_problem(containerd: ContainerdConfig) -> RuleProblem | None:
    """Check that CRI passes image annotations to the snapshotter."""
    cri = containerd.cri
    if cri.disable_snapshot_annotations is False:
        return None
    shown = "true (default)" if cri.disable_snapshot_annotations is None else "true"
    return RuleProblem(
        "containerd.snapshot_annotations",
        "cri.disable_snapshot_annotations",
        f"disable_snapshot_annotations is {shown}: nydus gets no image and "
        "layer annotations as snapshot labels",
        f"set disable_snapshot_annotations = false in {cri.table}, "
        "then restart containerd",
        Status.FAIL if cri.snapshotter == "nydus" else Status.WARN,
    )
