"""The engine: the one place that calls hooks, reads the clock and orders I/O.

A backup run, for one set:

1. ``backupkit_before_run``; the sink's ``begin_run`` (collects stale temp data).
2. For each source: read it in a thread into a bounded :class:`ChunkPipe`; in this
   thread push the chunks through the transform chain (compress, then encrypt)
   into a sink writer; both ends are hashed. Commit the artifact.
3. Write the manifest, last. Only now does the backup exist for the catalog.
4. ``backupkit_after_run``; the run's log goes to ``logs/``.

If anything fails or is interrupted, the artifacts already committed are deleted,
the one being written is aborted, the temp directory removed, and
``backupkit_on_failure`` is called: the catalog is exactly as before.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from backupkit._version import __version__
from backupkit.config import Config, PluginRef, SetConfig
from backupkit.core.catalog import Catalog, CatalogProblem
from backupkit.core.manifest import MANIFEST_SUFFIX, Artifact, Manifest, PluginSpec, backup_id
from backupkit.errors import (
    BackupkitError,
    ConfigError,
    ManifestError,
    NotFoundError,
    SourceError,
)
from backupkit.plugins import Plugins, make_plugin_manager
from backupkit.run import RunInfo
from backupkit.sinks.base import ArtifactWriter, Sink
from backupkit.sources.base import BackupContext, RestoreContext, Source
from backupkit.streaming import CheckedReader, ChunkPipe, Digest, DigestReader, DigestWriter
from backupkit.transforms.base import Transform, check_chain

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


class _RunLog(logging.Handler):
    """Collects a run's log records for its log file in ``logs/``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) < 100_000:
            self.lines.append(self.format(record))


@attrs.define
class Engine:
    """Runs backups, restores and verifications for a configuration.

    Build one with :meth:`from_config` (a dict, a :class:`Config`, or a TOML path).
    Each engine has its own plugin manager.
    """

    config: Config
    plugins: Plugins = attrs.field(factory=make_plugin_manager)
    clock: Clock = _utcnow

    @classmethod
    def from_config(
        cls,
        config: Config | Mapping[str, Any] | str | os.PathLike[str],
        *,
        plugins: Iterable[object] = (),
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> Engine:
        if isinstance(config, Config):
            cfg = config
        elif isinstance(config, Mapping):
            cfg = Config.from_dict(config, env=env)
        else:
            cfg = Config.from_file(config, env=env)
        return cls(cfg, make_plugin_manager(plugins=plugins), clock or _utcnow)

    # -- plugin construction ------------------------------------------------------
    def sink_for(self, ref: PluginRef | str) -> Sink:
        if isinstance(ref, str):
            found = self.plugins.hook.backupkit_sink_for_url(url=ref)
            if found is None:
                raise ConfigError(f"no sink plugin handles {ref!r}; is the plugin installed?")
            ref = PluginRef(id=found[0], params=found[1])
        return self.plugins.sink(ref.id).from_params(ref.params)

    def _sources(self, set_cfg: SetConfig) -> list[tuple[str, Source]]:
        return [
            (ref.name or ref.id, self.plugins.source(ref.id).from_params(ref.params))
            for ref in set_cfg.sources
        ]

    def _transforms(self, refs: Iterable[PluginRef | PluginSpec], where: str) -> list[Transform]:
        chain = [self.plugins.transform(r.id).from_params(r.params) for r in refs]
        check_chain(chain, where=where)
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
        if kind != "full":
            raise ConfigError(f"backup kind {kind!r} is not supported yet; use 'full'")
        where = f"set {set_cfg.name!r}"
        sources = self._sources(set_cfg)
        chain = self._transforms(set_cfg.transforms, where)
        sink = self.sink_for(set_cfg.sink)
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
        tier = "daily" if kind == "full" else "incremental"
        stem = f"{set_cfg.name}_{kind}_{run.run_id}"
        run_log = _RunLog()
        logging.getLogger("backupkit").addHandler(run_log)
        committed: list[str] = []
        began = False
        t0 = time.monotonic()
        try:
            self.plugins.hook.backupkit_before_run(run=run)
            sink.begin_run(run.run_id)
            began = True
            log.info("backup %s of set %s to %s started", run.run_id, set_cfg.name, sink.location)
            artifacts = []
            for name, source in sources:
                ext = source.extension + "".join(t.extension for t in chain)
                key = sink.key_for(tier, f"{stem}.{name}{ext}")
                artifacts.append(
                    self._store(run, name, source, chain, sink, key, kind, progress, t0, committed)
                )
            manifest = Manifest(
                id=run.run_id,
                set_name=set_cfg.name,
                created_at=started,
                kind=kind,  # type: ignore[arg-type]
                parent_id=None,
                hostname=run.hostname,
                reason=reason,
                tags=tuple(dict.fromkeys([*set_cfg.tags, *tags])),
                tier=tier,
                tool_version=__version__,
                duration_seconds=round(time.monotonic() - t0, 3),
                artifacts=tuple(artifacts),
            )
            sink.put_bytes(sink.key_for(tier, stem + MANIFEST_SUFFIX), manifest.to_json(), run_id=run.run_id)
        except BaseException as exc:
            log.error("backup %s failed: %s", run.run_id, exc)
            if committed:
                try:
                    sink.delete(committed)
                except BackupkitError as cleanup_error:
                    log.error("could not remove %s: %s", committed, cleanup_error)
            self._finish_run(sink, run, stem, run_log, began)
            self.plugins.hook.backupkit_on_failure(run=run, error=exc)
            raise
        log.info(
            "backup %s stored %d bytes (%d raw) in %.1fs",
            run.run_id, manifest.stored_size, manifest.raw_size, manifest.duration_seconds,
        )
        self._finish_run(sink, run, stem, run_log, began)
        self.plugins.hook.backupkit_after_run(run=run, manifest=manifest)
        return manifest

    def _finish_run(self, sink: Sink, run: RunInfo, stem: str, run_log: _RunLog, began: bool) -> None:
        logging.getLogger("backupkit").removeHandler(run_log)
        if not began:
            return
        try:
            text = ("\n".join(run_log.lines) + "\n").encode()
            sink.put_bytes(sink.log_key(stem + ".log"), text, run_id=run.run_id)
        except BackupkitError as exc:  # a full disk must not hide the real outcome
            log.warning("could not write the run log: %s", exc)
        finally:
            sink.end_run(run.run_id)

    def _store(
        self,
        run: RunInfo,
        name: str,
        source: Source,
        chain: list[Transform],
        sink: Sink,
        key: str,
        kind: str,
        progress: ProgressCallback | None,
        t0: float,
        committed: list[str],
    ) -> Artifact:
        pipe = ChunkPipe()
        raw = DigestWriter(pipe)
        current = [""]
        result: dict[str, Any] = {}

        def produce() -> None:
            ctx = BackupContext(artifact=name, kind=kind, progress=lambda c: current.__setitem__(0, c))
            try:
                result["extra"] = source.backup(raw, ctx)
                pipe.finish()
            except BaseException as exc:  # handed to the consumer thread
                pipe.fail(exc)

        writer: ArtifactWriter = sink.open_artifact(key, run_id=run.run_id)
        stored = DigestWriter(writer)
        encoders = []
        out: Any = stored
        for transform in reversed(chain):
            out = transform.encoder(out)
            encoders.append(out)
        encoders.reverse()
        thread = threading.Thread(target=produce, name=f"backupkit-source-{name}", daemon=True)
        thread.start()
        last = 0.0
        try:
            try:
                for chunk in pipe:
                    out.write(chunk)
                    if progress is not None and time.monotonic() - last > 0.25:
                        last = time.monotonic()
                        progress(Progress(name, raw.digest.size, stored.digest.size, current[0], last - t0))
            except OSError as exc:
                if isinstance(exc, BackupkitError):
                    raise
                raise SourceError(f"source {name!r} failed: {exc}") from None
            for encoder in encoders:
                encoder.close()
            writer.commit()
            committed.append(key)
        except BaseException:
            pipe.cancel()
            thread.join()
            writer.abort()
            raise
        thread.join()
        if progress is not None:
            progress(Progress(name, raw.digest.size, stored.digest.size, "", time.monotonic() - t0))
        return Artifact(
            name=name,
            source=PluginSpec(source.id, source.describe()),
            transforms=tuple(PluginSpec(t.id, t.describe()) for t in chain),
            key=key,
            raw_size=raw.digest.size,
            stored_size=stored.digest.size,
            raw_sha256=raw.digest.hexdigest(),
            stored_sha256=stored.digest.hexdigest(),
            extra=dict(result.get("extra") or {}),
        )

    # -- catalog ----------------------------------------------------------------------
    def _read_catalog(self) -> tuple[Catalog, dict[str, Sink]]:
        manifests: list[Manifest] = []
        problems: list[CatalogProblem] = []
        owner: dict[str, Sink] = {}
        for sink in self._sinks():
            for key in sink.list_manifest_keys():
                origin = f"{sink.location.rstrip('/')}/{key}"
                try:
                    manifest = Manifest.from_json(sink.get_bytes(key), origin=origin)
                except (ManifestError, NotFoundError) as exc:
                    log.warning("%s", exc)
                    problems.append(CatalogProblem(origin, str(exc)))
                    continue
                if manifest.id in owner:
                    continue
                manifests.append(manifest)
                owner[manifest.id] = sink
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

    def restore(
        self,
        ref: str = "latest",
        *,
        to: str | os.PathLike[str] | None,
        set_name: str | None = None,
        artifacts: Iterable[str] | None = None,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
    ) -> RestoreResult:
        """Restore backup *ref* (``latest``, an id or a unique prefix) into *to*.

        One artifact restores into *to*; several each into ``to/<artifact name>``.
        Every byte is checked against the manifest before anything becomes visible.
        """
        catalog, owner = self._read_catalog()
        manifest = catalog.resolve(ref, set_name=set_name)
        sink = owner[manifest.id]
        wanted = list(artifacts) if artifacts is not None else [a.name for a in manifest.artifacts]
        chosen = [manifest.artifact(n) for n in wanted]
        t0 = time.monotonic()
        total = [0]
        targets: dict[str, str] = {}
        for artifact in chosen:
            target = None if to is None else Path(to)
            if target is not None and len(chosen) > 1:
                target = target / artifact.name
            source = self.plugins.source(artifact.source.id).from_params(artifact.source.params)

            def on_read(n: int, name: str = artifact.name) -> None:
                total[0] += n
                if progress is not None:
                    progress(Progress(name, total[0], 0, "", time.monotonic() - t0))

            checked, fh = self._open_checked(sink, manifest, artifact, on_read)
            with fh:
                source.restore(
                    checked,  # type: ignore[arg-type]
                    RestoreContext(artifact=artifact.name, target=target, overwrite=overwrite),
                )
                checked.check()  # in case the source stopped before end of stream
            targets[artifact.name] = str(target) if target else ""
            log.info("restored %s of backup %s to %s", artifact.name, manifest.id, target)
        return RestoreResult(manifest.id, targets, total[0], time.monotonic() - t0)

    def verify(self, ref: str = "latest", *, set_name: str | None = None) -> VerifyResult:
        """Re-read every stored artifact of a backup and check both checksums."""
        catalog, owner = self._read_catalog()
        manifest = catalog.resolve(ref, set_name=set_name)
        sink = owner[manifest.id]
        checks = []
        for artifact in manifest.artifacts:
            try:
                checked, fh = self._open_checked(sink, manifest, artifact, None)
                with fh:
                    while checked.read(1 << 20):
                        pass
                    checked.check()
            except BackupkitError as exc:
                checks.append(ArtifactCheck(manifest.id, artifact.name, False, str(exc)))
            else:
                checks.append(ArtifactCheck(manifest.id, artifact.name, True))
        return VerifyResult(manifest.id, tuple(checks))
