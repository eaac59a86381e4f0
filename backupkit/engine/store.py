"""Storing one source of a backup: its stream, read in a thread of its own, through the
chain into the sink, and the sidecars (indexes) it writes beside it."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import attrs

from backupkit.core.manifest import Artifact, Manifest, PluginSpec
from backupkit.engine.parts import Parts
from backupkit.engine.pipeline import (
    Closing,
    SidecarFile,
    SidecarStream,
    SinkWriter,
    caused_by_cancel,
    encode,
    open_checked,
)
from backupkit.engine.results import Progress, ProgressCallback
from backupkit.engine.runlog import working_for
from backupkit.errors import BackupkitError, ManifestError, SourceError
from backupkit.plugin import ArtifactWriter, BackupContext, RunInfo, Sink, Source, Transform
from backupkit.streaming import Cancelled, ChunkPipe, Digest, DigestWriter

log = logging.getLogger("backupkit")

#: Seconds a failed or interrupted backup waits for its source thread to stop.
SOURCE_GRACE = 10


@attrs.define
class SourceStore:
    """One source's part of a backup run: its main stream and its sidecars."""

    parts: Parts
    sink: Sink
    chain: list[Transform]
    committed: list[str]  # the run's keys stored so far: this source's are added
    progress: ProgressCallback | None
    t0: float  # when the run began (time.monotonic)
    info: RunInfo  # the run, as hooks and sinks see it
    name: str
    source: Source
    tier: str
    stem: str
    parent: Manifest | None
    raw: Digest = attrs.field(factory=Digest)  # taken by the pipe in the source's thread
    current: str = ""  # what the source says it is reading, for progress
    result: Any = None  # what the source's backup returned: extra facts for the manifest
    sidecars: dict[str, SidecarStream] = attrs.field(factory=dict)
    last_report: float = 0.0

    @property
    def extensions(self) -> str:
        """The file extensions the chain adds (``.zst.bkenc``)."""
        return "".join(t.extension for t in self.chain)

    def open_sidecar(self, sidecar: str) -> Any:  # a SidecarFile
        """Start storing sidecar *sidecar*: a stream of its own, stored as it is written."""
        if sidecar in self.sidecars:
            raise SourceError(f"source {self.name!r} opened its sidecar {sidecar!r} twice")
        sink = self.sink
        key = sink.key_for(self.tier, f"{self.stem}.{self.name}.{sidecar}{self.extensions}",
                           run=self.info)
        writer = SinkWriter(sink.open_artifact(key, run_id=self.info.run_id), sink, key)
        self.sidecars[sidecar] = SidecarStream(self.chain, key, writer, self.info.run_id)
        return SidecarFile(self.sidecars[sidecar].pipe)

    def parent_sidecar(self, sidecar: str) -> Any:  # a Closing or None
        """The parent backup's sidecar *sidecar* of this source, checked, or ``None``."""
        if self.parent is None:
            return None
        try:
            artifact = self.parent.artifact(f"{self.name}.{sidecar}")
        except ManifestError:
            return None
        checked, fh = open_checked(self.parts, self.sink, self.parent, artifact, None)
        return Closing(checked, fh)

    def report(self, stored: DigestWriter) -> None:
        """Report progress, at most four times a second."""
        progress = self.progress
        if progress is not None and time.monotonic() - self.last_report > 0.25:
            self.last_report = time.monotonic()
            progress(Progress(self.name, self.raw.size, stored.digest.size, self.current,
                              self.last_report - self.t0))

    def run(self) -> list[Artifact]:
        """Store the source's stream and its sidecars; return their artifacts."""
        sink, chain, committed = self.sink, self.chain, self.committed
        pipe = ChunkPipe(digest=self.raw)
        ctx = BackupContext(
            artifact=self.name,
            kind="incremental" if self.parent else "full",
            progress=lambda c: setattr(self, "current", c),
            parent_sidecar=self.parent_sidecar,
            open_sidecar=self.open_sidecar,
        )

        def produce() -> None:
            working_for(self.info.run_id)
            try:
                self.result = self.source.backup(pipe, ctx)
                for side in list(self.sidecars.values()):
                    side.pipe.finish()
                pipe.finish()
            except BaseException as exc:  # handed to the consumer threads
                for side in list(self.sidecars.values()):
                    side.pipe.fail(exc)
                pipe.fail(exc)

        key = sink.key_for(self.tier, f"{self.stem}.{self.name}{self.source.stream_extension()}"
                           f"{self.extensions}", run=self.info)
        writer: ArtifactWriter = SinkWriter(sink.open_artifact(key, run_id=self.info.run_id), sink, key)
        thread = threading.Thread(target=produce, name=f"backupkit-source-{self.name}", daemon=True)
        thread.start()
        try:
            try:
                stored = encode(pipe, chain, writer, self.report, raw=self.raw)
            except OSError as exc:
                if isinstance(exc, BackupkitError):
                    raise
                raise SourceError(f"source {self.name!r} failed: {exc}") from None
            committed.append(key)
            thread.join()
            for side in self.sidecars.values():
                side.wait()
                if side.error is not None:
                    raise side.error
                committed.append(side.key)
        except BaseException as exc:
            pipe.cancel()
            writer.abort()  # first: a source that does not write again is not waited for
            self.stop(thread, exc)
            raise
        if self.progress is not None:
            self.progress(Progress(self.name, self.raw.size, stored.size, "",
                                          time.monotonic() - self.t0))
        return self.artifacts(key, stored)

    def stop(self, thread: threading.Thread, exc: BaseException) -> None:
        """After a failure: wait a while for the source, collect the sidecars, and raise a
        sidecar's own failure if it caused the stop."""
        committed = self.committed
        thread.join(timeout=SOURCE_GRACE)
        if thread.is_alive():  # stuck in a read that does not come back
            log.warning(
                "source %s did not stop within %d s; left behind (it stops at its next write)",
                self.name, SOURCE_GRACE,
            )
            for side in self.sidecars.values():
                side.pipe.fail(Cancelled("backup cancelled"))
        side_errors = []
        for side in self.sidecars.values():
            side.wait()
            if side.stored is not None and side.key not in committed:
                committed.append(side.key)  # stored: deleted with the rest of the run
            if side.error is not None and side.error is not exc and not caused_by_cancel(side.error):
                side_errors.append(side.error)
        if side_errors and caused_by_cancel(exc):
            raise side_errors[0] from None  # the sidecar's own failure, not the stop it caused
        for error in side_errors:
            log.error("storing a sidecar of %s failed too: %s", self.name, error)

    def artifacts(self, key: str, stored: Digest) -> list[Artifact]:
        """The artifacts of the stored stream and of each sidecar."""
        spec = PluginSpec(self.source.id, self.source.describe())
        transforms = tuple(PluginSpec(t.id, t.describe()) for t in self.chain)
        artifacts = [
            Artifact(
                name=self.name, source=spec, transforms=transforms, key=key,
                raw_size=self.raw.size, stored_size=stored.size,
                raw_sha256=self.raw.hexdigest(), stored_sha256=stored.hexdigest(),
                extra=dict(self.result or {}),
            )
        ]
        for sidecar, side in self.sidecars.items():
            assert side.stored is not None
            artifacts.append(
                Artifact(
                    name=f"{self.name}.{sidecar}", source=spec, transforms=transforms,
                    key=side.key, raw_size=side.raw.size, stored_size=side.stored.size,
                    raw_sha256=side.raw.hexdigest(), stored_sha256=side.stored.hexdigest(),
                    extra={"sidecar_of": self.name},
                )
            )
        return artifacts
