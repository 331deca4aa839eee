"""Image screen: inspect an image in its registry, as `nydus-console inspect`.

The reference typed in the input is checked with the image reference grammar
before any request. The registry is read from this machine, with the
credentials of the local docker config, by the `inspect image` worker.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from nydus_console.images.credentials import CredentialsError, load_docker_config
from nydus_console.images.inspect import InspectReport, inspect_image
from nydus_console.images.reference import BadReference, parse_reference
from nydus_console.images.registry import Controls, RegistryError
from nydus_console.screens.textbox import TextBox

# Errors name this screen's keys, not the command line's options.
SCREEN_CONTROLS = Controls(
    insecure="press ctrl+t to switch to plain HTTP",
    login=" on this machine, then press ctrl+r",
)
LAYER_COLUMNS = (
    ("platform", "Platform"),
    ("index", "#"),
    ("size", "Size"),
    ("media_type", "Media type"),
    ("digest", "Digest"),
    ("role", "Nydus"),
)


class ImageInspected(Message):
    """The registry returned the image's manifests."""

    def __init__(self, report: InspectReport) -> None:
        super().__init__()
        self.report = report


class ImageInspectionFailed(Message):
    """The reference was invalid, or the registry could not be read."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


def summary_lines(report: InspectReport) -> list[str]:
    """Return the summary above the layer table."""
    lines = [
        f"image       {report.reference}",
        f"digest      {report.digest}",
        f"media type  {report.media_type}",
    ]
    if report.platforms:
        shown = ", ".join(
            p.platform + (" (nydus)" if p.marked_nydus else "")
            for p in report.platforms
        )
        lines.append(f"platforms   {shown}")
    versions = sorted({m.fs_version or "?" for m in report.manifests if m.is_nydus})
    nydus = f"yes, fs version {', '.join(versions)}" if versions else "no"
    lines.append(f"nydus       {nydus}")
    for check in report.referrers:
        found = ", ".join(r.digest[:19] for r in check.nydus) or "none"
        lines.append(f"referrers   nydus: {found}, read from {check.source}")
    return lines


class ImageScreen(Screen[None]):
    """Manifest, platforms, layers and Nydus facts of one image."""

    BINDING_GROUP_TITLE = "Image"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="images.back"),
        Binding("ctrl+t", "toggle_insecure", "HTTP/HTTPS", id="images.insecure"),
        Binding("ctrl+r", "inspect", "Inspect again", id="images.inspect"),
    ]

    def __init__(self, reference: str = "", *, insecure: bool = False) -> None:
        super().__init__()
        self.reference = reference
        self.insecure = insecure
        self.report: InspectReport | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield TextBox(
            self.reference,
            placeholder="image reference, such as registry.example.com/team/app:v1",
            id="image-reference",
        )
        yield Static(id="image-status")
        yield Static(id="image-summary")
        yield DataTable(id="image-layers", cursor_type="row", zebra_stripes=True)
        yield Static(id="image-notes")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "image"
        table = self.query_one(DataTable)
        for key, label in LAYER_COLUMNS:
            table.add_column(label, key=key)
        self.query_one(Input).focus()
        self._status("type a reference and press enter")
        if self.reference:
            self.action_inspect()

    def _status(self, text: str) -> None:
        scheme = "plain HTTP" if self.insecure else "HTTPS"
        line = Text(f"{text}  |  registry over {scheme} (ctrl+t switches)")
        self.query_one("#image-status", Static).update(line)

    def action_toggle_insecure(self) -> None:
        self.insecure = not self.insecure
        self._status("press enter or ctrl+r to inspect again")

    @on(Input.Submitted, "#image-reference")
    def submitted(self, event: Input.Submitted) -> None:
        self.reference = event.value.strip()
        self.action_inspect()

    def action_inspect(self) -> None:
        if not self.reference:
            self._status("type a reference first")
            return
        self._status(f"reading {self.reference}...")
        self._inspect(self.reference, self.insecure)

    @work(group="images", exclusive=True, exit_on_error=False, description="inspect")
    async def _inspect(self, text: str, insecure: bool) -> None:
        try:
            ref = parse_reference(text)
            credentials = load_docker_config().lookup(ref.domain)
            report = await inspect_image(
                ref,
                credentials=credentials,
                insecure=insecure,
                controls=SCREEN_CONTROLS,
            )
        except (BadReference, CredentialsError, RegistryError) as exc:
            self.post_message(ImageInspectionFailed(str(exc)))
            return
        self.post_message(ImageInspected(report))

    @on(ImageInspectionFailed)
    def failed(self, message: ImageInspectionFailed) -> None:
        self._status(message.text)

    @on(ImageInspected)
    def inspected(self, message: ImageInspected) -> None:
        self.show(message.report)
        self._status(f"read {message.report.reference}")

    def show(self, report: InspectReport) -> None:
        """Fill the summary, the layer table and the notes from a report."""
        self.report = report
        summary = "\n".join(summary_lines(report))
        self.query_one("#image-summary", Static).update(Text(summary))
        table = self.query_one(DataTable)
        table.clear()
        notes = list(report.notes)
        for manifest in report.manifests:
            platform = manifest.platform or "-"
            for number, layer in enumerate(manifest.layers, start=1):
                table.add_row(
                    platform,
                    str(number),
                    Text(f"{layer.size:,}", justify="right"),
                    layer.media_type,
                    layer.digest[:19],
                    Text(layer.role, style="bold" if layer.bootstrap else ""),
                )
            notes += [f"{platform}: {note}" for note in manifest.notes]
        self.query_one("#image-notes", Static).update(Text("\n".join(notes)))
