"""The plugin-author kit's suites fail for plugins that break the contract."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from backupkit.plugin import (
    BackupContext,
    Encoder,
    Reader,
    RestoreContext,
    Source,
    Transform,
    Writer,
)
from backupkit.testing.fakes import HookRecorder, MemoryStore, SteppingClock, engine_for
from backupkit.testing.source_suite import SourceConformance
from backupkit.testing.transform_suite import TransformConformance


class _Dropping:
    def __init__(self, out: Writer) -> None:
        self.out = out

    def write(self, data: bytes, /) -> int:
        self.out.write(data[:-1] if len(data) > 1 else data)
        return len(data)

    def close(self) -> None:
        pass


@attrs.frozen
class LossyTransform(Transform):
    """Drops a byte of every write: round trips must catch it."""

    id: ClassVar[str] = "lossy"

    def encoder(self, out: Writer) -> Encoder:
        return _Dropping(out)

    def decoder(self, inp: Reader) -> Reader:
        return inp


class _Buffering(io.BytesIO):
    def __init__(self, out: Writer) -> None:
        super().__init__()
        self.out = out

    def close(self) -> None:
        self.out.write(self.getvalue())


@attrs.frozen
class HoardingTransform(Transform):
    """Keeps everything until close: the streaming test must catch it."""

    id: ClassVar[str] = "hoarding"

    def encoder(self, out: Writer) -> Encoder:
        return _Buffering(out)

    def decoder(self, inp: Reader) -> Reader:
        return inp


def test_the_transform_suite_fails_a_transform_that_loses_bytes() -> None:
    with pytest.raises(AssertionError):
        TransformConformance().test_a_stream_round_trips(LossyTransform(), 4095)


def test_the_transform_suite_fails_a_transform_that_buffers_the_whole_stream() -> None:
    with pytest.raises(AssertionError, match="before close"):
        TransformConformance().test_output_leaves_the_encoder_while_input_goes_in(HoardingTransform())


@attrs.frozen
class EagerSource(Source):
    """Writes the restored bytes into the target as they arrive: the damaged-stream
    test must catch it."""

    id: ClassVar[str] = "eager"
    path: str

    def backup(self, out: Writer, ctx: BackupContext) -> None:
        out.write(Path(self.path).read_bytes())

    def restore(self, stream: Reader, ctx: RestoreContext) -> None:
        assert ctx.target is not None
        ctx.target.mkdir(exist_ok=True)
        with open(ctx.target / "data", "wb") as fh:
            while chunk := stream.read(7):
                fh.write(chunk)


class EagerSuite(SourceConformance):
    def restored(self, target: Path) -> Any:
        path = target / "data"
        return path.read_bytes() if path.exists() else None


def test_the_source_suite_fails_a_source_that_restores_before_the_stream_is_checked(
    tmp_path: Path,
) -> None:
    (tmp_path / "in").write_bytes(b"x" * 1000)
    with pytest.raises(AssertionError):
        EagerSuite().test_a_stream_damaged_at_its_end_leaves_the_target_as_it_was(
            EagerSource(str(tmp_path / "in")), tmp_path / "out", {}
        )


def test_the_fakes_run_an_engine_with_hooks_and_time_of_the_tests_choice(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha")
    store, hooks = MemoryStore(), HookRecorder()
    clock = SteppingClock(step=dt.timedelta(hours=1))
    engine = engine_for(src, sink=store, plugins=[hooks], clock=clock)
    first = engine.backup(reason="test")
    second = engine.backup(reason="test")
    assert second.created_at > first.created_at
    assert hooks.names[:4] == ["operation", "before_run", "after_run", "operation_end"]
    assert [run.reason for run, _ in hooks.of("before_run")] == ["test", "test"]
    assert any(k.endswith(".manifest.json") for k in store.objects)
    assert hooks.of("operation_end")[0][1] == first
