"""Files survive a backup and a restore exactly: bytes, modes, mtimes, links.

Through the Python API, through the CLI (checking its ``--json`` output on the way),
and through standard tools alone (``zstd -d | tar -x``, ``gzip -d | tar -x``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import treegen

from backupkit import Artifact, Engine, Manifest
from backupkit.testing import fakes

if TYPE_CHECKING:
    from conftest import Cli

EXTENSIONS = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}


def engine_for(paths: list[Path], sink: Path, compress: str) -> Engine:
    """Set ``files``: one filesystem source over all of *paths*."""
    source = {"type": "filesystem", "paths": [str(p) for p in paths]}
    return fakes.engine_for(source, sink=sink, set_name="files", compress=compress)


def tree_artifact(manifest: Manifest) -> Artifact:
    """The one artifact holding the tree (sidecars such as the file index aside)."""
    (artifact,) = [a for a in manifest.artifacts if "sidecar_of" not in a.extra]
    return artifact


def assert_restored(manifest: Manifest, src: Path, target: Path, compress: str) -> None:
    artifact = tree_artifact(manifest)
    assert artifact.key.endswith(EXTENSIONS[compress])
    assert [t.id for t in artifact.transforms] == ([] if compress == "none" else [compress])
    assert [p.name for p in target.iterdir()] == [src.name]
    treegen.assert_same_tree(src, target / src.name)


@pytest.mark.parametrize("compress", ["zstd", "gzip", "none"])
def test_restore_recreates_tree_byte_for_byte_with_modes_mtimes_and_links(
    tmp_path: Path, source_tree: Path, compress: str
) -> None:
    engine = engine_for([source_tree], tmp_path / "sink", compress)
    manifest = engine.backup(reason="test")
    target = tmp_path / "restored"

    result = engine.restore("latest", to=target)

    assert result.backup_id == manifest.id
    assert result.bytes == tree_artifact(manifest).raw_size
    assert_restored(manifest, source_tree, target, compress)


def test_generated_tree_has_every_kind_of_entry_the_round_trip_claims(source_tree: Path) -> None:
    """Guards the round-trip tests against a generator that silently stops covering a case."""
    snap = treegen.snapshot(source_tree)
    kinds = {rel: e.kind for rel, e in snap.items()}
    assert snap["empty.txt"].size == 0 and kinds["empty-dir"] == "dir"
    assert not any((source_tree / "empty-dir").iterdir())
    assert all(kinds[n] == "file" for n in treegen.UNICODE_NAMES)
    assert {rel: e.target for rel, e in snap.items() if e.kind == "symlink"} == treegen.SYMLINKS
    assert not (source_tree / "links/dangling").exists()
    assert treegen.hard_link_groups(source_tree) == {frozenset(treegen.HARD_LINKS)}
    assert {rel: snap[rel].mode for rel in treegen.MODES} == treegen.MODES
    mtimes = [
        e.mtime_ns
        for rel, e in snap.items()
        if e.kind != "symlink" and rel != treegen.HARD_LINKS[1]
    ]
    assert len(set(mtimes)) == len(mtimes), "every entry (but a hard link's twin) has its own mtime"
    assert max(e.mtime_ns or 0 for e in snap.values()) < 1_600_000_000 * 10**9


def test_restore_of_several_paths_puts_each_under_its_base_name(tmp_path: Path) -> None:
    one = treegen.make_tree(tmp_path / "src/one", seed=1)
    two = treegen.make_tree(tmp_path / "other/two", seed=2)
    engine = engine_for([one, two], tmp_path / "sink", "zstd")
    engine.backup()

    engine.restore("latest", to=tmp_path / "restored")

    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == ["one", "two"]
    treegen.assert_same_tree(one, tmp_path / "restored/one")
    treegen.assert_same_tree(two, tmp_path / "restored/two")


@pytest.mark.slow
def test_restore_of_200_mb_file_is_byte_identical(tmp_path: Path) -> None:
    src = treegen.make_tree(tmp_path / "src/tree", big_mib=200)
    assert (src / "big/blob.bin").stat().st_size == 200 * treegen.MIB
    engine = engine_for([src], tmp_path / "sink", "zstd")
    manifest = engine.backup()
    assert manifest.raw_size > 200 * treegen.MIB

    engine.restore(manifest.id, to=tmp_path / "restored")

    assert_restored(manifest, src, tmp_path / "restored", "zstd")


@pytest.mark.integration
@pytest.mark.parametrize(("compress", "tool"), [("zstd", "zstd"), ("gzip", "gzip")])
def test_stored_artifact_restores_with_standard_tools_alone(
    tmp_path: Path, source_tree: Path, compress: str, tool: str
) -> None:
    if shutil.which(tool) is None or shutil.which("tar") is None:
        pytest.skip(f"{tool} or tar is not installed")
    sink = tmp_path / "sink"
    manifest = engine_for([source_tree], sink, compress).backup()
    artifact = sink / tree_artifact(manifest).key
    target = tmp_path / "by-hand"
    target.mkdir()

    subprocess.run(
        [
            "bash",
            "-c",
            'set -euo pipefail; "$0" -d -c "$1" | tar -x -C "$2"',
            tool,
            artifact,
            target,
        ],
        check=True,
        capture_output=True,
    )

    treegen.assert_same_tree(source_tree, target / source_tree.name)


def parse_json(out: str) -> Any:
    return json.loads(out)


def test_cli_round_trip_with_json_output_of_every_command(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    sink = tmp_path / "sink"
    target = tmp_path / "restored"

    done = cli("backup", "--source", source_tree, "--sink", sink, "--reason", "json-test", "--json")
    assert done.returncode == 0, done.stderr
    backup = parse_json(done.stdout)
    assert backup["format"] == 1 and backup["kind"] == "full" and backup["reason"] == "json-test"
    assert backup["set"] == "default" and backup["created_at"].endswith("Z")
    artifact = next(a for a in backup["artifacts"] if a["name"] == "files")
    assert artifact["key"].endswith(".tar.zst")
    assert [t["id"] for t in artifact["transforms"]] == ["zstd"]
    assert artifact["source"] == {
        "id": "filesystem",
        "params": {"paths": [str(source_tree)], "include": [], "exclude": []},
    }
    assert (sink / artifact["key"]).stat().st_size == artifact["stored_size"]
    assert len(artifact["raw_sha256"]) == len(artifact["stored_sha256"]) == 64

    listed = parse_json(cli("list", "--sink", sink, "--json").stdout)
    assert listed["problems"] == []
    (record,) = listed["backups"]
    assert record["id"] == backup["id"] and record["set"] == "default"
    assert record["stored_size"] == sum(a["stored_size"] for a in backup["artifacts"])
    assert record["raw_size"] == sum(a["raw_size"] for a in backup["artifacts"])
    assert record["created_at"] == backup["created_at"]
    assert record["artifacts"] == len(backup["artifacts"])

    status = parse_json(cli("status", "--sink", sink, "--json").stdout)
    assert status["sinks"] == [str(sink)] and status["problems"] == []
    assert status["sets"]["default"]["latest_id"] == backup["id"]
    assert status["sets"]["default"]["backups"] == 1
    assert status["sets"]["default"]["stored_bytes"] == record["stored_size"]

    verified = parse_json(cli("verify", backup["id"], "--sink", sink, "--json").stdout)
    assert verified["backup_id"] == backup["id"] and verified["ok"] is True
    assert verified["artifacts"] == [
        {"backup_id": backup["id"], "name": a["name"], "ok": True, "error": None}
        for a in backup["artifacts"]
    ]

    done = cli("restore", "latest", "--sink", sink, "--to", target, "--json")
    assert done.returncode == 0, done.stderr
    restored = parse_json(done.stdout)
    assert restored["backup_id"] == backup["id"]
    assert restored["targets"] == {"files": str(target)}
    assert restored["bytes"] == artifact["raw_size"]
    assert isinstance(restored["seconds"], float | int)
    treegen.assert_same_tree(source_tree, target / source_tree.name)


def test_fifo_is_restored_and_a_device_node_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import os
    import stat

    src = tmp_path / "src"
    src.mkdir()
    (src / "file.txt").write_text("data")
    os.mkfifo(src / "pipe", 0o640)
    os.utime(src / "pipe", ns=(1_500_000_000_123_456_789,) * 2)
    device = False
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        try:
            os.mknod(src / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            device = True
        except OSError:  # no CAP_MKNOD in this container
            pass
    engine = engine_for([src], tmp_path / "sink", "zstd")
    engine.backup()

    engine.restore("latest", to=tmp_path / "restored")

    restored = tmp_path / "restored/src"
    st = (restored / "pipe").lstat()
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == 1_500_000_000_123_456_789
    assert (restored / "file.txt").read_text() == "data"
    if device:
        assert not (restored / "null").exists()
        assert "device node src/null not restored" in caplog.text


def test_a_sparse_file_restores_sparse(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with (src / "vm.img").open("wb") as fh:  # 256 MiB, 8 KiB of it written
        fh.write(b"boot" * 1024)
        fh.seek(256 << 20)
        fh.write(b"tail" * 1024)
    engine = engine_for([src], tmp_path / "sink", "zstd")
    engine.backup(reason="test")

    engine.restore("latest", to=tmp_path / "out")

    restored = tmp_path / "out/src/vm.img"
    assert restored.stat().st_size == (src / "vm.img").stat().st_size
    assert restored.stat().st_blocks * 512 <= 1 << 20
    assert restored.read_bytes() == (src / "vm.img").read_bytes()
