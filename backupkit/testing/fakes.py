"""Stand-ins a plugin's tests build an engine with: a sink in memory, a clock the test
moves, a recorder of hook calls, and a factory for an engine over one set.

::

    from backupkit.testing.fakes import HookRecorder, MemoryStore, SteppingClock, engine_for

    def test_my_source_backs_up(tmp_path):
        store, clock, hooks = MemoryStore(), SteppingClock(), HookRecorder()
        engine = engine_for({"type": "my-source", "dsn": "..."}, sink=store,
                            clock=clock, plugins=[MyPlugin(), hooks])
        manifest = engine.backup()
        assert hooks.names == ["operation", "before_run", "after_run", "operation_end"]
        assert any(key.endswith(".manifest.json") for key in store.objects)

Everything here is real code paths of the engine; only the storage and the time are
the test's.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import os
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import attrs

from backupkit.errors import NotFoundError, SinkError
from backupkit.plugin import ArtifactWriter, Operation, Register, RunInfo, Sink, hookimpl

if TYPE_CHECKING:
    from backupkit.engine import Engine

__all__ = [
    "HookRecorder",
    "MemoryPlugin",
    "MemorySink",
    "MemoryStore",
    "SteppingClock",
    "engine_for",
]

# -- a sink in memory -----------------------------------------------------------------


_NAMES = itertools.count(1)
_STORES: dict[str, MemoryStore] = {}


@attrs.define(eq=False)
class MemoryStore:
    """The storage behind :class:`MemorySink`: committed objects, and the runs going on.

    Two sinks over one store are two processes over one bucket. ``objects`` is what a
    test inspects or damages.
    """

    objects: dict[str, bytes] = attrs.field(factory=dict)
    active: set[str] = attrs.field(factory=set)
    #: Each store's ``mem://`` name, unique within the process.
    name: str = attrs.field(factory=lambda: f"store-{next(_NAMES)}")

    def __attrs_post_init__(self) -> None:
        _STORES[self.name] = self

    @property
    def url(self) -> str:
        """The location a configuration names this store by (``mem://<name>``)."""
        return f"mem://{self.name}"


@attrs.define(eq=False)
class _MemoryWriter(ArtifactWriter):
    store: MemoryStore
    key: str
    buf: bytearray = attrs.field(factory=bytearray)
    done: bool = False

    def write(self, data: bytes, /) -> int:
        if self.done:
            raise SinkError(f"artifact {self.key} is already committed or aborted")
        self.buf += data
        return len(data)

    def commit(self) -> None:
        if self.key in self.store.objects:
            raise SinkError(f"{self.key} already exists in {self.store.url}; artifacts are never replaced")
        self.store.objects[self.key] = bytes(self.buf)
        self.done = True
        self.buf = bytearray()

    def abort(self) -> None:
        self.done = True
        self.buf = bytearray()


@attrs.frozen
class MemorySink(Sink):
    """A sink over a :class:`MemoryStore`, claimed by ``mem://<store name>`` locations
    once :class:`MemoryPlugin` is registered. It keeps the whole sink contract
    (``backupkit.testing.sink_suite``), so an engine over it behaves as over S3."""

    id: ClassVar[str] = "memory"

    store_name: str

    @property
    def store(self) -> MemoryStore:
        """The store this sink reads and writes."""
        try:
            return _STORES[self.store_name]
        except KeyError:
            raise SinkError(f"no memory store {self.store_name!r} in this process") from None

    @property
    def location(self) -> str:
        return self.store.url

    def open_artifact(self, key: str, *, run_id: str) -> ArtifactWriter:
        return _MemoryWriter(self.store, self.check_key(key))

    def put_bytes(self, key: str, data: bytes, *, run_id: str) -> None:
        self.store.objects[self.check_key(key)] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.store.objects[self.check_key(key)]
        except KeyError:
            raise NotFoundError(f"{key} is not in {self.location}") from None

    def open_read(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get_bytes(key))

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self.store.objects if k.startswith(prefix)))

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.store.objects.pop(self.check_key(key), None)

    def begin_run(self, run_id: str) -> None:
        self.store.active.add(run_id)

    def end_run(self, run_id: str) -> None:
        self.store.active.discard(run_id)

    def active_run_ids(self) -> set[str] | None:
        return set(self.store.active)


class MemoryPlugin:
    """Registers :class:`MemorySink` and claims ``mem://`` locations for it."""

    @hookimpl
    def backupkit_register_sinks(self, register: Register) -> None:
        register.sink(MemorySink)

    @hookimpl
    def backupkit_sink_for_url(self, url: str) -> tuple[str, dict[str, object]] | None:
        if url.startswith("mem://"):
            return ("memory", {"store_name": url[len("mem://") :]})
        return None


# -- time ---------------------------------------------------------------------------

EPOCH = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.UTC)


@attrs.define
class SteppingClock:
    """A clock for ``Engine(clock=...)``: each call returns ``now`` and then moves it on
    by ``step`` (zero: time stands still until the test moves it)."""

    now: dt.datetime = EPOCH
    step: dt.timedelta = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        current = self.now
        self.now += self.step
        return current

    def advance(self, **delta: float) -> dt.datetime:
        """Move the clock on (``advance(days=1)``) and return the new time."""
        self.now += dt.timedelta(**delta)
        return self.now


# -- hooks --------------------------------------------------------------------------


@attrs.define
class HookRecorder:
    """A plugin recording every lifecycle and operation hook call, in order.

    Each entry of ``calls`` is ``(name, subject, detail, probe)``: the hook's short
    name (``operation``, ``operation_end``, ``before_run``, ``after_run``,
    ``on_failure``), the :class:`Operation` or :class:`RunInfo`, the result, manifest
    or error, and what *probe* returned when called inside the hook (the state of the
    world at that moment). ``fail_before`` makes ``before_run`` veto every run.
    ``only`` limits the recording (and the probing) to some hook names, for instance
    ``HookRecorder(only=HookRecorder.LIFECYCLE)``; by default every hook is recorded.
    """

    #: The run hooks: ``before_run``, ``after_run``, ``on_failure``.
    LIFECYCLE: ClassVar[frozenset[str]] = frozenset({"before_run", "after_run", "on_failure"})
    #: The two halves of the ``backupkit_operation`` wrapper.
    OPERATION: ClassVar[frozenset[str]] = frozenset({"operation", "operation_end"})

    probe: Callable[[Any], Any] = lambda subject: None
    fail_before: BaseException | None = None
    calls: list[tuple[str, Any, Any, Any]] = attrs.field(factory=list)
    only: Collection[str] | None = None

    @property
    def names(self) -> list[str]:
        """The hook names in the order they were called."""
        return [call[0] for call in self.calls]

    def of(self, name: str) -> list[tuple[Any, Any]]:
        """``(subject, detail)`` of every call to hook *name*."""
        return [(subject, detail) for hook, subject, detail, _ in self.calls if hook == name]

    def _add(self, name: str, subject: Any, detail: Any) -> None:
        if self.only is not None and name not in self.only:
            return
        self.calls.append((name, subject, detail, self.probe(subject)))

    @hookimpl(wrapper=True)
    def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
        self._add("operation", operation, None)
        try:
            result = yield
        except BaseException as exc:
            self._add("operation_end", operation, exc)
            raise
        self._add("operation_end", operation, result)
        return result

    @hookimpl
    def backupkit_before_run(self, run: RunInfo) -> None:
        self._add("before_run", run, None)
        if self.fail_before is not None:
            raise self.fail_before

    @hookimpl
    def backupkit_after_run(self, run: RunInfo, manifest: Any) -> None:
        self._add("after_run", run, manifest)

    @hookimpl
    def backupkit_on_failure(self, run: RunInfo, error: BaseException) -> None:
        self._add("on_failure", run, error)


# -- an engine ----------------------------------------------------------------------

SourceSpec = Mapping[str, Any] | str | os.PathLike[str]


def _source_entry(spec: SourceSpec, index: int) -> dict[str, Any]:
    if isinstance(spec, Mapping):
        entry = dict(spec)
    else:
        entry = {"type": "filesystem", "paths": [os.fspath(spec)]}
    entry.setdefault("name", "files" if index == 0 else f"files{index + 1}")
    return entry


def engine_for(
    sources: SourceSpec | Iterable[SourceSpec],
    *,
    sink: MemoryStore | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    set_name: str = "app",
    plugins: Iterable[object] = (),
    env: Mapping[str, str] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    key_file: str | os.PathLike[str] | None = None,
    **set_body: Any,
) -> Engine:
    """An :class:`backupkit.Engine` over one set named *set_name*.

    *sources* is one source or a list: a path (a ``filesystem`` source over it) or a
    source's configuration mapping (``{"type": ..., "name": ..., **params}``; the first
    unnamed one is called ``files``). *sink* is a :class:`MemoryStore` (the memory sink
    is then registered), a location, a sink's configuration mapping (``{"type": ...,
    **params}``, as for a sink a plugin registers), or by default a new memory store.
    *env* defaults to an empty environment, so the host's ``BACKUP_*`` variables never
    leak in; *set_body* adds set keys (``encrypt``, ``retention``, ``compress``...).
    """
    from backupkit.engine import Engine  # the kit is imported by plugins; keep it light

    if isinstance(sources, (Mapping, str, os.PathLike)):
        specs: list[SourceSpec] = [sources]
    else:
        specs = list(sources)
    extra: list[object] = []
    if sink is None:
        sink = MemoryStore()
    location: str | dict[str, Any]
    if isinstance(sink, MemoryStore):
        extra.append(MemoryPlugin())
        location = sink.url
    elif isinstance(sink, Mapping):
        location = dict(sink)
    else:
        location = os.fspath(sink)
    body = {"sources": [_source_entry(s, i) for i, s in enumerate(specs)], "sink": location, **set_body}
    return Engine.from_config(
        {"sets": {set_name: body}},
        plugins=[*extra, *plugins],
        env={} if env is None else env,
        clock=clock,
        key_file=key_file,
    )
