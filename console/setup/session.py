"""One node's setup from survey to verification, shared by the command and screen.

The steps keep their order: `survey` first, then `plan` with the answers and
the unpacked binaries, then `apply` and `verify`. Each reaches the node only
through its transport, and `apply` changes it only through the action gate.
"""

from __future__ import annotations

from nydus_console.actions import ActionGate
from nydus_console.inventory import NodeSpec
from nydus_console.setup.answers import Answers, Settings, resolve
from nydus_console.setup.apply import ApplyOutcome, Progress, SetupApplier
from nydus_console.setup.plan import (
    SetupPlan,
    build_plan,
    existing_directories,
    plan_directories,
)
from nydus_console.setup.release import Binary
from nydus_console.setup.state import SetupStateStore
from nydus_console.setup.survey import Survey, survey_node
from nydus_console.setup.verify import Verification, verify_node
from nydus_console.transport.base import Transport


class NodeSetup:
    """Survey, plan, apply and verify on one node."""

    def __init__(
        self,
        spec: NodeSpec,
        transport: Transport,
        gate: ActionGate,
        *,
        store: SetupStateStore | None = None,
    ) -> None:
        self.spec = spec
        self.transport = transport
        self.gate = gate
        self.store = store or SetupStateStore()
        self.survey_result: Survey | None = None
        self.settings: Settings | None = None

    @property
    def node(self) -> str:
        return self.spec.name

    async def survey(self) -> Survey:
        """Read the node; raise TransportError or SurveyError."""
        self.survey_result = await survey_node(self.spec, self.transport)
        return self.survey_result

    async def plan(self, answers: Answers, binaries: dict[str, Binary]) -> SetupPlan:
        """Raise AnswerError or PlanError when the node cannot be set up so."""
        survey = self.survey_result or await self.survey()
        self.settings = resolve(answers, survey)
        state = self.store.load(self.node)
        directories = await existing_directories(
            self.transport, plan_directories(self.settings)
        )
        return build_plan(
            self.spec, survey, self.settings, binaries, state, directories
        )

    async def apply(
        self, plan: SetupPlan, *, confirmed_by: str, progress: Progress
    ) -> ApplyOutcome:
        applier = SetupApplier(
            self.gate,
            self.spec,
            self.transport,
            confirmed_by=confirmed_by,
            store=self.store,
            progress=progress,
        )
        return await applier.apply(plan)

    async def verify(self, plan: SetupPlan) -> list[Verification]:
        return await verify_node(self.spec, self.transport, plan.survey, plan.settings)
