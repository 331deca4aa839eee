"""Failing pods, their events and the known Nydus failures they show.

A pod is failing when a container waits for a failure reason
(CreateContainerError, ImagePullBackOff and the like), or when the pod is not
running and has Warning events (FailedCreatePodSandBox, Failed ...). Each
failing pod is written as the lines `kubectl get pods` and `kubectl describe
pod` would show (its status row, each container's state, each event), and
those lines are matched against the diagnose signatures as the `events`
source. A pod is nydus-related when a signature matches or a line names
nydus. Pods are grouped by node, and each node's matches fold into findings
with the recovery runbook.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nydus_console.configs import mask_secrets, may_contain_secret
from nydus_console.diagnose import SignatureMatch, SignatureMatcher, default_matcher
from nydus_console.diagnose.fold import Detections
from nydus_console.findings import Finding, Status, worst

EVENTS_SOURCE = "events"
UNSCHEDULED = "(no node)"
FAILING_REASONS = frozenset(
    {
        "CreateContainerError",
        "CreateContainerConfigError",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "RunContainerError",
        "StartError",
        "CrashLoopBackOff",
    }
)
# Events kept per pod, newest last.
MAX_EVENTS = 20


@dataclass(frozen=True)
class PodEvent:
    type: str
    reason: str
    message: str
    count: int = 1
    component: str = ""
    last_seen: str = ""

    def line(self) -> str:
        """The event as `kubectl describe pod` lists it."""
        count = f" (x{self.count})" if self.count > 1 else ""
        source = self.component or "-"
        return f"{self.type}  {self.reason}{count}  {source}  {self.message}"


@dataclass(frozen=True)
class ContainerState:
    """A container's state: waiting, running or terminated, with its reason."""

    name: str
    init: bool
    state: str
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    restarts: int = 0

    @property
    def failing(self) -> bool:
        if self.state == "waiting":
            return self.reason in FAILING_REASONS
        return self.state == "terminated" and bool(self.exit_code) and self.init

    def line(self) -> str:
        section = "Init Containers" if self.init else "Containers"
        text = f"{section} {self.name}: {self.state}"
        if self.reason:
            text += f" {self.reason}"
        if self.exit_code is not None:
            text += f" (exit code {self.exit_code})"
        return f"{text}: {self.message}" if self.message else text


@dataclass
class PodReport:
    """One pod, its containers and events, and the signatures it matched."""

    namespace: str
    name: str
    node: str
    phase: str
    status: str
    ready: str
    restarts: int
    uid: str = ""
    containers: list[ContainerState] = field(default_factory=list)
    events: list[PodEvent] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    nydus_related: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def failing(self) -> bool:
        """Whether a container waits for a failure reason, or the pod has not
        started and has Warning events. Events outlive their cause (by
        kube-apiserver's --event-ttl, 1 h by default), so the events of a pod
        that runs now do not count."""
        if any(c.failing for c in self.containers):
            return True
        if self.phase in ("Running", "Succeeded"):
            return False
        return any(e.type == "Warning" for e in self.events)

    def lines(self) -> list[str]:
        """The status row, the container states and the events, secrets masked."""
        row = (
            f"{self.namespace}  {self.name}  {self.ready}  {self.status}  "
            f"{self.restarts}  {self.node or '<none>'}"
        )
        texts = [row] + [c.line() for c in self.containers if c.state != "running"]
        texts += [e.line() for e in self.events]
        return [mask_secrets(t) if may_contain_secret(t) else t for t in texts]

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "node": self.node,
            "phase": self.phase,
            "status": self.status,
            "ready": self.ready,
            "restarts": self.restarts,
            "nydus_related": self.nydus_related,
            "signatures": list(self.signatures),
            "lines": self.lines(),
        }


@dataclass
class NodePods:
    """The failing pods of one node and the findings their lines gave."""

    node: str
    pods: list[PodReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return (
            worst([f.status for f in self.findings])
            if self.findings
            else (Status.WARN if self.pods else Status.OK)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "status": str(self.status),
            "pods": [p.to_dict() for p in self.pods],
            "findings": [f.to_dict() for f in self.findings],
        }


# -- parsing ---------------------------------------------------------------------


def parse_pod(raw: dict[str, Any]) -> PodReport:
    metadata = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    inits = [_container(c, True) for c in status.get("initContainerStatuses") or []]
    mains = [_container(c, False) for c in status.get("containerStatuses") or []]
    ready = sum(1 for c in status.get("containerStatuses") or [] if c.get("ready"))
    total = len(spec.get("containers") or []) or len(mains)
    return PodReport(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        node=str(spec.get("nodeName", "") or ""),
        phase=str(status.get("phase", "") or ""),
        status=pod_status(raw, inits, mains),
        ready=f"{ready}/{total}",
        restarts=sum(c.restarts for c in mains),
        containers=inits + mains,
    )


def _container(raw: dict[str, Any], init: bool) -> ContainerState:
    state = raw.get("state") or {}
    name = str(raw.get("name", ""))
    restarts = int(raw.get("restartCount", 0) or 0)
    for kind in ("waiting", "terminated"):
        detail = state.get(kind)
        if isinstance(detail, dict):
            code = detail.get("exitCode") if kind == "terminated" else None
            return ContainerState(
                name,
                init,
                kind,
                str(detail.get("reason", "") or ""),
                str(detail.get("message", "") or ""),
                int(code) if code is not None else None,
                restarts,
            )
    return ContainerState(name, init, "running", restarts=restarts)


def pod_status(
    raw: dict[str, Any], inits: list[ContainerState], mains: list[ContainerState]
) -> str:
    """The STATUS column of `kubectl get pods`."""
    metadata = raw.get("metadata") or {}
    status = raw.get("status") or {}
    if metadata.get("deletionTimestamp"):
        return "Terminating"
    reason = str(status.get("reason") or status.get("phase") or "Unknown")
    init_total = len((raw.get("spec") or {}).get("initContainers") or []) or len(inits)
    for done, container in enumerate(inits):
        if container.state == "terminated" and container.exit_code == 0:
            continue
        if container.state == "terminated":
            return f"Init:{container.reason or 'Error'}"
        if container.state == "waiting" and container.reason not in (
            "",
            "PodInitializing",
        ):
            return f"Init:{container.reason}"
        return f"Init:{done}/{init_total}"
    for container in reversed(mains):
        if container.state == "waiting" and container.reason:
            reason = container.reason
        elif container.state == "terminated" and container.reason:
            reason = container.reason
    return reason


def parse_event(raw: dict[str, Any]) -> PodEvent:
    source = raw.get("source") or {}
    component = source.get("component") or raw.get("reportingComponent") or ""
    last = raw.get("lastTimestamp") or raw.get("eventTime") or ""
    return PodEvent(
        type=str(raw.get("type", "") or ""),
        reason=str(raw.get("reason", "") or ""),
        message=str(raw.get("message", "") or "").strip(),
        count=int(raw.get("count", 1) or 1),
        component=str(component),
        last_seen=str(last or (raw.get("metadata") or {}).get("creationTimestamp", "")),
    )


def event_key(raw: dict[str, Any]) -> tuple[str, str]:
    """The (namespace, name) of the pod an event is about, or ("", "")."""
    involved = raw.get("involvedObject") or {}
    if involved.get("kind") != "Pod":
        return "", ""
    return str(involved.get("namespace", "")), str(involved.get("name", ""))


# -- scanning ---------------------------------------------------------------------


def attach_events(pods: Iterable[PodReport], events: Iterable[dict[str, Any]]) -> None:
    """Give each pod its events, oldest first, at most MAX_EVENTS."""
    by_key: dict[tuple[str, str], list[tuple[str, PodEvent]]] = {}
    for raw in events:
        key = event_key(raw)
        if key[1]:
            event = parse_event(raw)
            by_key.setdefault(key, []).append((event.last_seen, event))
    for pod in pods:
        found = sorted(by_key.get((pod.namespace, pod.name), []), key=lambda x: x[0])
        pod.events = [event for _, event in found][-MAX_EVENTS:]


def scan_pods(
    raw_pods: Iterable[dict[str, Any]],
    raw_events: Iterable[dict[str, Any]],
    *,
    include_all: bool = False,
    matcher: SignatureMatcher | None = None,
) -> list[NodePods]:
    """Return the failing pods grouped by node, nydus-related ones unless include_all.

    Nodes come in name order, pods without a node last.
    """
    matcher = matcher or default_matcher()
    pods = [parse_pod(raw) for raw in raw_pods]
    attach_events(pods, raw_events)
    groups: dict[str, NodePods] = {}
    detections: dict[str, Detections] = {}
    for pod in pods:
        if not pod.failing:
            continue
        matches = match_pod(pod, matcher)
        if not (pod.nydus_related or include_all):
            continue
        node = pod.node or UNSCHEDULED
        groups.setdefault(node, NodePods(node)).pods.append(pod)
        found = detections.setdefault(node, Detections(matcher.catalogue))
        for match in matches:
            found.add_match(match)
    for node, group in groups.items():
        group.findings = detections[node].findings()
    return [groups[k] for k in sorted(groups, key=lambda n: (n == UNSCHEDULED, n))]


def match_pod(pod: PodReport, matcher: SignatureMatcher) -> list[SignatureMatch]:
    """Match the pod's lines; record its signatures and whether it is nydus-related."""
    location = f"pod {pod.key}"
    matches: list[SignatureMatch] = []
    lines = pod.lines()
    for number, text in enumerate(lines, 1):
        matches += matcher.match_line(
            text, EVENTS_SOURCE, shown=text, location=location, line_number=number
        )
    pod.signatures = list(dict.fromkeys(m.signature.id for m in matches))
    pod.nydus_related = bool(matches) or any("nydus" in t.lower() for t in lines)
    return matches


def scan_cluster(
    client: Any, namespace: str = "", *, include_all: bool = False
) -> list[NodePods]:
    """List pods and pod events (blocking) and return scan_pods of them."""
    pods = client.list_pods(namespace).get("items") or []
    events = client.list_events(namespace, "involvedObject.kind=Pod").get("items") or []
    return scan_pods(pods, events, include_all=include_all)


def pod_findings(
    pod: PodReport, matcher: SignatureMatcher | None = None
) -> list[Finding]:
    """Return the findings of one pod's lines, failures first."""
    matcher = matcher or default_matcher()
    found = Detections(matcher.catalogue)
    for match in match_pod(pod, matcher):
        found.add_match(match)
    return found.findings()
