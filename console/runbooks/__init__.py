"""Recovery runbooks: data files under assets/runbooks/ and the one runner.

`load_runbooks()` reads and validates them, `RunbookRunner` plans and runs
one runbook on one node, and `run_on_nodes` runs it on several.
"""

from nydus_console.runbooks.loader import load_runbooks, parse_runbook
from nydus_console.runbooks.model import Runbook, RunbookError, Step
from nydus_console.runbooks.report import (
    Choice,
    Decision,
    PlannedStep,
    RunbookHooks,
    RunReport,
    RunStatus,
    StepResult,
    StepStatus,
)
from nydus_console.runbooks.runner import RunbookRunner, run_on_nodes

__all__ = [
    "Choice",
    "Decision",
    "PlannedStep",
    "RunReport",
    "RunStatus",
    "Runbook",
    "RunbookError",
    "RunbookHooks",
    "RunbookRunner",
    "Step",
    "StepResult",
    "StepStatus",
    "load_runbooks",
    "parse_runbook",
    "run_on_nodes",
]
