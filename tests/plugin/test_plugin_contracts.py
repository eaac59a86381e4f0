"""What the engine guarantees a third-party source, whatever the source does.

The plugins here are written as an outside package would write them and handed to
``Engine.from_config(..., plugins=[this module])``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import attrs
import pytest

import backupkit
from backupkit.errors import BackupkitError, RestoreError
from backupkit.plugin import BackupContext, Register, RestoreContext, Source, Writer
from backupkit.testing import fakes

HEADER = b"HEADER-16-BYTES!"


@attrs.frozen
class HeaderOnly(Source):
    """An incremental source that reads only the first 16 bytes of its parent's index."""

    id: ClassVar[str] = "headeronly"
    supports_incremental: ClassVar[bool] = True
    seen: ClassVar[list[bytes]] = []

    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        parent = ctx.parent_sidecar("index")
        if parent is not None:
            with parent:
                HeaderOnly.seen.append(parent.read(16))
        with ctx.open_sidecar("index") as index:
            index.write(HEADER + b"x" * 100_000)
        out.write(b"data")
        return None

    def restore(self, stream: BinaryIO, ctx: RestoreContext) -> None:
        stream.read()


@attrs.frozen
class Stuck(Source):
    """Writes a little, then waits on something that does not come (a stalled read)."""

    id: ClassVar[str] = "stuck"
    release: ClassVar[threading.Event] = threading.Event()

    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        out.write(b"x" * (1 << 20))  # one whole chunk: handed on at once, then nothing
        Stuck.release.wait(120)
        return None

    def restore(self, stream: BinaryIO, ctx: RestoreContext) -> None:
        stream.read()


@attrs.frozen
class TakesOnlyTheFull(Source):
    """A chain restore that stops after the first stream: a bug the engine must catch."""

    id: ClassVar[str] = "fullonly"
    supports_incremental: ClassVar[bool] = True

    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        parent = ctx.parent_sidecar("index")
        if parent is not None:
            with parent:
                parent.read()
        with ctx.open_sidecar("index") as index:
            index.write(b"i")
        out.write(ctx.kind.encode())
        return None

    def restore(self, stream: BinaryIO, ctx: RestoreContext) -> None:
        stream.read()

    def restore_chain(self, streams: Any, ctx: RestoreContext) -> None:
        next(streams).read()  # the full backup only


@backupkit.hookimpl
def backupkit_register_sources(register: Register) -> None:
    register.source(HeaderOnly)
    register.source(Stuck)
    register.source(TakesOnlyTheFull)


def engine_for(sink: Path | dict[str, Any], source: str, *plugins: object) -> backupkit.Engine:
    """Set ``app``: one uncompressed source *source* named ``db``, this module's sources."""
    return fakes.engine_for({"type": source, "name": "db"}, sink=sink, compress="none",
                            plugins=[sys.modules[__name__], *plugins])


def test_a_parent_sidecar_read_in_part_is_still_checked(tmp_path: Path) -> None:
    engine = engine_for(tmp_path / "sink", "headeronly")
    engine.backup("app")
    (index,) = (tmp_path / "sink").rglob("*.db.index")
    index.write_bytes(b"TAMPERED-HEADER!" + index.read_bytes()[16:])  # what the source reads

    assert [c.artifact for c in engine.verify().checks if not c.ok] == ["db.index"]
    # The incremental checks its parent's sidecars whole before it reads any: it does not
    # build on a damaged one, but runs as a full backup.
    assert engine.backup("app", kind="incremental").kind == "full"


def test_a_failed_backup_does_not_wait_for_a_source_that_never_writes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crash_helpers

    from backupkit.engine import store as store_module

    monkeypatch.setattr(store_module, "SOURCE_GRACE", 1)
    Stuck.release.clear()
    quota = {"type": "quota", "root": str(tmp_path / "sink"), "enospc_after": 0}
    engine = engine_for(quota, "stuck", crash_helpers)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            engine.backup("app")
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)  # a hang guard, far above the 1 s grace
    hung = worker.is_alive()
    Stuck.release.set()  # let the source thread end either way
    assert not hung, "the failed backup waited for its source"
    assert outcome and isinstance(outcome[0], BackupkitError)
    assert "the disk is full" in str(outcome[0])


def test_a_chain_restore_that_skips_backups_is_an_error(tmp_path: Path) -> None:
    engine = engine_for(tmp_path / "sink", "fullonly")
    engine.backup("app")
    engine.backup("app", kind="incremental")

    with pytest.raises(RestoreError, match="did not restore every backup of the chain"):
        engine.restore("latest", to=tmp_path / "out")


class Notifier:
    """Another team's plugin: records every notification."""

    calls: ClassVar[list[str]] = []

    @backupkit.hookimpl
    def backupkit_after_run(self, manifest: Any) -> None:
        Notifier.calls.append(f"after {manifest.id}")

    @backupkit.hookimpl
    def backupkit_on_failure(self, error: BaseException) -> None:
        Notifier.calls.append(f"failure {type(error).__name__}")


class Broken:
    """A plugin whose notifications raise."""

    @backupkit.hookimpl
    def backupkit_after_run(self) -> None:
        raise RuntimeError("webhook down")

    @backupkit.hookimpl
    def backupkit_on_failure(self) -> None:
        raise RuntimeError("webhook down")


def test_a_failing_notification_hook_does_not_silence_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from backupkit.errors import PluginError, SourceError

    Notifier.calls.clear()
    # Broken registered last: pluggy calls it first
    engine = engine_for(tmp_path / "sink", "headeronly", Notifier(), Broken())
    with caplog.at_level("WARNING", logger="backupkit"):
        with pytest.raises(
            PluginError,
            match=r"was stored, but the backupkit_after_run hook .* failed: RuntimeError: webhook down",
        ):
            engine.backup("app")
    assert len(Notifier.calls) == 1 and Notifier.calls[0].startswith("after ")
    assert len(engine.catalog()) == 1  # stored all the same

    broken_source = fakes.engine_for(tmp_path / "missing", sink=tmp_path / "sink2",
                                     plugins=[Notifier(), Broken()])
    with pytest.raises(SourceError):
        broken_source.backup("app")
    assert Notifier.calls[-1] == "failure SourceError"
    assert any("backupkit_on_failure hook of plugin" in r.getMessage() for r in caplog.records)


class BadUrlAnswer:
    @backupkit.hookimpl(tryfirst=True)
    def backupkit_sink_for_url(self, url: str) -> Any:
        return "memory" if url.startswith("odd://") else None


def test_a_sink_for_url_hook_with_a_malformed_answer_is_a_plugin_error(tmp_path: Path) -> None:
    from backupkit.errors import PluginError

    engine = backupkit.Engine.from_config(backupkit.Config(), plugins=[BadUrlAnswer()], env={})
    with pytest.raises(PluginError, match=r"answered 'odd://x' with str 'memory'; it must return"):
        engine.sink_for("odd://x")
