"""Messages that workers post back to the UI, named for what happened."""

from __future__ import annotations

from textual.message import Message

from nydus_console.fleet import NodeReport
from nydus_console.logs.records import LogRecord
from nydus_console.runbooks.report import PlannedStep, RunReport, StepResult


class NodeProbed(Message):
    """A probe of one node finished, with findings or with the reason it failed."""

    def __init__(self, report: NodeReport) -> None:
        super().__init__()
        self.report = report


class HostKeyAccepted(Message):
    """The operator trusted a node's host key; the node should be probed again."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node


class ActionFinished(Message):
    """An action on a node ran (or failed to start); `error` describes a failure."""

    def __init__(
        self, node: str, action: str, exit_status: int | None, error: str = ""
    ) -> None:
        super().__init__()
        self.node = node
        self.action = action
        self.exit_status = exit_status
        self.error = error


class LogLinesRead(Message):
    """A log follower read a batch of records from source number `source`."""

    def __init__(self, source: int, records: list[LogRecord]) -> None:
        super().__init__()
        self.source = source
        self.records = records


class LogSourceChecked(Message):
    """The state of a log source changed: missing, unreadable, ended and so on."""

    def __init__(self, source: int, state: str, detail: str = "") -> None:
        super().__init__()
        self.source = source
        self.state = state
        self.detail = detail


class IncidentReportWritten(Message):
    """The incident report was written to `path`, or `error` describes the failure."""

    def __init__(self, path: str, error: str = "") -> None:
        super().__init__()
        self.path = path
        self.error = error


class RunStepPlanned(Message):
    """A multi-node run resolved its next step on `node`."""

    def __init__(self, node: str, planned: PlannedStep) -> None:
        super().__init__()
        self.node = node
        self.planned = planned


class RunStepFinished(Message):
    """A step of a multi-node run ended on `node` with `result`."""

    def __init__(self, node: str, planned: PlannedStep, result: StepResult) -> None:
        super().__init__()
        self.node = node
        self.planned = planned
        self.result = result


class RunNoteAdded(Message):
    """A multi-node run added a note about `node`, such as a skipped step."""

    def __init__(self, node: str, text: str) -> None:
        super().__init__()
        self.node = node
        self.text = text


class NodeRunEnded(Message):
    """The runbook ended on one node, or was passed over there."""

    def __init__(self, report: RunReport) -> None:
        super().__init__()
        self.report = report


class MultiRunFinished(Message):
    """Every node of a multi-node run has its report."""

    def __init__(self, reports: list[RunReport]) -> None:
        super().__init__()
        self.reports = reports
