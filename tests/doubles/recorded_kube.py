"""Replay of cluster pods and events recorded from the test kube-apiserver.

Screen snapshots must not change from run to run, so the pods screen reads
a double of the pod watch that replays tests/samples/kube instead of a live
API server. Record again after the pods of test_kube_api change:

    python tests/doubles/recorded_kube.py tests/samples/kube
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from nydus_console.diagnose import default_matcher
from nydus_console.kube.pods import attach_events, match_pod, parse_pod
from nydus_console.kube.watch import PodUpdate

RECORDED = Path(__file__).parent.parent / "samples" / "kube"
NAMESPACE = "shop"


class RecordedPodWatch:
    """Yield a "changed" update per recorded pod, then "synced", then wait."""

    def __init__(self, directory: Path = RECORDED) -> None:
        self.pods = json.loads((directory / "pods.json").read_text())["items"]
        self.events = json.loads((directory / "events.json").read_text())["items"]
        self._stop = threading.Event()

    def updates(self) -> Iterator[PodUpdate]:
        for raw in self.pods:
            report = parse_pod(raw)
            attach_events([report], self.events)
            match_pod(report, default_matcher())
            yield PodUpdate("changed", report)
        yield PodUpdate("synced")
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


def record(directory: Path) -> None:
    """Write the pods and events of test_kube_api's failing pods to directory."""
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from test_kube_api import write_failing_pods
    from testbed.kube import ClusterWriter, KubeApiServer

    with KubeApiServer(Path(tempfile.mkdtemp(prefix="nc-kube-"))) as server:
        writer = ClusterWriter(server)
        writer.namespace(NAMESPACE)
        write_failing_pods(writer, NAMESPACE)
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("pods", "events"):
            found = server.request("GET", f"/api/v1/namespaces/{NAMESPACE}/{name}")
            (directory / f"{name}.json").write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    record(Path(sys.argv[1]))
