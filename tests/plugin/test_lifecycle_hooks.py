"""The lifecycle hooks (``backupkit_before_run``, ``backupkit_after_run``,
``backupkit_on_failure``) and each engine's own plugin manager."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import attrs
import pytest
from plugin_helpers import _autoload_on, _NullSource, _Registers, files_config  # noqa: F401

import backupkit
from backupkit.errors import SourceError
from backupkit.plugin import Writer
from backupkit.testing.fakes import HookRecorder


# -- lifecycle hooks -------------------------------------------------------------------------
def test_lifecycle_hooks_see_a_successful_run(tmp_path: Path) -> None:
    recorder = HookRecorder(only=HookRecorder.LIFECYCLE)
    engine = backupkit.Engine.from_config(
        files_config(tmp_path, str(tmp_path / "sink"), tags=["t1"]), plugins=[recorder]
    )
    manifest = engine.backup(reason="test")
    assert recorder.names == ["before_run", "after_run"]
    run = recorder.calls[0][1]
    assert (run.set_name, run.kind, run.reason, run.run_id) == ("app", "full", "test", manifest.id)
    assert run.sink == str(tmp_path / "sink")
    assert recorder.of("after_run") == [(run, manifest)]


@attrs.frozen
class _FailingSource(_NullSource):
    id: ClassVar[str] = "failing-test"

    def backup(self, out: Writer, ctx: backupkit.plugin.BackupContext) -> None:
        out.write(b"x" * 100_000)
        raise SourceError("the dump command died")


def test_on_failure_sees_the_error_and_the_catalog_is_unchanged(tmp_path: Path) -> None:
    recorder = HookRecorder(only=HookRecorder.LIFECYCLE)
    config = files_config(tmp_path, str(tmp_path / "sink"))
    config["sets"]["app"]["sources"].append({"type": "failing-test"})
    engine = backupkit.Engine.from_config(config, plugins=[recorder, _Registers(_FailingSource)])
    with pytest.raises(SourceError, match="the dump command died"):
        engine.backup()
    assert recorder.names == ["before_run", "on_failure"]
    ((run, error),) = recorder.of("on_failure")
    assert run == recorder.calls[0][1]
    assert isinstance(error, SourceError)
    assert engine.catalog().to_records() == []
    tiers = [tmp_path / "sink" / t for t in ("daily", "weekly", "monthly")]
    assert [p for t in tiers for p in t.iterdir()] == []  # the committed artifact is gone


class _BrokenNotifier:
    @backupkit.hookimpl
    def backupkit_on_failure(self, run: backupkit.plugin.RunInfo, error: BaseException) -> None:
        raise RuntimeError("the notifier is down")


def test_a_failing_on_failure_hook_does_not_hide_the_real_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = files_config(tmp_path, str(tmp_path / "sink"))
    config["sets"]["app"]["sources"].append({"type": "failing-test"})
    plugins = [_BrokenNotifier(), _Registers(_FailingSource)]
    engine = backupkit.Engine.from_config(config, plugins=plugins)
    with pytest.raises(SourceError, match="the dump command died"):
        engine.backup()
    assert "the notifier is down" in caplog.text


class _MaintenanceWindow:
    """A plugin vetoing every run, as an outside package would write one."""

    @backupkit.hookimpl
    def backupkit_before_run(self, run: backupkit.plugin.RunInfo) -> None:
        raise RuntimeError("maintenance window")


def test_before_run_can_veto_a_run_before_anything_is_written(tmp_path: Path) -> None:
    recorder = HookRecorder(only=HookRecorder.LIFECYCLE)
    engine = backupkit.Engine.from_config(  # pluggy calls the last registered first
        files_config(tmp_path, str(tmp_path / "sink")), plugins=[_MaintenanceWindow(), recorder]
    )
    with pytest.raises(RuntimeError, match="maintenance window"):
        engine.backup()
    assert recorder.names == ["before_run", "on_failure"]
    assert not (tmp_path / "sink").exists()


def test_each_engine_has_its_own_plugin_manager(tmp_path: Path) -> None:
    recorder = HookRecorder()
    config = files_config(tmp_path, str(tmp_path / "sink"))
    with_recorder = backupkit.Engine.from_config(config, plugins=[recorder])
    without = backupkit.Engine.from_config(config)
    assert with_recorder.plugins.manager is not without.plugins.manager
    without.backup()
    assert recorder.calls == []
