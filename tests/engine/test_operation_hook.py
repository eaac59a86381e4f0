"""The backupkit_operation hook: wrappers see every verb begin and end, with its result
or its error, and can stop it before it starts."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

import backupkit
from backupkit.engine.results import PruneResult, RestoreResult, VerifyResult
from backupkit.errors import PluginError, SourceError
from backupkit.plugin import Operation, hookimpl
from backupkit.testing.fakes import HookRecorder, engine_for


def engine(tmp_path: Path, *plugins: object, paths: list[str] | None = None) -> backupkit.Engine:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("alpha")
    source = {"type": "filesystem", "paths": paths or [str(src)]}
    return engine_for(source, sink=tmp_path / "sink", plugins=plugins)


def test_every_verb_runs_inside_the_operation_hook_with_its_result(tmp_path: Path) -> None:
    rec = HookRecorder(only=HookRecorder.OPERATION)  # each operation and how it ended
    eng = engine(tmp_path, rec)
    manifest = eng.backup("app")
    verified = eng.verify("latest")
    restored = eng.restore("latest", to=tmp_path / "out")
    pruned = eng.prune("app", dry_run=True)
    verbs = [(name, op.verb) for name, op, _, _ in rec.calls]
    assert verbs == [
        ("operation", "backup"), ("operation_end", "backup"),
        ("operation", "verify"), ("operation_end", "verify"),
        ("operation", "restore"), ("operation_end", "restore"),
        ("operation", "prune"), ("operation_end", "prune"),
    ]
    backup_op = rec.calls[0][1]
    assert backup_op.run_id == manifest.id
    assert backup_op.set_name == "app"
    assert backup_op.sink == str(tmp_path / "sink")
    assert backup_op.started_at == manifest.created_at
    assert backup_op.kind == "full" and all(op.kind is None for _, op, _, _ in rec.calls[2:])
    results = [r for _, r in rec.of("operation_end")]
    assert not any(isinstance(r, BaseException) for r in results)
    assert results[0] is manifest
    assert results[1] is verified and isinstance(verified, VerifyResult) and verified.ok
    assert results[2] is restored and isinstance(restored, RestoreResult)
    assert results[3] == pruned and all(isinstance(r, PruneResult) for r in pruned)
    assert (tmp_path / "out" / "src" / "a.txt").read_text() == "alpha"


def test_a_wrapper_sees_the_error_of_a_failed_backup(tmp_path: Path) -> None:
    rec = HookRecorder(only=HookRecorder.OPERATION)
    eng = engine(tmp_path, rec, paths=[str(tmp_path / "missing")])
    with pytest.raises(SourceError) as caught:
        eng.backup("app")
    assert rec.names == ["operation", "operation_end"]
    assert rec.calls[1][2] is caught.value
    assert len(eng.catalog()) == 0


def test_a_wrapper_that_raises_before_yield_stops_the_backup(tmp_path: Path) -> None:
    class Locked(Exception):
        pass

    class Lock:
        @hookimpl(wrapper=True)
        def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
            if operation.verb == "backup":
                raise Locked("another replica holds the lock")
            return (yield)

    eng = engine(tmp_path, Lock())
    with pytest.raises(Locked):
        eng.backup("app")
    assert not (tmp_path / "sink").exists() or eng.catalog().manifests == []


def test_a_wrapper_can_replace_the_result(tmp_path: Path) -> None:
    class Replace:
        @hookimpl(wrapper=True)
        def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
            result = yield
            return ("wrapped", result) if operation.verb == "verify" else result

    eng = engine(tmp_path, Replace())
    eng.backup("app")
    wrapped = eng.verify("latest")
    assert isinstance(wrapped, tuple) and wrapped[0] == "wrapped"


def test_a_plain_operation_implementation_is_refused_by_name() -> None:
    class NotAWrapper:
        @hookimpl
        def backupkit_operation(self, operation: Operation) -> object:
            return "replaced"

    with pytest.raises(PluginError, match="NotAWrapper.*must be a wrapper"):
        backupkit.Engine.from_config({"sets": {"a": {
            "sources": [{"type": "filesystem", "paths": ["/tmp"]}], "sink": "/tmp/x"}}},
            plugins=[NotAWrapper()], env={})


def test_prune_of_two_sinks_names_no_single_sink(tmp_path: Path) -> None:
    rec = HookRecorder(only=HookRecorder.OPERATION)
    src = tmp_path / "src"
    src.mkdir()
    body = {"sources": [{"type": "filesystem", "paths": [str(src)]}]}
    eng = backupkit.Engine.from_config(
        {"sets": {"a": {**body, "sink": str(tmp_path / "s1")},
                  "b": {**body, "sink": str(tmp_path / "s2")}}},
        plugins=[rec], env={},
    )
    eng.prune(dry_run=True)
    op = rec.calls[0][1]
    assert (op.verb, op.set_name, op.sink) == ("prune", None, None)


def test_a_backup_operation_carries_the_kind_it_was_asked_for(tmp_path: Path) -> None:
    rec = HookRecorder(only=HookRecorder.OPERATION)
    eng = engine(tmp_path, rec)
    eng.backup("app")
    eng.backup("app", kind="incremental")
    assert [op.kind for name, op, _, _ in rec.calls if name == "operation"] == ["full", "incremental"]
