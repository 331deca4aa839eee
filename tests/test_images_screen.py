"""The image screen: inspect through a real registry, errors, and a snapshot.

The snapshot shows a report built from fixed manifest documents, so that
the registry's random port does not reach the picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import events
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from nydus_console.audit import AuditLog
from nydus_console.images.analysis import (
    BLOB_ANNOTATION,
    BOOTSTRAP_ANNOTATION,
    FS_VERSION_ANNOTATION,
    NYDUS_BLOB,
    analyse_manifest,
)
from nydus_console.images.inspect import InspectReport, ReferrerCheck
from nydus_console.images.registry import OCI_MANIFEST
from nydus_console.inventory import Inventory
from nydus_console.screens.app import NydusConsoleApp
from nydus_console.screens.images import ImageInspected, ImageScreen
from nydus_console.screens.textbox import TextBox

SIZE = (130, 30)
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def make_app(tmp_path: Path) -> NydusConsoleApp:
    inventory = Inventory(nodes=[], source="test")
    return NydusConsoleApp(
        inventory, refresh_seconds=0, audit=AuditLog(tmp_path / "audit.jsonl")
    )


def text_of(screen: ImageScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def open_screen(pilot: Pilot[Any], screen: ImageScreen) -> ImageScreen:
    await pilot.app.push_screen(screen)
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    return screen


async def test_nydus_image_read_from_the_registry(
    start_registry: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    registry = start_registry()
    registry.push_nydus_image("team/app", "v1-nydus")
    reference = f"{registry.host}/team/app:v1-nydus"
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, ImageScreen(reference, insecure=True))
        assert screen.report is not None
        summary = text_of(screen, "#image-summary")
        assert "nydus       yes, fs version 6" in summary
        assert screen.query_one(DataTable).row_count == 3
        assert f"read {reference}" in text_of(screen, "#image-status")


async def test_invalid_reference_is_named_in_the_status(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, ImageScreen())
        screen.query_one(Input).value = "team/$(id)"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = text_of(screen, "#image-status")
        assert "'team/$(id)' is not a valid image reference" in status
        assert screen.report is None


async def test_https_switch_and_palette_entry(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "fleet: inspect an image" in titles
        screen = await open_screen(pilot, ImageScreen())
        assert "over HTTPS" in text_of(screen, "#image-status")
        await pilot.press("ctrl+t")
        assert screen.insecure
        assert "over plain HTTP" in text_of(screen, "#image-status")


async def test_errors_name_the_screen_keys_not_the_options(
    start_registry: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    plain = start_registry()
    plain.push_nydus_image("team/app", "v1-nydus")
    locked = start_registry("basic")
    locked.push_nydus_image("team/app", "v1-nydus")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(
            pilot, ImageScreen(f"{plain.host}/team/app:v1-nydus")
        )
        status = text_of(screen, "#image-status")
        assert f"cannot reach {plain.host} over HTTPS" in status
        assert "press ctrl+t to switch to plain HTTP" in status
        assert "--insecure" not in status
        await pilot.press("ctrl+t")
        screen.query_one(Input).value = f"{locked.host}/team/app:v1-nydus"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = text_of(screen, "#image-status")
        assert f"docker login {locked.host}` on this machine, then" in status
        assert "--password-stdin" not in status


async def test_reference_field_keeps_fast_editing_keys_in_order(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, ImageScreen())
        box = screen.query_one("#image-reference", Input)
        assert isinstance(box, TextBox)
        await pilot.press(*"old/app")
        # ctrl+u, then the new text, then a backspace, queued all at once.
        keys = [("ctrl+u", None), *[(c, c) for c in "team/appx"], ("backspace", None)]
        for key, char in keys:
            app.post_message(events.Key(key, char))
        await pilot.pause(0.3)
        assert box.value == "team/app"


def test_every_image_binding_has_an_id() -> None:
    for binding in ImageScreen.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.id


def recorded_report() -> InspectReport:
    def digest(char: str) -> str:
        return "sha256:" + char * 64

    layers = [
        (NYDUS_BLOB, 83_528_010, {BLOB_ANNOTATION: "true"}),
        (NYDUS_BLOB, 40_712_206, {BLOB_ANNOTATION: "true"}),
        (
            OCI_LAYER,
            273_320,
            {BOOTSTRAP_ANNOTATION: "true", FS_VERSION_ANNOTATION: "6"},
        ),
    ]
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": [
            {"mediaType": t, "digest": digest(str(i)), "size": s, "annotations": a}
            for i, (t, s, a) in enumerate(layers, start=1)
        ],
    }
    manifest = analyse_manifest(document, digest("d"), OCI_MANIFEST)
    return InspectReport(
        "registry.example.com/team/app:v1-nydus",
        digest("d"),
        OCI_MANIFEST,
        1367,
        manifests=[manifest],
        referrers=[],
    )


def test_snapshot_image_screen(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_screen(pilot, ImageScreen())
        screen.query_one(Input).value = "registry.example.com/team/app:v1-nydus"
        screen.inspected(ImageInspected(recorded_report()))
        screen.query_one(DataTable).focus()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_referrer_summary_names_the_source() -> None:
    from nydus_console.screens.images import summary_lines

    report = recorded_report()
    report.manifests[0].is_nydus = False
    report.referrers = [
        ReferrerCheck(
            "sha256:" + "e" * 64,
            "referrers tag sha256-eee (the registry has no referrers API: 404)",
        )
    ]
    lines = summary_lines(report)
    assert "nydus       no" in lines
    assert lines[-1].startswith("referrers   nydus: none, read from referrers tag")
