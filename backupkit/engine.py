"""The engine: the one place that calls hooks, reads the clock and orders I/O.

A backup run, for one set:

1. ``backupkit_before_run``; the sink's ``begin_run`` (collects stale temp data).
2. For each source: read it in a thread into a bounded :class:`ChunkPipe`; in this
   thread push the chunks through the transform chain (compress, then encrypt)
   into a sink writer; both ends are hashed. Commit the artifact.
3. Write the manifest, last. Only now does the backup exist for the catalog.
4. ``backupkit_after_run``; the run's log goes to ``logs/``.

If anything fails or is interrupted, the manifest is deleted if its write had begun
(it may have become visible before the write failed), then the artifacts already
committed; the one being written is aborted, the temp directory removed, and
``backupkit_on_failure`` is called: the catalog is exactly as before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import posixpath
import secrets
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import attrs

from backupkit._version import __version__
from backupkit.config import Config, PluginRef, SetConfig, default_policy
from backupkit.core.catalog import Catalog, CatalogProblem
from backupkit.core.manifest import MANIFEST_SUFFIX, Artifact, Manifest, PluginSpec, backup_id
from backupkit.core.restore import plan_restore
from backupkit.core.retention import RetentionPolicy, plan_retention
from backupkit.core.simulate import DEFAULT_SIZES, SimulationRow, simulate_retention
from backupkit.core.tiers import assign_tier
from backupkit.crypto.keys import Keyring
from backupkit.crypto.sealed import is_sealed_manifest, open_manifest, seal_manifest
from backupkit.errors import (
    BackupkitError,
    ConfigError,
    IntegrityError,
    KeyMissingError,
    ManifestError,
    NotFoundError,
    PluginError,
    RestoreError,
    SinkError,
    SourceError,
)
from backupkit.params import scrub_url
from backupkit.plugin import (
    ArtifactWriter,
    BackupContext,
    KeyedTransform,
    RestoreContext,
    Sink,
    Source,
    Transform,
    check_chain,
)
from backupkit.plugin.run import RunInfo
from backupkit.plugins import Plugins, make_plugin_manager
from backupkit.prune import ORPHAN_GRACE, Layout, PruneResult, carry_out, find_orphans
from backupkit.streaming import (
    Cancelled,
    CheckedReader,
    ChunkPipe,
    Digest,
    DigestReader,
    DigestWriter,
    ReadAhead,
)

log = logging.getLogger("backupkit")

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.frozen
class Progress:
    """A snapshot of a running backup, restore or verify, for progress displays."""

    artifact: str
    done_bytes: int
    stored_bytes: int
    current: str
    elapsed: float


ProgressCallback = Callable[[Progress], None]


@attrs.frozen
class ArtifactCheck:
    """The outcome of verifying one artifact."""

    backup_id: str
    artifact: str
    ok: bool
    error: str | None = None
    note: str | None = None  # e.g. only the stored checksum was checked (no key)


@attrs.frozen
class VerifyResult:
    backup_id: str
    checks: tuple[ArtifactCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@attrs.frozen
class RestoreResult:
    backup_id: str
    targets: Mapping[str, str]
    bytes: int
    seconds: float


#: The run a thread works for (set by the engine in the threads of a backup): a run's
#: log takes only its own records, not those of another run in the same process.
_thread_run = threading.local()


def _working_for(run_id: str | None) -> None:
    _thread_run.id = run_id


class _RunLog(logging.Handler):
    """Collects a run's log records for its log file in ``logs/``: those of the threads
    working for the run (see :func:`_working_for`)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(logging.INFO)
        self.run_id = run_id
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_thread_run, "id", None) == self.run_id and len(self.lines) < 100_000:
            self.lines.append(self.format(record))

    # The ``backupkit`` logger's effective level is WARNING unless the host app says
    # otherwise, which would drop every INFO line before it reaches this handler:
    # lower it to INFO while any run is capturing, and put it back afterwards.
    _lock = threading.Lock()
    _saved_level: int | None = None

    def attach(self) -> None:
        logger = logging.getLogger("backupkit")
        with _RunLog._lock:
            if not any(isinstance(h, _RunLog) for h in logger.handlers):
                _RunLog._saved_level = logger.level
                if not logger.isEnabledFor(logging.INFO):
                    logger.setLevel(logging.INFO)
            logger.addHandler(self)

    def detach(self) -> None:
        logger = logging.getLogger("backupkit")
        with _RunLog._lock:
            logger.removeHandler(self)
            if _RunLog._saved_level is not None and not any(
                isinstance(h, _RunLog) for h in logger.handlers
            ):
                logger.setLevel(_RunLog._saved_level)
                _RunLog._saved_level = None


#: Seconds a failed or interrupted backup waits for its source thread to stop.
_SOURCE_GRACE = 10


def _chunks(fh: Any, digest: Digest, size: int = 1 << 20) -> Iterator[bytes]:
    """*fh*'s bytes in chunks, each added to *digest* as it passes."""
    for chunk in iter(lambda: fh.read(size), b""):
        digest.update(chunk)
        yield chunk


class _Closing:
    """A checked reader that also closes the stored object it reads from."""

    def __init__(self, reader: CheckedReader, fh: Any) -> None:
        self.reader, self.fh = reader, fh

    def read(self, size: int = -1) -> bytes:
        return self.reader.read(size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Read what the source left (so the checksums are compared: a source that
        reads only a header must not build on a damaged sidecar), then close."""
        try:
            while self.reader.read(1 << 20):
                pass
        finally:
            self.fh.close()

    def __enter__(self) -> _Closing:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the source failed: its error, not a check of the rest, is what counts
            self.fh.close()


def _sink_error(exc: OSError, sink: Sink, key: str) -> BackupkitError:
    """A sink plugin's bare ``OSError``, translated at the engine's boundary."""
    if isinstance(exc, BackupkitError):
        return exc
    hint = (
        "the disk is full; free space or choose another sink"
        if exc.errno == errno.ENOSPC
        else exc.strerror or str(exc)
    )
    err = SinkError(f"cannot store {key} in sink {sink.location}: {hint}")
    err.errno = exc.errno
    return err


def _remove_failed_run(
    sink: Sink, run_id: str, published: tuple[str, bytes] | None, committed: list[str]
) -> None:
    """Undo a failed run: its manifest first, if its write began, then its artifacts.

    A manifest write can fail after the manifest became visible (a lost reply, a
    directory fsync error, a signal after the rename); deleting the artifacts while it
    stays would leave a catalogued backup without data. A manifest key carrying the
    run id is this run's; one without it (a layout without run ids) is deleted only if
    it holds this run's bytes. If the manifest cannot be removed, the artifacts it may
    name stay too (prune collects them once the manifest is gone).
    """
    if published is not None:
        key, body = published
        try:
            if run_id in key or _holds(sink, key, body):
                sink.delete([key])
        except (BackupkitError, OSError) as cleanup_error:
            log.error("could not remove the manifest %s: %s; its artifacts are kept",
                      key, cleanup_error)
            return
    if committed:
        try:
            sink.delete(committed)
        except (BackupkitError, OSError) as cleanup_error:
            log.error("could not remove %s: %s", committed, cleanup_error)


def _holds(sink: Sink, key: str, body: bytes) -> bool:
    """Whether *key* in *sink* holds exactly *body* (False if it does not exist)."""
    try:
        return sink.get_bytes(key) == body
    except NotFoundError:
        return False


class _SidecarStream:
    """A sidecar stored while its source still writes it: a pipe of its own, drained
    through the transform chain into its artifact by a thread of its own, so memory stays
    flat however big the sidecar gets and its compression overlaps the main stream."""

    def __init__(self, encode: Callable[..., Digest], chain: list[Transform], key: str,
                 writer: ArtifactWriter, run_id: str) -> None:
        self.key, self.writer, self.run_id = key, writer, run_id
        self.raw = Digest()
        self.pipe = ChunkPipe(digest=self.raw)
        self.stored: Digest | None = None  # set once the artifact is committed
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(encode, chain), name=f"backupkit-sidecar-{key}", daemon=True
        )
        try:
            self._thread.start()
        except BaseException:  # no thread (out of resources): nothing may stay half-written
            writer.abort()
            raise

    def _run(self, encode: Callable[..., Digest], chain: list[Transform]) -> None:
        _working_for(self.run_id)
        try:
            self.stored = encode(self.pipe, chain, self.writer, raw=self.raw)
        except BaseException as exc:  # noqa: BLE001 - the engine's thread raises it
            self.error = exc
            self.pipe.cancel()  # the source's next write to this sidecar fails, and it stops
            self.writer.abort()

    def wait(self) -> None:
        self._thread.join()


class _SidecarFile:
    """What a source gets from ``open_sidecar``: a write-only file over the sidecar's pipe.
    ``close`` does nothing: the engine ends the stream once the source returns."""

    def __init__(self, pipe: ChunkPipe) -> None:
        self._pipe = pipe
        self.closed = False

    def write(self, data: bytes, /) -> int:
        return self._pipe.write(data)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _caused_by_cancel(exc: BaseException) -> bool:
    """Whether *exc* is, or was raised while handling, a pipe's cancellation."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Cancelled):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class _SinkWriter(ArtifactWriter):
    """Wraps a sink's writer so its bare ``OSError`` (a full disk) is a :class:`SinkError`,
    not mistaken for a failing source."""

    def __init__(self, writer: ArtifactWriter, sink: Sink, key: str) -> None:
        self.writer, self.sink, self.key = writer, sink, key

    def write(self, data: bytes, /) -> int:
        try:
            return self.writer.write(data)
        except OSError as exc:
            raise _sink_error(exc, self.sink, self.key) from None

    def commit(self) -> None:
        try:
            self.writer.commit()
        except OSError as exc:
            raise _sink_error(exc, self.sink, self.key) from None

    def abort(self) -> None:
        self.writer.abort()


def _restore_target(ref: str) -> str | dt.datetime:
    """A backup id, prefix or 'latest' as is; an ISO 8601 time with a zone as a datetime."""
    if "-" in ref[:11] and ":" in ref:  # 2024-01-05T12:00Z, 2024-01-05 12:00:00+01:00
        try:
            when = dt.datetime.fromisoformat(ref.replace("Z", "+00:00"))
        except ValueError:
            return ref
        if when.tzinfo is None:
            raise ConfigError(f"time {ref!r} has no time zone; add one, e.g. 'Z' or '+01:00'")
        return when
    return ref


def is_sidecar(artifact: Artifact) -> bool:
    return "sidecar_of" in artifact.extra


def is_location(ref: str) -> bool:
    """Whether *ref* names a stored object (``s3://b/p/x.manifest.json``, a path) rather
    than a backup id, id prefix or ``latest``."""
    return "://" in ref or ref.endswith(MANIFEST_SUFFIX)


@attrs.define
class Engine:
    """Runs backups, restores and verifications for a configuration.

    Build one with :meth:`from_config` (a dict, a :class:`Config`, or a TOML path).
    Each engine has its own plugin manager.
    """

    config: Config
    plugins: Plugins = attrs.field(factory=make_plugin_manager)
    clock: Clock = _utcnow
    keyring: Keyring = attrs.field(factory=Keyring)  # encryption keys; shows ids only

    @classmethod
    def from_config(
        cls,
        config: Config | Mapping[str, Any] | str | os.PathLike[str],
        *,
        plugins: Iterable[object] = (),
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        key_file: str | os.PathLike[str] | None = None,
    ) -> Engine:
        """:param key_file: a key file (``--key-file``); keys also come from *env*
        (``BACKUP_ENCRYPTION_KEY``...) and the config's ``key_file``, see :mod:`backupkit.crypto.keys`."""
        if isinstance(config, Config):
            cfg = config
        elif isinstance(config, Mapping):
            cfg = Config.from_dict(config, env=env)
        else:
            cfg = Config.from_file(config, env=env)
        key_files = [f for f in (key_file, cfg.key_file) if f]
        keyring = Keyring.from_env(env, key_files=key_files)
        return cls(cfg, make_plugin_manager(plugins=plugins), clock or _utcnow, keyring)

    # -- plugin construction ------------------------------------------------------
    def sink_for(self, ref: PluginRef | str) -> Sink:
        if isinstance(ref, str):
            found = self.plugins.hook.backupkit_sink_for_url(url=ref)
            if found is None:
                raise ConfigError(
                    f"no sink plugin handles {scrub_url(ref)!r}; is the plugin installed?"
                )
            if not (isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], str)
                    and isinstance(found[1], Mapping)):
                raise PluginError(
                    f"a backupkit_sink_for_url hook answered {scrub_url(ref)!r} with "
                    f"{type(found).__name__} {scrub_url(repr(found))[:80]}; it must return "
                    "(sink id, params) or None: fix or block that plugin"
                )
            ref = PluginRef(id=found[0], params=found[1])
        return self.plugins.sink(ref.id).from_params(ref.params)

    def _sources(self, set_cfg: SetConfig) -> list[tuple[str, Source]]:
        return [
            (ref.name or ref.id, self.plugins.source(ref.id).from_params(ref.params))
            for ref in set_cfg.sources
        ]

    def _transforms(self, refs: Iterable[PluginRef | PluginSpec], where: str) -> list[Transform]:
        chain = [self.plugins.transform(r.id).from_params(r.params) for r in refs]
        chain = [t.with_keyring(self.keyring) if isinstance(t, KeyedTransform) else t for t in chain]
        check_chain(chain, where=where)
        for t in chain:
            if isinstance(t, KeyedTransform):
                t.check_keys(where)  # a missing key is a one-line error naming its id, up front
        return chain

    def _sinks(self) -> list[Sink]:
        refs: list[PluginRef | str] = [s.sink for s in self.config.sets.values()]
        if self.config.sink is not None:
            refs.append(self.config.sink)
        sinks: dict[str, Sink] = {}
        for ref in refs:
            sink = self.sink_for(ref)
            sinks.setdefault(f"{sink.id}:{sink.location}", sink)
        if not sinks:
            raise ConfigError("no sink is configured; pass --sink or use a config file")
        return list(sinks.values())

    # -- backup ---------------------------------------------------------------------
    def backup(
        self,
        set_name: str | None = None,
        *,
        kind: str = "full",
        reason: str = "manual",
        tags: Iterable[str] = (),
        progress: ProgressCallback | None = None,
    ) -> Manifest:
        """Run one backup of a set; return its manifest once everything is stored."""
        set_cfg = self.config.get_set(set_name)
        if kind not in ("full", "incremental"):
            raise ConfigError(f"backup kind {kind!r} is unknown; use 'full' or 'incremental'")
        where = f"set {set_cfg.name!r}"
        sources = self._sources(set_cfg)
        chain = self._transforms(set_cfg.transforms, where)
        sink = self.sink_for(set_cfg.sink)
        parent_keys: dict[str, str] = {}
        parent = (
            self._parent_for(set_cfg.name, sink, sources, parent_keys) if kind == "incremental" else None
        )
        if kind == "incremental" and parent is None:
            kind = "full"
        started = self.clock()
        run = RunInfo(
            run_id=backup_id(started, secrets.token_hex(3)),
            set_name=set_cfg.name,
            kind=kind,
            reason=reason,
            started_at=started,
            sink=sink.location,
            hostname=set_cfg.hostname or socket.gethostname(),
        )
        tier = "incremental"
        if kind == "full":  # monthly / weekly / daily, counted in the configured time zone
            tier = assign_tier(
                self._read_catalog([sink])[0], set_name=set_cfg.name, kind=kind,
                created_at=started, tz=self.config.tz,
            )
        stem = f"{set_cfg.name}_{kind}_{run.run_id}"
        run_log = _RunLog(run.run_id)
        _working_for(run.run_id)
        run_log.attach()
        committed: list[str] = []
        published: tuple[str, bytes] | None = None  # the manifest, once its write began
        began = False
        t0 = time.monotonic()
        try:
            self.plugins.hook.backupkit_before_run(run=run)
            sink.begin_run(run.run_id)
            began = True
            log.info("backup %s of set %s to %s started", run.run_id, set_cfg.name, sink.location)
            artifacts: list[Artifact] = []
            for name, source in sources:
                artifacts.extend(
                    self._store(run, name, source, chain, sink, (tier, stem), parent, progress, t0, committed)
                )
            manifest = Manifest(
                id=run.run_id,
                set_name=set_cfg.name,
                created_at=started,
                kind=kind,  # type: ignore[arg-type]
                parent_id=parent.id if parent else None,
                hostname=run.hostname,
                reason=reason,
                tags=tuple(dict.fromkeys([*set_cfg.tags, *tags])),
                tier=tier,
                tool_version=__version__,
                duration_seconds=round(time.monotonic() - t0, 3),
                artifacts=tuple(artifacts),
            )
            manifest_key = sink.key_for(tier, stem + MANIFEST_SUFFIX, run=run)
            if parent is not None:
                self._check_parent_still_there(sink, parent, parent_keys[parent.id])
            try:
                body = manifest.to_json()
                if set_cfg.encrypt_manifest:  # only the format and key id stay in the clear
                    body = seal_manifest(body, self.keyring.writing_key(what=where))
                published = (manifest_key, body)
                sink.put_bytes(manifest_key, body, run_id=run.run_id)
            except OSError as exc:
                raise _sink_error(exc, sink, manifest_key) from None
        except BaseException as exc:
            log.error("backup %s failed: %s", run.run_id, exc)
            _remove_failed_run(sink, run.run_id, published, committed)
            self._finish_run(sink, run, stem, run_log, began, seal=set_cfg.encrypt_manifest)
            self._notify("backupkit_on_failure", run=run, error=exc)  # never raises
            raise
        log.info(
            "backup %s stored %d bytes (%d raw) in %.1fs",
            run.run_id, manifest.stored_size, manifest.raw_size, manifest.duration_seconds,
        )
        self._finish_run(sink, run, stem, run_log, began, seal=set_cfg.encrypt_manifest)
        failed = self._notify("backupkit_after_run", run=run, manifest=manifest)
        if failed:
            plugin, error = failed[0]
            raise PluginError(
                f"backup {manifest.id} was stored, but the backupkit_after_run hook of plugin "
                f"{plugin} failed: {type(error).__name__}: {error}"
            ) from error
        return manifest

    def _notify(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Exception]]:
        """Call every implementation of a notification hook, each on its own: one that
        raises must not keep the others (another team's notifier) from running. Failures
        are logged as warnings naming the plugin, and returned."""
        hook = getattr(self.plugins.hook, hook_name)
        impls = hook.get_hookimpls()
        if any(i.hookwrapper or getattr(i, "wrapper", False) for i in impls):
            try:  # wrappers need pluggy's own call
                hook(**kwargs)
            except Exception as exc:
                log.warning("a %s hook failed: %s", hook_name, exc)
                return [("?", exc)]
            return []
        failed = []
        for impl in reversed(impls):  # pluggy's order: the last registered first
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                log.warning("the %s hook of plugin %s failed: %s: %s", hook_name, impl.plugin_name,
                            type(exc).__name__, exc)
                failed.append((impl.plugin_name, exc))
        return failed

    def _finish_run(
        self, sink: Sink, run: RunInfo, stem: str, run_log: _RunLog, began: bool, *, seal: bool
    ) -> None:
        """Store the run's log (sealed like the manifest when the set seals manifests: it
        names files), and end the run in the sink."""
        run_log.detach()
        _working_for(None)
        if not began:
            return
        try:
            text = ("\n".join(run_log.lines) + "\n").encode()
            if seal:
                text = seal_manifest(text, self.keyring.writing_key(what=f"the log of run {run.run_id}"))
            sink.put_bytes(sink.log_key(stem + ".log", run=run), text, run_id=run.run_id)
        except (BackupkitError, OSError) as exc:  # a full disk must not hide the real outcome
            log.warning("could not write the run log: %s", exc)
        finally:
            sink.end_run(run.run_id)

    def _parent_for(
        self, set_name: str, sink: Sink, sources: list[tuple[str, Source]], keys: dict[str, str]
    ) -> Manifest | None:
        """The backup an incremental builds on: the set's newest one in *sink*, if usable
        (with a whole chain to a full backup); *keys* gets the manifest keys."""
        for name, source in sources:
            if not source.supports_incremental:
                log.warning(
                    "source %s (%s) cannot back up incrementally; running a full backup",
                    name, source.id,
                )
                return None
        catalog, owner = self._read_catalog(sinks=[sink], keys=keys)
        backups = catalog.for_set(set_name)
        if not backups.by_kind("full"):
            log.warning("set %s has no full backup yet; this incremental runs as a full backup", set_name)
            return None
        parent = backups.latest()
        indexed = {a.extra.get("sidecar_of") for a in parent.artifacts}
        missing = [n for n, _ in sources if n not in indexed]
        if missing:
            log.warning(
                "the newest backup %s has no index for %s; running a full backup",
                parent.id, ", ".join(missing),
            )
            return None
        try:
            plan_restore(catalog, target=parent.id)
        except BackupkitError as exc:  # a broken chain: building on it would break this one too
            log.warning("the newest backup %s cannot be restored (%s); running a full backup", parent.id, exc)
            return None
        return parent

    def _check_parent_still_there(self, sink: Sink, parent: Manifest, key: str) -> None:
        """Fail an incremental whose parent was deleted while it ran (a prune between its
        start and its manifest): published, it could never be restored."""
        try:
            sink.get_bytes(key)
        except NotFoundError:
            raise SourceError(
                f"the parent backup {parent.id} was deleted while this incremental ran (by a "
                "prune?); nothing of this run was kept: run the backup again"
            ) from None

    def _encode(
        self,
        chunks: Iterable[bytes],
        chain: list[Transform],
        writer: ArtifactWriter,
        on_chunk: Callable[[DigestWriter], None] | None = None,
        *,
        raw: Digest,
    ) -> Digest:
        """Push *chunks* (whose digest is *raw*) through *chain* into *writer*; commit it;
        return the stored digest. With no transforms the stored bytes are the raw
        bytes, and are not hashed a second time."""
        stored = DigestWriter(writer, Digest(same_as=raw) if not chain else None)
        encoders = []
        out: Any = stored
        for transform in reversed(chain):
            out = transform.encoder(out)
            encoders.append(out)
        encoders.reverse()
        for chunk in chunks:
            out.write(chunk)
            if on_chunk is not None:
                on_chunk(stored)
        for encoder in encoders:  # compressors flush into encryptors, which are still open
            encoder.close()
        writer.commit()
        return stored.digest

    def _store(
        self,
        run: RunInfo,
        name: str,
        source: Source,
        chain: list[Transform],
        sink: Sink,
        place: tuple[str, str],
        parent: Manifest | None,
        progress: ProgressCallback | None,
        t0: float,
        committed: list[str],
    ) -> list[Artifact]:
        """Store one source's stream and its sidecars; return their artifacts."""
        tier, stem = place
        exts = "".join(t.extension for t in chain)
        raw = Digest()  # taken by the pipe in the source's thread: this one compresses
        pipe = ChunkPipe(digest=raw)
        current = [""]
        result: dict[str, Any] = {}
        sidecars: dict[str, _SidecarStream] = {}
        parent_sink = sink

        def open_sidecar(sidecar: str) -> Any:
            if sidecar in sidecars:
                raise SourceError(f"source {name!r} opened its sidecar {sidecar!r} twice")
            side_key = sink.key_for(tier, f"{stem}.{name}.{sidecar}{exts}", run=run)
            side_writer = _SinkWriter(sink.open_artifact(side_key, run_id=run.run_id), sink, side_key)
            sidecars[sidecar] = _SidecarStream(self._encode, chain, side_key, side_writer, run.run_id)
            return _SidecarFile(sidecars[sidecar].pipe)

        def parent_sidecar(sidecar: str) -> Any:
            if parent is None:
                return None
            try:
                artifact = parent.artifact(f"{name}.{sidecar}")
            except ManifestError:
                return None
            checked, fh = self._open_checked(parent_sink, parent, artifact, None)
            return _Closing(checked, fh)

        ctx = BackupContext(
            artifact=name,
            kind="incremental" if parent else "full",
            progress=lambda c: current.__setitem__(0, c),
            parent_sidecar=parent_sidecar,
            open_sidecar=open_sidecar,
        )

        def produce() -> None:
            _working_for(run.run_id)
            try:
                result["extra"] = source.backup(pipe, ctx)
                for side in list(sidecars.values()):
                    side.pipe.finish()
                pipe.finish()
            except BaseException as exc:  # handed to the consumer threads
                for side in list(sidecars.values()):
                    side.pipe.fail(exc)
                pipe.fail(exc)

        last = 0.0

        def report(stored: DigestWriter) -> None:
            nonlocal last
            if progress is not None and time.monotonic() - last > 0.25:
                last = time.monotonic()
                progress(Progress(name, raw.size, stored.digest.size, current[0], last - t0))

        key = sink.key_for(tier, f"{stem}.{name}{source.extension}{exts}", run=run)
        writer: ArtifactWriter = _SinkWriter(sink.open_artifact(key, run_id=run.run_id), sink, key)
        thread = threading.Thread(target=produce, name=f"backupkit-source-{name}", daemon=True)
        thread.start()
        try:
            try:
                stored = self._encode(pipe, chain, writer, report, raw=raw)
            except OSError as exc:
                if isinstance(exc, BackupkitError):
                    raise
                raise SourceError(f"source {name!r} failed: {exc}") from None
            committed.append(key)
            thread.join()
            for side in sidecars.values():
                side.wait()
                if side.error is not None:
                    raise side.error
                committed.append(side.key)
        except BaseException as exc:
            pipe.cancel()
            writer.abort()  # first: a source that does not write again is not waited for
            thread.join(timeout=_SOURCE_GRACE)
            if thread.is_alive():  # stuck in a read that does not come back
                log.warning(
                    "source %s did not stop within %d s; left behind (it stops at its next write)",
                    name, _SOURCE_GRACE,
                )
                for side in sidecars.values():
                    side.pipe.fail(Cancelled("backup cancelled"))
            side_errors = []
            for side in sidecars.values():
                side.wait()
                if side.stored is not None and side.key not in committed:
                    committed.append(side.key)  # stored: deleted with the rest of the run
                if side.error is not None and side.error is not exc and not _caused_by_cancel(side.error):
                    side_errors.append(side.error)
            if side_errors and _caused_by_cancel(exc):
                raise side_errors[0] from None  # the sidecar's own failure, not the stop it caused
            for error in side_errors:
                log.error("storing a sidecar of %s failed too: %s", name, error)
            raise
        if progress is not None:
            progress(Progress(name, raw.size, stored.size, "", time.monotonic() - t0))
        spec = PluginSpec(source.id, source.describe())
        transforms = tuple(PluginSpec(t.id, t.describe()) for t in chain)
        artifacts = [
            Artifact(
                name=name, source=spec, transforms=transforms, key=key,
                raw_size=raw.size, stored_size=stored.size,
                raw_sha256=raw.hexdigest(), stored_sha256=stored.hexdigest(),
                extra=dict(result.get("extra") or {}),
            )
        ]
        for sidecar, side in sidecars.items():
            assert side.stored is not None
            artifacts.append(
                Artifact(
                    name=f"{name}.{sidecar}", source=spec, transforms=transforms, key=side.key,
                    raw_size=side.raw.size, stored_size=side.stored.size,
                    raw_sha256=side.raw.hexdigest(), stored_sha256=side.stored.hexdigest(),
                    extra={"sidecar_of": name},
                )
            )
        return artifacts

    # -- catalog ----------------------------------------------------------------------
    def _read_catalog(
        self,
        sinks: list[Sink] | None = None,
        *,
        keys: dict[str, str] | None = None,
        unreadable: list[str] | None = None,
        foreign: list[str] | None = None,
        sealed: set[str] | None = None,
    ) -> tuple[Catalog, dict[str, Sink]]:
        """The catalog of *sinks* (default: every configured one) and each backup's sink.

        A manifest where its sink would not have written it (one of a backupkit sink
        nested in this one, or of another host's layout) is not this sink's: it is left
        out, as its artifact keys are relative to another root.

        :param keys: filled with each backup's manifest key.
        :param unreadable: filled with the keys of manifests that could not be read.
        :param foreign: filled with the keys of manifests that are not the sink's.
        :param sealed: filled with the ids of backups whose manifest was sealed.
        """
        manifests: list[Manifest] = []
        problems: list[CatalogProblem] = []
        owner: dict[str, Sink] = {}
        for sink in sinks if sinks is not None else self._sinks():
            layout = Layout.of(sink)
            for key in sink.list_manifest_keys():
                if not layout.fits(key):
                    log.debug("%s is not a manifest of sink %s; skipped", key, sink.location)
                    if foreign is not None:
                        foreign.append(key)
                    continue
                origin = f"{sink.location.rstrip('/')}/{key}"
                try:
                    raw = sink.get_bytes(key)
                    data = open_manifest(raw, self.keyring, origin=origin)
                    manifest = Manifest.from_json(data, origin=origin)
                except (ManifestError, NotFoundError) as exc:
                    log.info("%s", exc)  # a catalog problem: `list` and `status` report them
                    problems.append(CatalogProblem(origin, str(exc)))
                    if unreadable is not None:
                        unreadable.append(key)
                    continue
                if not layout.fits(key, hostname=manifest.hostname):
                    log.debug("%s is not a manifest of sink %s; skipped", key, sink.location)
                    if foreign is not None:
                        foreign.append(key)
                    continue
                if manifest.id in owner:
                    continue
                manifests.append(manifest)
                owner[manifest.id] = sink
                if keys is not None:
                    keys[manifest.id] = key
                if sealed is not None and is_sealed_manifest(raw):
                    sealed.add(manifest.id)
        return Catalog(manifests, problems), owner

    def catalog(self) -> Catalog:
        """Every backup in every configured sink; unreadable manifests in ``.problems``."""
        return self._read_catalog()[0]

    def status(self) -> dict[str, Any]:
        """Per set: the newest backup, counts and sizes, and catalog problems."""
        catalog = self.catalog()
        now = self.clock()
        sets = {}
        names = list(dict.fromkeys([*self.config.sets, *catalog.sets]))
        for name in names:
            backups = catalog.for_set(name)
            latest = backups.manifests[-1] if backups else None
            sets[name] = {
                "backups": len(backups),
                "stored_bytes": sum(m.stored_size for m in backups),
                "latest_id": latest.id if latest else None,
                "latest_at": latest.created_at.isoformat() if latest else None,
                "latest_age_seconds": (now - latest.created_at).total_seconds() if latest else None,
            }
        return {
            "sinks": [s.location for s in self._sinks()],
            "sets": sets,
            "problems": [attrs.asdict(p) for p in catalog.problems],
        }

    # -- retention ------------------------------------------------------------------------
    def _prune_groups(
        self, set_name: str | None, policy: RetentionPolicy | None
    ) -> list[tuple[Sink, str | None, RetentionPolicy]]:
        """(sink, set or None for every set in it, policy) to prune."""
        if not self.config.sets:
            return [(sink, set_name, policy or default_policy()) for sink in self._sinks()]
        names = [set_name] if set_name is not None else list(self.config.sets)
        groups: list[tuple[Sink, str | None, RetentionPolicy]] = []
        for name in names:
            set_cfg = self.config.get_set(name)
            chosen = policy or set_cfg.retention or default_policy()
            groups.append((self.sink_for(set_cfg.sink), name, chosen))
        return groups

    def prune(
        self,
        set_name: str | None = None,
        *,
        policy: RetentionPolicy | None = None,
        dry_run: bool = True,
        orphan_grace: dt.timedelta = ORPHAN_GRACE,
    ) -> list[PruneResult]:
        """Plan retention for each set and, unless *dry_run*, delete what the plan drops.

        The policy is *policy*, else the set's ``retention`` table, else
        :func:`backupkit.config.default_policy`. Deletion is crash-safe (manifest first,
        then artifacts); artifacts without a manifest (orphans of crashed runs and
        prunes) older than *orphan_grace* are collected; on a sink that cannot tell which
        backups are running, those of a run that stored no run log yet wait at least
        :data:`backupkit.prune.UNTRACKED_RUN_GRACE`. Returns one result per set.
        """
        now = self.clock()
        results = []
        orphans_seen: set[str] = set()
        for sink, name, chosen in self._prune_groups(set_name, policy):
            keys: dict[str, str] = {}
            unreadable: list[str] = []
            foreign: list[str] = []
            catalog, _ = self._read_catalog([sink], keys=keys, unreadable=unreadable, foreign=foreign)
            plan = plan_retention(catalog.for_set(name), chosen, now=now, tz=self.config.tz)
            deleted, deleted_keys = carry_out(sink, plan, keys, dry_run=dry_run)
            gone = set(deleted)
            orphans = find_orphans(
                (k for k in sink.list_keys() if k not in deleted_keys),
                [m for m in catalog if m.id not in gone],
                [k for i, k in keys.items() if i not in gone],
                unreadable,
                now=now,
                active_runs=sink.active_run_ids(),
                grace=orphan_grace,
                layout=Layout.of(sink),
                foreign=foreign,
            )
            orphans = [k for k in orphans if f"{sink.location}/{k}" not in orphans_seen]
            orphans_seen.update(f"{sink.location}/{k}" for k in orphans)
            if orphans and not dry_run:
                sink.delete(orphans)
            for manifest in plan.delete:
                log.info("%s backup %s: %s", "would delete" if dry_run else "deleted",
                         manifest.id, plan.decision(manifest.id).explanation)
            results.append(PruneResult(
                plan, dry_run, deleted, deleted_keys, tuple(orphans), set_name=name, sink=sink.location
            ))
        return results

    def simulate(
        self,
        policy: RetentionPolicy | None = None,
        *,
        duration: dt.timedelta,
        every: dt.timedelta,
        set_name: str | None = None,
        schedule: Iterable[str] = ("full",),
        sizes: Mapping[str, int] | None = None,
        start: dt.datetime | None = None,
    ) -> list[SimulationRow]:
        """Run a policy forward on a synthetic schedule (B.4); no storage is touched.

        Sizes default to the average stored size per kind in the set's catalog when it
        has backups, else :data:`backupkit.core.simulate.DEFAULT_SIZES`.
        """
        groups = self._prune_groups(set_name, policy)
        if len(groups) > 1:
            raise ConfigError(
                f"{len(groups)} backup sets are configured ({', '.join(str(g[1]) for g in groups)}); "
                "name the one to simulate with --set"
            )
        sink, name, chosen = groups[0]
        if sizes is None:
            catalog = self._read_catalog([sink])[0].for_set(name)
            sizes = dict(DEFAULT_SIZES)
            for kind in ("full", "incremental"):
                of_kind = list(catalog.by_kind(kind))
                if of_kind:
                    sizes[kind] = sum(m.stored_size for m in of_kind) // len(of_kind)
                elif kind == "incremental" and catalog.by_kind("full"):
                    sizes[kind] = max(1, sizes["full"] // 10)  # a guess: a tenth of a full
        return simulate_retention(
            chosen,
            start=start or self.clock(),
            duration=duration,
            every=every,
            tz=self.config.tz,
            backup_size=sizes,
            kind_schedule=tuple(schedule),
        )

    # -- restore and verify -------------------------------------------------------------
    def _open_checked(
        self, sink: Sink, manifest: Manifest, artifact: Artifact, on_read: Callable[[int], None] | None
    ) -> tuple[CheckedReader, Any]:
        chain = self._transforms(artifact.transforms, f"backup {manifest.id}")
        fh = sink.open_read(artifact.key)
        stored = DigestReader(fh)
        stream: Any = stored
        for transform in reversed(chain):
            stream = transform.decoder(stream)
        checked = CheckedReader(
            stream,
            Digest(),
            stored,
            expect_raw=(artifact.raw_size, artifact.raw_sha256),
            expect_stored=(artifact.stored_size, artifact.stored_sha256),
            label=f"artifact {artifact.name} of backup {manifest.id} ({artifact.key})",
            on_read=on_read,
        )
        return checked, fh

    def resolve(self, ref: str = "latest", *, set_name: str | None = None) -> Manifest:
        return self.catalog().resolve(ref, set_name=set_name)

    def manifest_at(self, url: str) -> tuple[Manifest, Sink]:
        """Read the manifest stored at *url*; return it and the sink holding its artifacts.

        Works on a fresh machine with no configuration: ``s3://bucket/prefix/host/
        daily/x.manifest.json`` or a path. Artifact keys are relative to the sink's
        root: the manifest's directory less the directory its artifacts' keys share
        with it (``<hostname>/daily``, ``daily``, ``backups``).
        """
        if not url.endswith(MANIFEST_SUFFIX):
            raise ConfigError(
                f"{url} is not a manifest (*{MANIFEST_SUFFIX}); give one, a backup id or 'latest'"
            )
        directory, sep, name = url.rpartition("/")
        directory = directory if sep else "."
        data = open_manifest(self.sink_for(directory).get_bytes(name), self.keyring, origin=url)
        manifest = Manifest.from_json(data, origin=url)
        shared = posixpath.dirname(manifest.artifacts[0].key) if manifest.artifacts else ""
        if shared and directory.endswith("/" + shared):
            directory = directory[: -len(shared) - 1]
        return manifest, self.sink_for(directory)

    def _catalog_for(self, ref: str) -> tuple[Catalog, dict[str, Sink], str, set[str]]:
        """The catalog to resolve *ref* in, and *ref* as an id for it: every configured
        sink's catalog, or for a manifest's URL (:meth:`manifest_at`) its own sink's; and
        the ids of the backups whose manifests were sealed."""
        sealed: set[str] = set()
        if not is_location(ref):
            catalog, owner = self._read_catalog(sealed=sealed)
            return catalog, owner, ref, sealed
        manifest, sink = self.manifest_at(ref)
        catalog, owner = self._read_catalog([sink], sealed=sealed)
        return catalog, owner, manifest.id, sealed

    def _refuse_unencrypted(
        self, manifests: Iterable[Manifest], catalog: Catalog, sealed: set[str]
    ) -> None:
        """Refuse a backup of a set configured to encrypt that is not encrypted as the set
        says, when the set already has backups that are: whoever can write to the sink,
        without any key, could otherwise plant a plain backup (or rewrite a plain
        manifest) and have it restored. Backups older than the set's first encrypted one
        (from before encryption was turned on) are restored as they are.
        """
        def encrypts(transforms: Iterable[PluginRef | PluginSpec]) -> bool:
            return any(t.id == "aes" for t in transforms)

        def data_encrypted(m: Manifest) -> bool:
            return all(encrypts(a.transforms) for a in m.artifacts)

        def as_configured(m: Manifest, set_cfg: SetConfig) -> bool:
            return (data_encrypted(m) or not encrypts(set_cfg.transforms)) and (
                m.id in sealed or not set_cfg.encrypt_manifest
            )

        for manifest in manifests:
            set_cfg = self.config.sets.get(manifest.set_name)
            if set_cfg is None or as_configured(manifest, set_cfg):
                continue
            first = next(
                (m for m in catalog.for_set(manifest.set_name) if as_configured(m, set_cfg)), None
            )
            if first is None or manifest.created_at < first.created_at:
                continue
            what = "manifest is not sealed" if data_encrypted(manifest) else "artifacts are not encrypted"
            raise IntegrityError(
                f"backup {manifest.id} of set {manifest.set_name} is not encrypted as the set is "
                f"configured ({what}), yet the set's backups have been since {first.id}: it was "
                "not written by this configuration, and may have been planted by someone who can "
                "write to the sink; restore an older backup, or pass --allow-unencrypted if you "
                "know where it comes from"
            )

    def presigned_url(
        self,
        ref: str,
        artifact: str | None = None,
        *,
        expires: int = 3600,
        set_name: str | None = None,
    ) -> str:
        """An expiring GET URL for an artifact of backup *ref* (seed 002's download URL).

        :param ref: ``latest``, a backup id or unique prefix, the URL of a manifest, or
            the URL of any stored object (``s3://bucket/key``), which is signed as is.
        :param artifact: the artifact's name; may be left out if the backup has one.
        :param expires: seconds the URL stays valid (the S3 sink allows up to 7 days).
        """
        if is_location(ref) and not ref.endswith(MANIFEST_SUFFIX):
            directory, _, name = ref.rpartition("/")
            return self.sink_for(directory).presign(name, expires=expires)
        if is_location(ref):
            manifest, sink = self.manifest_at(ref)
        else:
            catalog, owner = self._read_catalog()
            manifest = plan_restore(catalog, target=_restore_target(ref), set_name=set_name).chain[-1]
            sink = owner[manifest.id]
        if artifact is None:
            data = [a for a in manifest.artifacts if not is_sidecar(a)]
            if len(data) != 1:
                names = ", ".join(a.name for a in data) or "none"
                raise ConfigError(
                    f"backup {manifest.id} has {len(data)} artifacts ({names}); name one with --artifact"
                )
            chosen = data[0]
        else:
            chosen = manifest.artifact(artifact)
        return sink.presign(chosen.key, expires=expires)

    def restore(
        self,
        ref: str = "latest",
        *,
        to: str | os.PathLike[str] | None,
        set_name: str | None = None,
        artifacts: Iterable[str] | None = None,
        overwrite: bool = False,
        allow_external_symlinks: bool = False,
        allow_unencrypted: bool = False,
        progress: ProgressCallback | None = None,
    ) -> RestoreResult:
        """Restore backup *ref* (``latest``, an id or a unique prefix) into *to*.

        One artifact restores into *to*; several each into ``to/<artifact name>``.
        An incremental backup restores its whole chain, full backup first. Every byte
        is checked against the manifests before anything becomes visible.
        *allow_external_symlinks* lets symlinks leading out of the target (``/etc/localtime``,
        a virtualenv's ``bin/python``) be restored as they are, instead of refusing the backup.
        *allow_unencrypted* restores a backup that is not encrypted although its set is
        configured to encrypt (see :meth:`_refuse_unencrypted`).
        """
        catalog, owner, ref, sealed = self._catalog_for(ref)
        links = plan_restore(catalog, target=_restore_target(ref), set_name=set_name).chain
        if not allow_unencrypted:
            self._refuse_unencrypted(links, catalog, sealed)
        manifest = links[-1]
        if artifacts is None:
            wanted = [a.name for a in manifest.artifacts if not is_sidecar(a)]
        else:
            wanted = list(artifacts)
        chosen = [manifest.artifact(n) for n in wanted]
        t0 = time.monotonic()
        total = [0]
        targets: dict[str, str] = {}

        def on_read(n: int) -> None:
            total[0] += n
            if progress is not None:
                progress(Progress(current_name[0], total[0], 0, "", time.monotonic() - t0))

        current_name = [""]
        for artifact in chosen:
            current_name[0] = artifact.name
            target = None if to is None else Path(to)
            if target is not None and len(chosen) > 1:
                target = target / artifact.name
            source = self.plugins.source(artifact.source.id).from_params(artifact.source.params)
            ctx = RestoreContext(
                artifact=artifact.name, target=target, overwrite=overwrite,
                allow_external_symlinks=allow_external_symlinks,
            )
            parts = [(m, m.artifact(artifact.name)) for m in links]
            if len(parts) == 1:
                checked, fh = self._open_checked(owner[manifest.id], manifest, artifact, on_read)
                with fh, ReadAhead(checked, name=f"backupkit-read-{artifact.name}") as ahead:
                    source.restore(ahead, ctx)
                    ahead.finish()  # in case the source stopped before end of stream
            else:
                streams = self._chain_streams(owner, parts, on_read)
                with contextlib.closing(streams):
                    source.restore_chain(streams, ctx)
                    if next(streams, None) is not None:  # also checks the last stream's end
                        raise RestoreError(
                            f"source {source.id!r} did not restore every backup of the chain of "
                            f"{manifest.id}; this is a bug in the plugin"
                        )
            targets[artifact.name] = str(target) if target else ""
            log.info("restored %s of backup %s to %s", artifact.name, manifest.id, target)
        return RestoreResult(manifest.id, targets, total[0], time.monotonic() - t0)

    def _chain_streams(
        self,
        owner: Mapping[str, Sink],
        parts: list[tuple[Manifest, Artifact]],
        on_read: Callable[[int], None],
    ) -> Generator[Any, None, None]:
        for manifest, artifact in parts:
            checked, fh = self._open_checked(owner[manifest.id], manifest, artifact, on_read)
            with fh, ReadAhead(checked, name=f"backupkit-read-{artifact.name}") as ahead:
                yield ahead
                ahead.finish()

    def verify(self, ref: str = "latest", *, set_name: str | None = None) -> VerifyResult:
        """Re-read every stored artifact a restore of backup *ref* would read (an
        incremental's whole chain) and check both checksums."""
        catalog, owner, ref, sealed = self._catalog_for(ref)
        links = plan_restore(catalog, target=_restore_target(ref), set_name=set_name).chain
        target = links[-1]
        try:
            self._refuse_unencrypted(links, catalog, sealed)
        except IntegrityError as exc:
            return VerifyResult(
                target.id,
                tuple(ArtifactCheck(m.id, a.name, False, str(exc)) for m in links for a in m.artifacts),
            )
        checks = []
        for manifest, artifact in ((m, a) for m in links for a in m.artifacts):
            sink = owner[manifest.id]
            note = None
            try:
                try:
                    checked, fh = self._open_checked(sink, manifest, artifact, None)
                except KeyMissingError as missing:  # without the key: the stored checksum only
                    self._check_stored(sink, manifest, artifact)
                    note = (f"stored checksum only; encryption key {missing.key_id} is not "
                            "configured, so decryption (AEAD) was not checked")
                else:
                    with fh:
                        while checked.read(1 << 20):
                            pass
                        checked.check()
            except BackupkitError as exc:
                checks.append(ArtifactCheck(manifest.id, artifact.name, False, str(exc)))
            else:
                checks.append(ArtifactCheck(manifest.id, artifact.name, True, note=note))
        return VerifyResult(target.id, tuple(checks))

    def _check_stored(self, sink: Sink, manifest: Manifest, artifact: Artifact) -> None:
        """Compare an artifact's stored bytes with its manifest, without decoding them."""
        digest = Digest()
        with sink.open_read(artifact.key) as fh:
            for _ in _chunks(fh, digest):
                pass
        if (digest.size, digest.hexdigest()) != (artifact.stored_size, artifact.stored_sha256):
            raise IntegrityError(
                f"artifact {artifact.name} of backup {manifest.id} ({artifact.key}) does not "
                f"match its manifest checksum (stored bytes changed: {digest.size} bytes read, "
                f"{artifact.stored_size} recorded); it was damaged or tampered with, restore "
                "an older backup"
            )
