"""The engine must work without Textual, which only the UI imports."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys

import nydus_console


def engine_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(nydus_console.__path__, "nydus_console.")
        # __main__ would start the console when imported.
        if not info.name.startswith(("nydus_console.screens", "nydus_console.__main__"))
    ]


def test_engine_modules_found() -> None:
    names = engine_modules()
    assert "nydus_console.fleet" in names
    assert "nydus_console.transport.ssh" in names
    assert "nydus_console.checks.rules" in names


def test_engine_never_imports_textual() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {engine_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'nydus_console.screens'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_ui_does_import_textual() -> None:
    code = "import sys, nydus_console.screens.app; print('textual' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


def test_local_session_skips_asyncssh() -> None:
    code = (
        "import sys\n"
        "from nydus_console.cli import main, resolve_inventory, build_parser\n"
        "from nydus_console.fleet import Fleet\n"
        "Fleet(resolve_inventory(build_parser().parse_args([])))\n"
        "print('asyncssh' in sys.modules)\n"
    )
    env = dict(os.environ, XDG_CONFIG_HOME="/nonexistent-nydus-console-test")
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert result.stdout.strip() == "False"
