"""Pilot and snapshot tests of the setup screen with a recorded survey.

The survey is built in the test (a containerd 1.6 node with the Nydus
binaries installed but nothing configured), and the plan comes from the
real planner, so no command reaches a node. The whole screen on a booted
node is in test_setup_screen_nspawn.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_screens import SIZE, make_app
from test_setup import survey
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, Switch

from nydus_console.inventory import NodeSpec
from nydus_console.screens.setup import SetupScreen
from nydus_console.setup.answers import Answers, resolve
from nydus_console.setup.plan import SetupPlan, build_plan
from nydus_console.setup.release import Binary
from nydus_console.setup.session import NodeSetup
from nydus_console.setup.survey import Survey
from nydus_console.transport.base import ErrorKind, TransportError

NODE = "nc-node2"
INSTALLED = {"containerd-nydus-grpc": "a" * 64, "nydusd": "b" * 64}


class RecordedSetup(NodeSetup):
    """Plans from a recorded survey; applying is not part of these tests."""

    def __init__(self, spec: NodeSpec) -> None:
        super().__init__(spec, None, None)  # type: ignore[arg-type]
        self.answers: list[Answers] = []

    async def survey(self) -> Survey:
        self.survey_result = survey(node=NODE, binaries=dict(INSTALLED))
        return self.survey_result

    async def plan(self, answers: Answers, binaries: dict[str, Binary]) -> SetupPlan:
        assert self.survey_result is not None
        self.answers.append(answers)
        settings = resolve(answers, self.survey_result)
        return build_plan(
            self.spec, self.survey_result, settings, binaries, None, set()
        )


async def open_setup(pilot: Pilot[Any]) -> tuple[SetupScreen, RecordedSetup]:
    app = pilot.app
    await app.workers.wait_for_complete()
    setup = RecordedSetup(app.fleet.specs[NODE])  # type: ignore[attr-defined]
    screen = SetupScreen(NODE, setup)
    app.push_screen(screen)
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    return screen, setup


async def plan_with_prometheus(pilot: Pilot[Any], screen: SetupScreen) -> None:
    screen.query_one("#setup-prometheus", Switch).value = True
    await pilot.press("p")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    pilot.app.clear_notifications()


def text_of(screen: SetupScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_screen_plans_with_form_answers(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, setup = await open_setup(pilot)
        assert screen.stage == "answers"
        assert "containerd: 1.6.20" in text_of(screen, "#setup-survey")
        assert not screen.check_action("apply", ())
        await plan_with_prometheus(pilot, screen)
        assert setup.answers[-1].prometheus
        assert screen.plan is not None
        table = screen.query_one(DataTable)
        rows = [str(key.value) for key in table.rows]
        assert rows == [step.id for step in screen.plan.steps]
        assert "write:/etc/containerd/config.toml" in rows
        assert screen.check_action("apply", ())
        table.move_cursor(row=table.get_row_index("write:/etc/nydus/config.toml"))
        await pilot.pause()
        detail = text_of(screen, "#setup-detail")
        assert '+address = ":9110"' in detail
        await pilot.press("a")
        await pilot.pause()
        modal = app.screen
        assert modal.focused is not None and modal.focused.id == "setup-confirm-cancel"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        assert screen.outcome is None
    assert app.gate.audit.entries() == []


def test_snapshot_setup_screen(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen, _ = await open_setup(pilot)
        await plan_with_prometheus(pilot, screen)
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("write:/etc/containerd/config.toml"))
        await pilot.pause()

    app = make_app(tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_setup_survey_and_answers(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen, _ = await open_setup(pilot)
        assert screen.stage == "answers"
        pilot.app.clear_notifications()
        await pilot.pause()

    app = make_app(tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_setup_confirmation(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen, _ = await open_setup(pilot)
        await plan_with_prometheus(pilot, screen)
        await pilot.press("a")
        await pilot.pause()

    app = make_app(tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


class UnreachableSetup(RecordedSetup):
    async def survey(self) -> Survey:
        raise TransportError(ErrorKind.REFUSED, f"connection to {NODE} refused")


async def test_screen_reports_unreachable_node(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        screen = SetupScreen(NODE, UnreachableSetup(app.fleet.specs[NODE]))
        app.push_screen(screen)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.stage == "survey"
        assert f"connection to {NODE} refused" in screen.message
        assert not screen.check_action("plan", ())
        assert not screen.check_action("apply", ())


class MissingSetup(RecordedSetup):
    """A node without the Nydus binaries."""

    async def survey(self) -> Survey:
        self.survey_result = survey(node=NODE, binaries={})
        return self.survey_result


async def test_enter_in_the_tarball_field_plans(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        screen = SetupScreen(NODE, MissingSetup(app.fleet.specs[NODE]))
        app.push_screen(screen)
        await pilot.pause()
        await app.workers.wait_for_complete()
        screen.query_one("#setup-tarballs", Input).focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.message.startswith("No plan: containerd-nydus-grpc, nydusd")
        assert '"release tarballs on this machine"' in screen.message
        assert "--tarball" not in screen.message


async def test_fields_are_visible_and_in_the_same_order(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        chains = []
        for _ in range(2):
            screen, _ = await open_setup(pilot)
            assert screen.focused is screen.query_one(DataTable)
            chains.append([widget.id for widget in screen.focus_chain])
            field = screen.query_one("#setup-tarballs").region
            column = screen.query_one("#setup-answers").region
            assert column.contains_region(field), (field, column)
            await pilot.press("escape")
            await pilot.pause()
        assert chains[0] == chains[1]
        assert chains[0][0] == "setup-tarballs"


async def test_read_only_refuses_apply_up_front(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.gate.read_only = True
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await open_setup(pilot)
        await plan_with_prometheus(pilot, screen)
        assert screen.check_action("apply", ())
        await pilot.press("a")
        await pilot.pause()
        assert app.screen is screen
        [note] = list(app._notifications)
        assert "read-only mode refuses every change" in note.message
    [entry] = app.gate.audit.entries()
    assert entry["outcome"] == "refused"
    assert entry["action"].startswith("setup: apply ")
