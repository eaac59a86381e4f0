"""Restore drills: one backup of a set restored into scratch targets and checked, its
times and results stored as a :class:`~backupkit.core.drill.DrillRecord` in the sink.

Each artifact goes where its source's :meth:`~backupkit.plugin.Source.drill_target` says
(a temp directory, a throwaway database, a temporary ``redis-server``), through the same
restore a user runs (every byte checked against the manifest, a database's row counts, a
server's key counts), then through the source's :meth:`~backupkit.plugin.Source.drill_check`
(every file's sha256 against the file index). The artifacts are restored side by side.
Then the set's own checks run: SQL queries that must return true on each restored
database, commands that must exit 0. The :class:`~backupkit.plugin.scratch.Scratch`
space removes every scratch target at the end, also when the drill fails, is interrupted
or killed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from backupkit._version import __version__
from backupkit.core.drill import ArtifactDrill, CheckResult, DrillRecord, DrillSettings
from backupkit.core.manifest import Artifact, Manifest
from backupkit.core.restore import plan_restore
from backupkit.engine import drillrecords
from backupkit.engine.guards import refuse_unencrypted
from backupkit.engine.operation import new_run_id, run_operation
from backupkit.engine.parts import Parts
from backupkit.engine.pipeline import open_checked
from backupkit.engine.resolve import is_sidecar, restore_target, scan_for
from backupkit.engine.restore import RestoreRun, redacted
from backupkit.engine.results import Progress, ProgressCallback
from backupkit.engine.verify import read_through
from backupkit.errors import BackupkitError, DrillFailed, RestoreError
from backupkit.params import strip_userinfo
from backupkit.plugin import Operation, RestoreContext, Sink, Source
from backupkit.plugin.scratch import Scratch

log = logging.getLogger("backupkit")

#: Restore options for drills: a scratch database is empty (``create``: its tables from the
#: backup) and has none of the original's roles; files are hashed as they are written
#: (``file_sha256``), so the drill check need not read them all again.
OPTIONS = {"create": True, "no_owner": True, "no_privileges": True, "file_sha256": True}
#: How many artifacts are restored at once.
PARALLEL = 4


def drill(parts: Parts, ref: str = "latest", *, set_name: str | None = None,
          progress: ProgressCallback | None = None) -> DrillRecord:
    """Drill backup *ref* of *set_name* inside the operation hook; see :meth:`backupkit.Engine.drill`."""
    started = parts.clock()
    operation = Operation("drill", new_run_id(started), started, set_name=set_name)
    return run_operation(parts.plugins, operation, lambda: _drill(parts, ref, set_name, operation, progress))


def _drill(parts: Parts, ref: str, set_name: str | None, operation: Operation,
           progress: ProgressCallback | None) -> DrillRecord:
    found, ref = scan_for(parts, ref)
    links = list(plan_restore(found.catalog, target=restore_target(ref), set_name=set_name).chain)
    refuse_unencrypted(links, found.catalog, found.sealed, config=parts.config, roles=parts.plugins.roles,
                       unauthenticated=found.unauthenticated)
    manifest = links[-1]
    set_cfg = parts.config.sets.get(manifest.set_name)
    settings = set_cfg.drill if set_cfg is not None else DrillSettings()
    run = DrillRun(parts, links, found.owner, settings, progress)
    t0 = time.monotonic()
    log.info("drill %s: restoring backup %s of set %s into scratch targets", operation.run_id, manifest.id,
             manifest.set_name)
    with Scratch(settings) as scratch:
        artifacts = run.restore_all(scratch)
        checks = run.user_checks(scratch, artifacts) if all(a.ok for a in artifacts) else []
    sink = found.owner[manifest.id]
    record = DrillRecord(
        drill_id=operation.run_id, set_name=manifest.set_name, backup_id=manifest.id,
        started_at=operation.started_at, seconds=time.monotonic() - t0,
        ok=all(a.ok for a in artifacts) and all(c.ok for c in checks),
        artifacts=tuple(artifacts), checks=tuple(checks), host=socket.gethostname(), version=__version__,
        backup_started_at=manifest.created_at, sink=strip_userinfo(sink.location))
    drillrecords.store(sink, record)
    if not record.ok:
        raise DrillFailed(f"drill of backup {manifest.id} failed: " + "; ".join(record.failures()), record)
    log.info("drill %s: backup %s restored and checked in %.1f s", operation.run_id, manifest.id, record.seconds)
    return record


@attrs.define
class DrillRun:
    """One drill: the chain of the backup drilled, where it is stored, the set's checks."""

    parts: Parts
    links: list[Manifest]
    owner: Mapping[str, Sink]
    settings: DrillSettings
    progress: ProgressCallback | None = None
    targets: dict[str, str] = attrs.field(factory=dict)  # artifact name: its scratch target
    read: dict[str, int] = attrs.field(factory=dict)
    t0: float = attrs.field(factory=time.monotonic)

    @property
    def manifest(self) -> Manifest:
        """The backup drilled (the chain's last)."""
        return self.links[-1]

    def restore_all(self, scratch: Scratch) -> list[ArtifactDrill]:
        """Every restorable artifact, side by side, the largest started first; in the
        manifest's order."""
        artifacts = [a for a in self.manifest.artifacts if not is_sidecar(a)]
        pool = concurrent.futures.ThreadPoolExecutor(max(1, min(PARALLEL, len(artifacts))),
                                                     thread_name_prefix="backupkit-drill")
        try:
            futures = {a.name: pool.submit(self.restore_one, scratch, a.name)
                       for a in sorted(artifacts, key=lambda a: -a.stored_size)}
            return [futures[a.name].result() for a in artifacts]
        finally:
            # Interrupted: do not wait for running restores; removing the scratch targets
            # (next, in the caller) ends them.
            pool.shutdown(wait=False, cancel_futures=True)

    def restore_one(self, scratch: Scratch, name: str) -> ArtifactDrill:
        """Restore and check artifact *name* into its scratch target."""
        artifact = self.manifest.artifact(name)
        t0 = time.monotonic()
        self.read[name] = 0
        target_shown = ""
        try:
            source = self.parts.plugins.source(artifact.source.id).from_params(artifact.source.params)
            ctx = RestoreContext(artifact=name, target=None, overwrite=False, allow_external_symlinks=True,
                                 options=OPTIONS, facts=artifact.extra, open_sidecar=self.sidecar_opener(scratch, name))
            target = source.drill_target(scratch, ctx)
            if target is None:
                target_shown = "none (the stream is read and checked only)"
                checks = {"read_only": True, "note": self.read_only(artifact) or ""}
            else:
                target_shown = _shown(target)
                self.targets[name] = str(target)
                checks = self.restore_into(source, artifact, target, scratch, ctx)
        except BackupkitError as exc:
            log.warning("drill: artifact %s of backup %s failed: %s", name, self.manifest.id, exc)
            return ArtifactDrill(name, artifact.source.id, time.monotonic() - t0, self.read[name], False,
                                 target_shown, {}, strip_userinfo(redacted(str(exc))))
        return ArtifactDrill(name, artifact.source.id, time.monotonic() - t0, self.read[name], True,
                             target_shown, checks)

    def restore_into(self, source: Source, artifact: Artifact, target: Path | str, scratch: Scratch,
                     ctx: RestoreContext) -> dict[str, Any]:
        """The restore a user would run, into *target*, then the source's drill checks."""
        name = artifact.name
        restore = RestoreRun(self.parts, self.links, self.owner, {name: target}, options=OPTIONS,
                             allow_external_symlinks=True, progress=self.counter(name))
        result = restore.run([name])
        checks = dict(result.checks.get(name, {}))
        checks.pop("file", None)  # a scratch path, gone with the drill
        # What the restore found for the drill check only (a file's hashes): not recorded.
        private = {k: checks.pop(k) for k in [k for k in checks if k.startswith("_")]}
        extra = source.drill_check(target, scratch, attrs.evolve(ctx, target=target,
                                                                 options={**ctx.options, **private}))
        return {**checks, **(extra or {})}

    def _add(self, name: str) -> Callable[[int], None]:
        def on_read(n: int) -> None:
            self.read[name] = self.read.get(name, 0) + n
        return on_read

    def read_only(self, artifact: Artifact) -> str | None:
        """Read and check every link's stream of *artifact* without restoring it."""
        note = None
        for manifest in self.links:
            stored = manifest.artifact(artifact.name)
            checked, fh = open_checked(self.parts, self.owner[manifest.id], manifest, stored, self._add(artifact.name))
            with fh:
                note = read_through(self.parts, stored, checked)
                checked.check()
        return note

    def sidecar_opener(self, scratch: Scratch, name: str) -> Callable[[str], BinaryIO]:
        """``open_sidecar`` for artifact *name*: its sidecar of the backup drilled, decoded
        into the scratch space and checked against the manifest before it is opened."""
        manifest = self.manifest

        def opened(sidecar: str) -> BinaryIO:
            wanted = f"{name}.{sidecar}"
            stored = next((a for a in manifest.artifacts
                           if a.name == wanted and a.extra.get("sidecar_of") == name), None)
            if stored is None:
                raise RestoreError(f"backup {manifest.id} has no {sidecar} of artifact {name}; it cannot be checked")
            path = scratch.directory(wanted) / sidecar
            checked, fh = open_checked(self.parts, self.owner[manifest.id], manifest, stored, None)
            with fh, open(path, "wb") as out:
                while chunk := checked.read(1 << 20):
                    out.write(chunk)
                checked.check()
            return open(path, "rb")

        return opened

    def counter(self, name: str) -> ProgressCallback:
        """A progress callback noting what artifact *name* read, reporting the drill's total."""
        def on_progress(p: Progress) -> None:
            self.read[name] = p.done_bytes
            if self.progress is not None:
                self.progress(Progress(name, sum(self.read.values()), 0, "", time.monotonic() - self.t0))

        return on_progress

    def user_checks(self, scratch: Scratch, artifacts: list[ArtifactDrill]) -> list[CheckResult]:
        """The set's ``drill.sql`` on each restored database, then its ``drill.command``\\s."""
        results = []
        databases = {n: t for n, t in self.targets.items() if t.startswith(("postgresql://", "sqlite:///"))}
        for query in self.settings.sql:
            if not databases:
                results.append(CheckResult(f"sql: {_short(query)}", False, 0.0,
                                           "the backup has no database to run it on"))
            for name, url in databases.items():
                results.append(_sql_check(name, url, query, self.settings.timeout))
        env = {**os.environ, "BACKUPKIT_DRILL_DIR": str(scratch.root),
               "BACKUPKIT_DRILL_BACKUP_ID": self.manifest.id, "BACKUPKIT_DRILL_SET": self.manifest.set_name,
               **{f"BACKUPKIT_DRILL_{_env_name(n)}": t for n, t in self.targets.items()}}
        for argv in self.settings.command:
            results.append(_command_check(argv, env, scratch.root, self.settings.timeout))
        for result in results:
            log.log(logging.INFO if result.ok else logging.WARNING, "drill check %s: %s%s", result.name,
                    "ok" if result.ok else "failed", f" ({result.detail})" if result.detail else "")
        return results


def _shown(target: Path | str) -> str:
    text = str(target)
    return strip_userinfo(redacted(text)) if "://" in text else "a temporary directory"


def _short(text: str, n: int = 80) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 3] + "..."


def _env_name(artifact: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", artifact).upper()


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("t", "true", "1", "yes")
    return bool(value) and value is not None


def _sql_check(name: str, url: str, query: str, timeout: int) -> CheckResult:
    label = f"sql on {name}: {_short(query)}"
    t0 = time.monotonic()
    try:
        if url.startswith("sqlite:///"):
            import sqlite3

            with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):], timeout=timeout)) as db:
                row = db.execute(query).fetchone()
        else:
            import psycopg

            with psycopg.connect(url, connect_timeout=30, options=f"-c statement_timeout={timeout * 1000}") as db:
                row = db.execute(query).fetchone()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CheckResult(label, False, time.monotonic() - t0, strip_userinfo(first))
    ok = row is not None and len(row) > 0 and _truthy(row[0])
    detail = "" if ok else f"returned {row[0] if row else 'no row'!r}, not true"
    return CheckResult(label, ok, time.monotonic() - t0, detail)


def _command_check(argv: tuple[str, ...], env: Mapping[str, str], cwd: Path, timeout: int) -> CheckResult:
    label = f"command: {_short(' '.join(argv))}"
    t0 = time.monotonic()
    try:
        done = subprocess.run(list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return CheckResult(label, False, time.monotonic() - t0, f"still running after {timeout} s; stopped")
    except OSError as exc:
        return CheckResult(label, False, time.monotonic() - t0, f"cannot run it: {exc.strerror or exc}")
    if done.returncode == 0:
        return CheckResult(label, True, time.monotonic() - t0)
    said = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
    detail = f"exit status {done.returncode}" + (f": {_short(said[-1], 200)}" if said else "")
    return CheckResult(label, False, time.monotonic() - t0, strip_userinfo(redacted(detail)))
