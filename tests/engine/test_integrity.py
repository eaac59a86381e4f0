"""A damaged stored artifact is detected by ``verify`` and ``restore`` (B.6).

One flipped byte (at the start, in the middle, at the end) or a truncated file, for
every transform: both commands fail with an error that names the artifact's stored
key, exit non-zero with one line on stderr, and restore leaves no target behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from backupkit import Artifact, Engine, Manifest
from backupkit.errors import IntegrityError
from backupkit.testing.damage import flip_in_file

if TYPE_CHECKING:
    from conftest import Cli

COMPRESS = ["zstd", "gzip", "none"]


def flip_byte(path: Path, where: str) -> None:
    size = path.stat().st_size
    flip_in_file(path, {"first-header": 100, "middle": size // 2, "last": size - 1}[where])


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def tree_artifact(manifest: Manifest) -> Artifact:
    (artifact,) = [a for a in manifest.artifacts if "sidecar_of" not in a.extra]
    return artifact


def backup(tmp_path: Path, source_tree: Path, compress: str) -> tuple[Engine, Manifest]:
    engine = Engine.from_config(
        {
            "sets": {
                "app": {
                    "sources": [
                        {"type": "filesystem", "name": "files", "paths": [str(source_tree)]}
                    ],
                    "compress": compress,
                    "sink": str(tmp_path / "sink"),
                }
            }
        },
        env={},
    )
    return engine, engine.backup()


def assert_detected(tmp_path: Path, engine: Engine, manifest: Manifest, cli: Cli) -> None:
    artifact = tree_artifact(manifest)
    sink, target = tmp_path / "sink", tmp_path / "restore"
    assert engine.verify(manifest.id).ok is False

    checked = engine.verify(manifest.id).checks
    bad = [c for c in checked if not c.ok]
    assert [c.artifact for c in bad] == ["files"]
    assert artifact.key in (bad[0].error or "")

    with pytest.raises(IntegrityError, match=artifact.key.replace(".", r"\.")):
        engine.restore(manifest.id, to=target)
    assert not target.exists()

    verified = cli("verify", manifest.id, "--sink", sink)
    line = cli.error_line(verified, artifact.key)
    assert verified.returncode == IntegrityError.exit_code, line
    assert "files: FAILED" in verified.stdout

    as_json = cli("verify", manifest.id, "--sink", sink, "--json")
    assert as_json.returncode == IntegrityError.exit_code
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["backup_id"] == manifest.id
    files = next(a for a in report["artifacts"] if a["name"] == "files")
    assert files["ok"] is False and artifact.key in files["error"]

    restored = cli("restore", manifest.id, "--sink", sink, "--to", target)
    line = cli.error_line(restored, artifact.key)
    assert restored.returncode == IntegrityError.exit_code, line
    assert not target.exists()
    assert not list(tmp_path.rglob(".backupkit-partial-*")), "a staging directory was left behind"


@pytest.mark.parametrize("where", ["first-header", "middle", "last"])
@pytest.mark.parametrize("compress", COMPRESS)
def test_flipped_byte_fails_verify_and_restore_naming_the_artifact(
    tmp_path: Path, source_tree: Path, cli: Cli, compress: str, where: str
) -> None:
    engine, manifest = backup(tmp_path, source_tree, compress)
    flip_byte(tmp_path / "sink" / tree_artifact(manifest).key, where)
    assert_detected(tmp_path, engine, manifest, cli)


@pytest.mark.parametrize("compress", COMPRESS)
def test_truncated_artifact_fails_verify_and_restore_naming_the_artifact(
    tmp_path: Path, source_tree: Path, cli: Cli, compress: str
) -> None:
    engine, manifest = backup(tmp_path, source_tree, compress)
    truncate(tmp_path / "sink" / tree_artifact(manifest).key)
    assert_detected(tmp_path, engine, manifest, cli)


def test_missing_artifact_fails_verify_and_restore_naming_it(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    _, manifest = backup(tmp_path, source_tree, "zstd")
    key = tree_artifact(manifest).key
    (tmp_path / "sink" / key).unlink()

    verified = cli("verify", "--sink", tmp_path / "sink")
    cli.error_line(verified, key)
    restored = cli("restore", "latest", "--sink", tmp_path / "sink", "--to", tmp_path / "restore")
    cli.error_line(restored, key)
    assert not (tmp_path / "restore").exists()


@pytest.mark.parametrize("compress", COMPRESS)
def test_intact_backup_verifies_and_restores(
    tmp_path: Path, source_tree: Path, compress: str
) -> None:
    """The control for the tests above: the same steps succeed when nothing is damaged."""
    engine, manifest = backup(tmp_path, source_tree, compress)
    assert engine.verify(manifest.id).ok
    engine.restore(manifest.id, to=tmp_path / "restore")
    assert (tmp_path / "restore" / source_tree.name).is_dir()
