"""Verify: re-read every stored artifact a restore would read, and check both
checksums, without restoring anything."""

from __future__ import annotations

import contextlib

from backupkit.core.manifest import Artifact
from backupkit.core.restore import plan_restore
from backupkit.engine.guards import refuse_unencrypted
from backupkit.engine.operation import new_run_id, run_operation
from backupkit.engine.parts import Parts
from backupkit.engine.pipeline import check_stored, open_checked
from backupkit.engine.resolve import is_sidecar, restore_target, scan_for
from backupkit.engine.results import ArtifactCheck, VerifyResult
from backupkit.errors import BackupkitError, IntegrityError, KeyMissingError
from backupkit.plugin import Operation, Reader, RestoreContext


def verify(parts: Parts, ref: str, *, set_name: str | None = None) -> VerifyResult:
    """Check backup *ref* (an incremental's whole chain) inside the operation hook; see
    :meth:`backupkit.Engine.verify`."""
    started = parts.clock()
    operation = Operation("verify", new_run_id(started), started, set_name=set_name)
    return run_operation(parts.plugins, operation, lambda: _verify(parts, ref, set_name))


def read_through(parts: Parts, artifact: Artifact, checked: Reader) -> str | None:
    """Read a decoded artifact to its end through its source's :meth:`Source.check`
    (a database archive read whole by ``pg_restore``); sidecars and artifacts of
    sources not installed here are only read."""
    source = None
    if not is_sidecar(artifact):
        with contextlib.suppress(BackupkitError):
            source = parts.plugins.source(artifact.source.id).from_params(artifact.source.params)
    if source is None:
        while checked.read(1 << 20):
            pass
        return None
    ctx = RestoreContext(artifact=artifact.name, target=None, facts=artifact.extra)
    return source.check(checked, ctx)


def _verify(parts: Parts, ref: str, set_name: str | None) -> VerifyResult:
    found, ref = scan_for(parts, ref)
    links = plan_restore(found.catalog, target=restore_target(ref), set_name=set_name).chain
    target = links[-1]
    try:
        refuse_unencrypted(links, found.catalog, found.sealed, config=parts.config,
                           roles=parts.plugins.roles, unauthenticated=found.unauthenticated)
    except IntegrityError as exc:
        return VerifyResult(
            target.id,
            tuple(ArtifactCheck(m.id, a.name, False, str(exc)) for m in links for a in m.artifacts),
        )
    checks = []
    for manifest, artifact in ((m, a) for m in links for a in m.artifacts):
        sink = found.owner[manifest.id]
        note = None
        try:
            try:
                checked, fh = open_checked(parts, sink, manifest, artifact, None)
            except KeyMissingError as missing:  # without the key: the stored checksum only
                check_stored(sink, manifest, artifact)
                note = (f"stored checksum only; encryption key {missing.key_id} is not "
                        "configured, so decryption (AEAD) was not checked")
            else:
                with fh:
                    note = read_through(parts, artifact, checked)
                    checked.check()
        except BackupkitError as exc:
            checks.append(ArtifactCheck(manifest.id, artifact.name, False, str(exc)))
        else:
            checks.append(ArtifactCheck(manifest.id, artifact.name, True, note=note))
    return VerifyResult(target.id, tuple(checks))
