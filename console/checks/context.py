"""Input of every check: the node's facts and its configs, parsed once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

from nydus_console.configs import (
    ConfigError,
    ContainerdConfig,
    NydusdConfig,
    SnapshotterConfig,
    parse_containerd_config,
    parse_nydusd_config,
    parse_snapshotter_config,
)
from nydus_console.facts import FileRead, NodeFacts, UnitState
from nydus_console.inventory import NodePaths

T = TypeVar("T")


@dataclass
class Parsed(Generic[T]):
    """A config file and either its model or the reason it could not be read."""

    file: FileRead
    model: T | None
    error: str = ""
    error_line: int | None = None


class CheckContext:
    def __init__(self, facts: NodeFacts, paths: NodePaths) -> None:
        self.facts = facts
        self.paths = paths

    def _parse(self, path: str, parser: Callable[[str], T]) -> Parsed[T]:
        read = self.facts.file(path)
        if read.status != "ok":
            return Parsed(read, None, f"{path}: {read.status}")
        try:
            return Parsed(read, parser(read.text))
        except ConfigError as exc:
            return Parsed(read, None, str(exc), exc.line)

    @cached_property
    def snapshotter(self) -> Parsed[SnapshotterConfig]:
        return self._parse(self.paths.snapshotter_config, parse_snapshotter_config)

    @cached_property
    def containerd(self) -> Parsed[ContainerdConfig]:
        return self._parse(self.paths.containerd_config, parse_containerd_config)

    @cached_property
    def nydusd(self) -> Parsed[NydusdConfig]:
        config = self.snapshotter.model
        if config is None:
            return Parsed(self.facts.file(""), None, "snapshotter config unavailable")
        return self._parse(config.nydusd_config, parse_nydusd_config)

    @property
    def snapshotter_unit(self) -> UnitState | None:
        return self.facts.units.get(self.paths.snapshotter_unit)

    @property
    def containerd_unit(self) -> UnitState | None:
        return self.facts.units.get(self.paths.containerd_unit)

    @property
    def service_active(self) -> bool:
        unit = self.snapshotter_unit
        if unit is not None and self.facts.systemd_running:
            return unit.get("ActiveState") == "active"
        return bool(self.facts.processes_named("containerd-nydu"))

    @property
    def snapshotter_installed(self) -> bool:
        facts = self.facts
        unit = self.snapshotter_unit
        return bool(
            facts.versions.get("snapshotter", ("", ""))[0]
            or (unit is not None and unit.loaded)
            or facts.processes_named("containerd-nydu")
            or self.snapshotter.file.status == "ok"
        )
