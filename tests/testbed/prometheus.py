"""A private Prometheus server on 127.0.0.1 that scrapes given exporter targets.

``PrometheusServer`` runs Debian's /usr/bin/prometheus (package
``prometheus``) with its own config and a fresh TSDB directory, because a
reused one would serve samples of an earlier run. Every target is scraped
each second at /v1/metrics, nydus-snapshotter's metrics path. start()
returns once Prometheus is ready and every target's last scrape succeeded,
which takes about 6 s: Prometheus waits 5 s before it applies the first
target list. Tests get servers from the ``start_prometheus`` fixture.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import TestbedUnavailable
from .loopback import free_ports
from .metrics_double import http_request

PROMETHEUS = "/usr/bin/prometheus"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
JOB_NAME = "nydus-snapshotter"
BIND_ATTEMPTS = 3


class PrometheusServer:
    """One Prometheus process, its config, TSDB and log under workdir.

    targets are "host:port" strings. scrape_interval is a Prometheus
    duration. The scrape timeout equals it because Prometheus rejects a
    timeout longer than the interval.
    """

    def __init__(
        self,
        targets: Sequence[str],
        workdir: Path,
        *,
        scrape_interval: str = "1s",
        metrics_path: str = "/v1/metrics",
        binary: str = PROMETHEUS,
    ) -> None:
        if not targets:
            raise ValueError("Prometheus needs at least one target to scrape")
        self.targets = list(targets)
        self.workdir = workdir
        self.scrape_interval = scrape_interval
        self.metrics_path = metrics_path
        self.binary = binary
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- start and stop ------------------------------------------------------

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Start Prometheus and wait until it is ready and every target is up.

        Raises TestbedUnavailable when the binary is missing, and
        RuntimeError or TimeoutError, with the end of its log, when it
        does not get there within timeout seconds.
        """
        if not os.access(self.binary, os.X_OK):
            raise TestbedUnavailable(
                f"{self.binary} is not installed (Debian package: prometheus)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(self.config_text())
        deadline = time.monotonic() + timeout
        try:
            self._launch_until_ready(config, deadline)
            self._wait(self.targets_up, "every target is up", deadline)
        except BaseException:
            self.stop()
            raise

    def _launch_until_ready(self, config: Path, deadline: float) -> None:
        for attempt in range(1, BIND_ATTEMPTS + 1):
            self._launch(config)
            try:
                self._wait(self._ready, "/-/ready returned 200", deadline)
                return
            except RuntimeError:
                # free_ports() cannot reserve the port, so another process
                # may have taken it before Prometheus bound it.
                if attempt == BIND_ATTEMPTS or not self._port_was_taken():
                    raise
                self.stop()

    def _port_was_taken(self) -> bool:
        return "address already in use" in self._log_tail()

    def config_text(self) -> str:
        """Return prometheus.yml written as JSON, which YAML parsers accept."""
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": [
                {
                    "job_name": JOB_NAME,
                    "metrics_path": self.metrics_path,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        return json.dumps(config, indent=2) + "\n"

    def _launch(self, config: Path) -> None:
        # A fresh directory per start, so no sample of an earlier run is served.
        tsdb = tempfile.mkdtemp(prefix="tsdb-", dir=self.workdir)
        (self.port,) = free_ports(1)
        argv = [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    def _wait(self, condition: Callable[[], bool], what: str, deadline: float) -> None:
        while not condition():
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with status {self.process.returncode} "
                    f"before {what}; log {self.log_path}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"prometheus on {self.url} timed out waiting until {what}; "
                    f"targets {self.targets}; log {self.log_path}:\n{self._log_tail()}"
                )
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            status, _ = http_request(f"{self.url}/-/ready", timeout=2)
        except OSError:
            return False
        return status == 200

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-3000:].decode(errors="replace")
        except OSError as error:
            return f"(log not readable: {error})"

    def stop(self) -> None:
        """Stop the process with SIGTERM, or with SIGKILL after STOP_TIMEOUT."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self.process = None

    # --- HTTP API --------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """Return the "data" of GET /api/v1/<path>. Raises RuntimeError on an error."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        status, body = http_request(url)
        document = json.loads(body) if body else {}
        if status != 200 or document.get("status") != "success":
            raise RuntimeError(f"GET {url} returned {status}: {body!r}")
        return document["data"]

    def active_targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def targets_up(self) -> bool:
        """Return whether every configured target's last scrape succeeded."""
        try:
            active = self.active_targets()
        except (OSError, RuntimeError, ValueError):
            return False
        health = {
            target["labels"].get("instance"): target["health"] for target in active
        }
        return all(health.get(target) == "up" for target in self.targets)

    def query(self, expression: str) -> list[dict[str, Any]]:
        """Return the result list of an instant query (/api/v1/query) at now."""
        data = self.api("query", query=expression)
        if data["resultType"] != "vector":
            raise RuntimeError(f"{expression!r} returned a {data['resultType']}")
        return list(data["result"])

    def query_values(self, expression: str, label: str) -> dict[str, float]:
        """Return an instant query's values keyed by each sample's value of label."""
        return {
            sample["metric"].get(label, ""): float(sample["value"][1])
            for sample in self.query(expression)
        }

    def wait_for_query(
        self,
        expression: str,
        condition: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 20.0,
    ) -> list[dict[str, Any]]:
        """Poll an instant query until condition(result) is true and return the result.

        Raises TimeoutError with the last result.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expression)
            if condition(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{expression!r} on {self.url} did not reach the expected "
                    f"result within {timeout} s; last result: {result}"
                )
            time.sleep(0.25)

    def wait_for_value(
        self, expression: str, expected: float, timeout: float = 20.0
    ) -> None:
        """Wait until the query returns exactly one sample equal to expected."""
        self.wait_for_query(
            expression,
            lambda result: (
                len(result) == 1 and float(result[0]["value"][1]) == expected
            ),
            timeout,
        )
