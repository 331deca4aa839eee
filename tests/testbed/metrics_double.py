"""The snapshotter metrics double as a process on 127.0.0.1, and a client for it.

``SnapshotterMetricsDouble`` starts tests/doubles/snapshotter_metrics_double.py,
which serves nydus-snapshotter's /v1/metrics with values that the test sets
through the double's /control endpoints. Use it as a context manager, or
through the ``snapshotter_metrics_double`` fixture.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .errors import TestbedUnavailable

DOUBLE_SCRIPT = (
    Path(__file__).resolve().parent.parent / "doubles" / "snapshotter_metrics_double.py"
)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# Proxy variables must not send requests for 127.0.0.1 anywhere else.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    url: str, method: str = "GET", payload: object = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """Send one request, with payload as a JSON body, and return (status, body).

    HTTP error statuses are returned, not raised.
    """
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class SnapshotterMetricsDouble:
    """One exporter double process and the calls that change its series.

    preset is "started" (a snapshotter that has just started: only the
    families without labels, all 0) or "node" (one RUNNING nydusd serving
    one image, after the first collection). state, when given, replaces
    the preset's series (the JSON shape of snapshotter_metrics). ttl is the
    seconds after which a TTL gauge series that was not set again is gone.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        preset: str = "started",
        state: dict[str, Any] | None = None,
        ttl: float = 180.0,
    ) -> None:
        self.workdir = workdir
        self.preset = preset
        self.initial_state = state
        self.ttl = ttl
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.log_path = workdir / "snapshotter-metrics-double.log"

    def __enter__(self) -> SnapshotterMetricsDouble:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def target(self) -> str:
        """The host:port that a Prometheus scrape config names."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The URL of the metrics endpoint."""
        return f"http://{self.target}/v1/metrics"

    def start(self) -> None:
        """Start the process and wait until it listens. Raises RuntimeError if not."""
        if not DOUBLE_SCRIPT.exists():
            raise TestbedUnavailable(f"{DOUBLE_SCRIPT} is missing")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-B", str(DOUBLE_SCRIPT), "--preset", self.preset]
        argv += ["--ttl", str(self.ttl)]
        if self.initial_state is not None:
            state_path = self.workdir / "snapshotter-metrics-state.json"
            state_path.write_text(json.dumps(self.initial_state))
            argv += ["--state", str(state_path)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.port = self._read_port()

    def _read_port(self) -> int:
        """Return the port from the double's first stdout line."""
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(START_TIMEOUT)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("Started metrics HTTP server on"):
            self.stop()
            raise RuntimeError(
                f"{DOUBLE_SCRIPT.name} did not start within {START_TIMEOUT} s "
                f"(first line {line!r}); log {self.log_path}:\n"
                + self.log_path.read_text()[-2000:]
            )
        return int(line.rstrip().rstrip('"').rsplit(":", 1)[1])

    def stop(self) -> None:
        """Stop the process with SIGTERM, or with SIGKILL after STOP_TIMEOUT."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    # --- the metrics endpoint ----------------------------------------------------

    def metrics_text(self) -> str:
        """Return the body of GET /v1/metrics."""
        status, body = http_request(self.url)
        if status != 200:
            raise RuntimeError(f"GET {self.url} returned {status}: {body!r}")
        return body.decode()

    # --- control -----------------------------------------------------------------

    def _control(self, path: str, payload: object, method: str = "POST") -> Any:
        url = f"http://{self.target}/control/{path}"
        status, body = http_request(url, method, payload)
        if status >= 400:
            raise ValueError(f"{method} {url} returned {status}: {body.decode()}")
        return json.loads(body) if body else None

    def state(self) -> dict[str, Any]:
        """Return every series in the JSON shape of snapshotter_metrics."""
        return dict(self._control("state", None, "GET"))

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace every series with those of state."""
        self._control("state", state, "PUT")

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge or counter series, creating it when absent."""
        self._control("set", {"name": name, "labels": labels, "value": value})

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        """Add value to a series, starting from 0 when absent."""
        self._control("inc", {"name": name, "labels": labels, "value": value})

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Add one observation to a histogram series."""
        self._control("observe", {"name": name, "labels": labels, "value": value})

    def set_histogram(
        self,
        name: str,
        *,
        bucket_counts: list[int] | None = None,
        total: float = 0.0,
        counters: list[int] | None = None,
        **labels: str,
    ) -> None:
        """Set a histogram series.

        Give either bucket_counts (per bucket plus the +Inf-only count) and
        total (the _sum value), or counters (nydusd's one counter per
        bucket, which the snapshotter turns into a histogram).
        """
        payload: dict[str, Any] = {"name": name, "labels": labels}
        if counters is not None:
            payload["counters"] = counters
        else:
            payload["bucket_counts"] = bucket_counts
            payload["sum"] = total
        self._control("histogram", payload)

    def remove(self, name: str | None = None, **labels: str) -> int:
        """Remove matching labelled series and return how many went.

        ``remove(image_ref=r)`` drops every series of image r in every
        family, and ``remove("nydusd_read_hits")`` drops all of that family.
        """
        payload: dict[str, Any] = {"labels": labels}
        if name is not None:
            payload["name"] = name
        return int(self._control("remove", payload)["removed"])

    def restart(self) -> None:
        """Act as a restarted snapshotter: labelled series gone, counters back to 0."""
        self._control("restart", None)
