"""Helpers shared by the plugin-seam tests in this folder (once one file, test_plugins.py).

Other third-party plugins are either passed as objects (``plugins=[...]``) or
"installed" as a throwaway distribution on ``sys.path`` (:func:`install_plugin`).
A test file imports the fixtures it uses; ``_autoload_on`` is autouse, so every file
here imports it to run with entry points loading and nothing blocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import attrs
import pytest

import backupkit
from backupkit.plugin import Register, Writer
from backupkit.plugin.registry import BLOCK_ENV
from backupkit.plugins import AUTOLOAD_ENV


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points load, and nothing is blocked, unless a test says otherwise."""
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(BLOCK_ENV, raising=False)


def sqlite_config(db: Path, sink: Path, **source: Any) -> dict[str, Any]:
    return {
        "sets": {
            "app": {
                "sources": [{"type": "sqlite", "path": str(db), **source}],
                "compress": "zstd",
                "sink": str(sink),
            }
        }
    }


def files_config(tmp_path: Path, sink: Any, **set_options: Any) -> dict[str, Any]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "hello.txt").write_text("hello\n")
    body: dict[str, Any] = {
        "sources": [{"type": "filesystem", "name": "files", "paths": [str(data)]}]
    }
    if "transforms" not in set_options:
        body["compress"] = "none"
    return {"sets": {"app": {**body, "sink": sink, **set_options}}}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backupkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


@pytest.fixture
def install_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], Path]]:
    """Install a one-module distribution whose entry point is in group ``backupkit``.

    The entry point is named like the module, the distribution ``<module>-pkg``.
    Returns the directory to put on ``PYTHONPATH`` for a subprocess.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    installed: list[str] = []

    def install(module: str, code: str) -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(code))
        info = site / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-pkg\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[backupkit]\n{module} = {module}\n")
        installed.append(module)
        return site

    yield install
    for module in installed:
        sys.modules.pop(module, None)


@attrs.frozen
class _NullSource(backupkit.plugin.Source):
    id: ClassVar[str] = "null-test"

    def backup(self, out: Writer, ctx: backupkit.plugin.BackupContext) -> None:
        return None

    def restore(self, stream: BinaryIO, ctx: backupkit.plugin.RestoreContext) -> None:
        while stream.read(1 << 16):
            pass


class _Registers:
    """A plugin that registers whatever source classes it is given."""

    def __init__(self, *classes: Any) -> None:
        self.classes = classes

    @backupkit.hookimpl
    def backupkit_register_sources(self, register: Register) -> None:
        for cls in self.classes:
            register.source(cls)
