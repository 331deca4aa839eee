"""pytest fixtures for the testbed.

tests/conftest.py puts tests/ on sys.path and imports the fixtures from
``testbed.fixtures``. ``pytest_plugins = ["testbed.fixtures"]`` in the root
conftest works too. Use one of the two and that module name only. Under
another name, such as ``tests.testbed.fixtures``, Python imports a second
copy of the module and pytest boots a second fleet.

``nspawn_fleet`` boots three nodes once per session: nc-node1 with the
``healthy-metrics`` profile (Prometheus metrics on :9110), nc-node2 with
``healthy`` and nc-node3 with ``broken-root``. Tests that change
a node (its unit, config or sshd) must restore it, because the fleet is
shared. ``loopback_sshd`` starts three sshd instances on 127.0.0.1.

``snapshotter_metrics_double`` runs the exporter double of nydus-snapshotter's
/v1/metrics on 127.0.0.1 for one test. ``start_prometheus(targets)`` starts a
Prometheus server on 127.0.0.1 with a fresh TSDB that scrapes the targets
every second, and stops it after the test. ``start_registry(auth, tls)``
starts Debian's docker-registry on 127.0.0.1 (tests/testbed/registry.py).

``kube_apiserver`` runs etcd and the kube-apiserver that
scripts/build-kube-apiserver built, on 127.0.0.1, once per session
(testbed/kube.py). Without that binary its tests are skipped with the
reason and the build log, even under NC_TESTBED_REQUIRED=1, unless
NC_KUBE_APISERVER names the binary: then a build was expected (as
scripts/test.sh does) and its absence fails them under NC_TESTBED_REQUIRED=1.

When the machine cannot run the testbed (not root, tools missing, nodes do
not boot, no /usr/bin/prometheus) the fixtures call ``pytest.skip`` with
the reason. Set ``NC_TESTBED_REQUIRED=1`` to make that a failure instead,
as CI should.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .errors import NodeBootError, TestbedUnavailable
from .kube import KubeApiServer, KubeBinaryMissing
from .loopback import LoopbackFleet
from .metrics_double import SnapshotterMetricsDouble
from .nspawn import NspawnFleet
from .profiles import DEFAULT_FLEET_PROFILES, boot_fleet
from .prometheus import PrometheusServer
from .registry import RegistryServer


def _unavailable(error: Exception) -> NoReturn:
    reason = f"testbed unavailable: {error}"
    if os.environ.get("NC_TESTBED_REQUIRED") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def nspawn_fleet() -> Iterator[NspawnFleet]:
    """Three booted nodes: healthy-metrics, healthy, broken-root (module doc)."""
    try:
        fleet = boot_fleet(DEFAULT_FLEET_PROFILES)
    except (TestbedUnavailable, NodeBootError) as error:
        _unavailable(error)
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture(scope="session")
def loopback_sshd() -> Iterator[LoopbackFleet]:
    """Three sshd instances on 127.0.0.1 that accept the session's key for root."""
    fleet = LoopbackFleet(3)
    try:
        fleet.start()
    except BaseException as error:
        fleet.close()
        if isinstance(error, TestbedUnavailable):
            _unavailable(error)
        raise
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture(scope="session")
def kube_apiserver(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KubeApiServer]:
    """etcd and kube-apiserver 1.20 on 127.0.0.1 with an admin kubeconfig."""
    server = KubeApiServer(tmp_path_factory.mktemp("kube"))
    try:
        server.start()
    except KubeBinaryMissing as error:
        if not error.expected:
            pytest.skip(f"Kubernetes tests skipped: {error}")
        _unavailable(error)
    except TestbedUnavailable as error:
        _unavailable(error)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def snapshotter_metrics_double(tmp_path: Path) -> Iterator[SnapshotterMetricsDouble]:
    """The exporter double with the "started" preset, on 127.0.0.1 for one test."""
    double = SnapshotterMetricsDouble(tmp_path / "metrics-double")
    try:
        double.start()
    except TestbedUnavailable as error:
        _unavailable(error)
    try:
        yield double
    finally:
        double.stop()


StartPrometheus = Callable[..., PrometheusServer]


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[StartPrometheus]:
    """A factory of Prometheus servers on 127.0.0.1 that stop after the test.

    ``start_prometheus(targets, **options)`` takes "host:port" targets and
    the keyword options of PrometheusServer, and returns once every target
    is up. A missing /usr/bin/prometheus skips the test, or fails it under
    NC_TESTBED_REQUIRED=1.
    """
    servers: list[PrometheusServer] = []

    def start(targets: Sequence[str], **options: Any) -> PrometheusServer:
        workdir = tmp_path / f"prometheus-{len(servers) + 1}"
        server = PrometheusServer(targets, workdir, **options)
        servers.append(server)
        try:
            server.start()
        except TestbedUnavailable as error:
            _unavailable(error)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


StartRegistry = Callable[..., RegistryServer]


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[StartRegistry]:
    """A factory of docker-registry servers on 127.0.0.1 that stop after the test.

    ``start_registry(auth="none"|"basic"|"token", tls=False, **options)``
    takes the keyword options of RegistryServer and returns once the
    registry answers on /v2/. A missing docker-registry skips the test, or
    fails it under NC_TESTBED_REQUIRED=1.
    """
    servers: list[RegistryServer] = []

    def start(auth: str = "none", **options: Any) -> RegistryServer:
        workdir = tmp_path / f"registry-{len(servers) + 1}"
        workdir.mkdir()
        server = RegistryServer(auth, workdir=workdir, **options)
        servers.append(server)
        try:
            server.start()
        except TestbedUnavailable as error:
            _unavailable(error)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.close()
