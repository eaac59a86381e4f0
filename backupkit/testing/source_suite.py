"""The contract every source keeps, as a pytest suite to subclass.

A source author writes one class naming the source and saying how to build it over
some data, and how to read back what a restore produced::

    from backupkit.testing.source_suite import SourceConformance

    class TestMySource(SourceConformance):
        plugins = [MyPlugin()]          # what registers the source (not for built-ins)

        @pytest.fixture
        def params(self, tmp_path):     # the source's parameters, over data it creates
            return {"type": "my-source", "path": str(make_data(tmp_path))}

        @pytest.fixture
        def target(self, tmp_path):     # where a restore goes (a path, a URL...)
            return tmp_path / "restored"

        def expected(self, source):     # the data as the source sees it now
            ...
        def restored(self, target):     # the data a restore left in target, None if none
            ...

and gets every test below: the identity and parameters are well-formed, secrets stay
out of ``describe()``, what ``backup`` returns goes into a manifest, a backup restores
to the same data (directly and through an engine over a memory sink), a stream that
turns out damaged at its end or is cut short leaves the target as it was, an existing
target is kept unless the restore may overwrite, and for sources that
``supports_incremental``, a chain restores to the data after the change
:meth:`SourceConformance.change` made.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, ClassVar

import attrs
import pytest

from backupkit.errors import BackupkitError, ConfigError, IntegrityError
from backupkit.plugin import BackupContext, Reader, RestoreContext, Source
from backupkit.plugins import make_plugin_manager
from backupkit.testing.checks import ID_PATTERN, assert_describe_hides_secrets
from backupkit.testing.fakes import MemoryStore, engine_for


@attrs.define
class Captured:
    """One backup's main stream, sidecars and manifest facts, as bytes."""

    stream: bytes
    sidecars: dict[str, bytes]
    facts: Mapping[str, Any] | None


class _Sidecar(io.BytesIO):
    """A sidecar file whose bytes survive ``close``."""

    def __init__(self, into: dict[str, bytes], name: str) -> None:
        super().__init__()
        self._into, self._name = into, name

    def close(self) -> None:
        if not self.closed:
            self._into[self._name] = self.getvalue()
        super().close()


class _Writes:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self.parts.append(bytes(data))
        return len(data)


class DamagedAtEnd:
    """A reader over *data* that raises :class:`IntegrityError` where its end would be,
    as the engine does when the bytes read do not match the manifest."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._data.read(size)
        if not chunk:
            raise IntegrityError("artifact 'conformance' does not match its manifest (test)")
        return chunk


class SourceConformance:
    """Subclass it; provide ``params`` and ``target`` fixtures, ``expected`` and ``restored``.

    ``params`` is the source's configuration entry (``{"type": ..., **parameters}``)
    over data the fixture made; ``target`` is what a restore is pointed at (for a
    path, it need not exist yet). ``restore_options`` are passed as the restore's
    options. Set ``plugins`` to what registers the source when it is not built in.
    """

    #: Plugins that register the source (an installed entry point needs none).
    plugins: ClassVar[list[object]] = []
    #: Whether restoring into a target that holds data needs ``overwrite``.
    refuses_existing_target: ClassVar[bool] = True
    #: The name of the artifact in these tests.
    artifact: ClassVar[str] = "data"

    @pytest.fixture
    def params(self) -> Mapping[str, Any]:
        raise NotImplementedError("subclasses provide a 'params' fixture")

    @pytest.fixture
    def target(self) -> Any:
        raise NotImplementedError("subclasses provide a 'target' fixture")

    @pytest.fixture
    def restore_options(self) -> Mapping[str, Any]:
        return {}

    def expected(self, source: Source) -> Any:
        """The data *source* reads, in a form that compares equal to :meth:`restored`."""
        raise NotImplementedError("subclasses say what the source's data is")

    def restored(self, target: Any) -> Any:
        """What a restore left in *target*, as :meth:`expected` gives it; ``None`` when
        the target holds nothing (before any restore)."""
        raise NotImplementedError("subclasses say what a restore produced")

    def change(self, source: Source) -> None:
        """Change the data *source* reads (sources with ``supports_incremental``)."""
        raise NotImplementedError("incremental sources say how to change their data")

    # -- helpers ------------------------------------------------------------------------
    @pytest.fixture
    def source_class(self, params: Mapping[str, Any]) -> type[Source]:
        manager = make_plugin_manager(plugins=self.plugins)
        return manager.registry.sources[params["type"]]

    @pytest.fixture
    def source(self, source_class: type[Source], params: Mapping[str, Any]) -> Source:
        return source_class.from_params({k: v for k, v in params.items() if k not in ("type", "name")})

    def capture(self, source: Source, *, kind: str = "full", parent: Captured | None = None) -> Captured:
        """Run one backup of *source* into memory."""
        out, sidecars = _Writes(), dict[str, bytes]()

        def parent_sidecar(name: str) -> BinaryIO | None:
            if parent is None or name not in parent.sidecars:
                return None
            return io.BytesIO(parent.sidecars[name])

        ctx = BackupContext(
            artifact=self.artifact, kind=kind,
            parent_sidecar=parent_sidecar, open_sidecar=lambda name: _Sidecar(sidecars, name),
        )
        facts = source.backup(out, ctx)
        return Captured(b"".join(out.parts), sidecars, facts)

    def restore_ctx(self, target: Any, options: Mapping[str, Any], *, overwrite: bool = False) -> RestoreContext:
        return RestoreContext(artifact=self.artifact, target=target, overwrite=overwrite, options=options)

    # -- identity and parameters --------------------------------------------------------
    def test_the_source_has_a_well_formed_id_and_extension(self, source_class: type[Source]) -> None:
        assert ID_PATTERN.match(source_class.id), f"id {source_class.id!r}: lower case, digits, - or _"
        assert source_class.extension.startswith("."), source_class.extension
        assert issubclass(source_class, Source)

    def test_describe_is_json_and_holds_no_secret(self, source: Source) -> None:
        assert_describe_hides_secrets(source)

    def test_an_unknown_parameter_is_refused_by_name(
        self, source_class: type[Source], params: Mapping[str, Any]
    ) -> None:
        bad = {k: v for k, v in params.items() if k not in ("type", "name")}
        bad["no_such_parameter"] = 1
        with pytest.raises(ConfigError, match="no_such_parameter") as caught:
            source_class.from_params(bad)
        assert "\n" not in str(caught.value)

    # -- backup and restore -------------------------------------------------------------
    def test_what_backup_returns_can_go_into_a_manifest(self, source: Source) -> None:
        captured = self.capture(source)
        assert captured.stream, "a backup wrote nothing"
        if captured.facts is not None:
            assert isinstance(captured.facts, Mapping)
            assert all(isinstance(k, str) for k in captured.facts)
            json.dumps(captured.facts)

    def test_a_backup_restores_to_the_same_data(
        self, source: Source, target: Any, restore_options: Mapping[str, Any]
    ) -> None:
        want = self.expected(source)
        captured = self.capture(source)
        source.restore(io.BytesIO(captured.stream), self.restore_ctx(target, restore_options))
        assert self.restored(target) == want

    def test_a_backup_through_an_engine_restores_to_the_same_data(
        self, params: Mapping[str, Any], source: Source, target: Any, restore_options: Mapping[str, Any]
    ) -> None:
        want = self.expected(source)
        store = MemoryStore()
        entry: dict[str, Any] = {**params, "name": self.artifact}
        engine = engine_for(entry, sink=store, plugins=self.plugins)
        manifest = engine.backup()
        assert manifest.artifact(self.artifact).stored_size > 0
        engine.restore(manifest.id, to=target, options=restore_options)
        assert self.restored(target) == want

    def test_a_stream_damaged_at_its_end_leaves_the_target_as_it_was(
        self, source: Source, target: Any, restore_options: Mapping[str, Any]
    ) -> None:
        captured = self.capture(source)
        before = self.restored(target)
        with pytest.raises(IntegrityError):
            source.restore(DamagedAtEnd(captured.stream), self.restore_ctx(target, restore_options))
        assert self.restored(target) == before

    def test_a_stream_cut_short_is_an_error_and_leaves_the_target_as_it_was(
        self, source: Source, target: Any, restore_options: Mapping[str, Any]
    ) -> None:
        captured = self.capture(source)
        before = self.restored(target)
        with pytest.raises(BackupkitError):
            source.restore(io.BytesIO(captured.stream[: len(captured.stream) // 2]),
                           self.restore_ctx(target, restore_options))
        assert self.restored(target) == before

    def test_an_existing_target_is_kept_unless_overwrite(
        self, source: Source, target: Any, restore_options: Mapping[str, Any]
    ) -> None:
        if not self.refuses_existing_target:
            pytest.skip("this source restores into targets that hold data")
        captured = self.capture(source)
        source.restore(io.BytesIO(captured.stream), self.restore_ctx(target, restore_options))
        first = self.restored(target)
        with pytest.raises(BackupkitError):
            source.restore(io.BytesIO(captured.stream), self.restore_ctx(target, restore_options))
        assert self.restored(target) == first
        source.restore(io.BytesIO(captured.stream), self.restore_ctx(target, restore_options, overwrite=True))
        assert self.restored(target) == first

    # -- incremental --------------------------------------------------------------------
    def test_an_incremental_chain_restores_to_the_changed_data(
        self, source: Source, target: Any, restore_options: Mapping[str, Any]
    ) -> None:
        if not source.supports_incremental:
            pytest.skip("the source writes full backups only")
        full = self.capture(source)
        self.change(source)
        want = self.expected(source)
        incremental = self.capture(source, kind="incremental", parent=full)

        def streams() -> Iterator[Reader]:
            yield io.BytesIO(full.stream)
            yield io.BytesIO(incremental.stream)

        source.restore_chain(streams(), self.restore_ctx(target, restore_options))
        assert self.restored(target) == want
