"""Restore never writes where it was not asked to.

Hostile archives (``../`` names, absolute names, symlinks and hard links that point
out of the target, then files written through them) are refused with a clear error,
through the Python API and the CLI, and leave nothing behind: not outside the
target, not inside it, not in a staging directory. A non-empty target is refused
unless the caller asks to overwrite.

The hostile archives are planted in a local sink by hand, with a correct manifest,
so every checksum matches and only the archive's content is at fault.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import treegen

import backupkit
from backupkit import Artifact, Engine, Manifest
from backupkit.core.manifest import PluginSpec
from backupkit.errors import RestoreError, UnsafeArchiveError

if TYPE_CHECKING:
    from conftest import Cli

BACKUP_ID = "20240101T020000Z-abcdef"
SECRET = b"outside the target; must never change\n"


def plant_backup(sink: Path, tar_bytes: bytes) -> Manifest:
    """Store *tar_bytes* as the one artifact of a backup in local sink *sink*."""
    stem = f"evil_full_{BACKUP_ID}"
    key = f"daily/{stem}.files.tar"
    digest = hashlib.sha256(tar_bytes).hexdigest()
    manifest = Manifest(
        id=BACKUP_ID,
        set_name="evil",
        created_at=dt.datetime(2024, 1, 1, 2, 0, tzinfo=dt.UTC),
        kind="full",
        hostname="attacker",
        tool_version=backupkit.__version__,
        artifacts=(
            Artifact(
                name="files",
                source=PluginSpec("filesystem", {"paths": ["/srv/tree"]}),
                transforms=(),
                key=key,
                raw_size=len(tar_bytes),
                stored_size=len(tar_bytes),
                raw_sha256=digest,
                stored_sha256=digest,
            ),
        ),
    )
    (sink / "daily").mkdir(parents=True)
    (sink / key).write_bytes(tar_bytes)
    (sink / f"daily/{stem}.manifest.json").write_bytes(manifest.to_json())
    return manifest


class TarBuilder:
    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def file(self, name: str, data: bytes = b"pwned\n") -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 1_500_000_000
        self.tar.addfile(info, io.BytesIO(data))
        return self

    def link(self, name: str, target: str, *, hard: bool = False) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = target
        self.tar.addfile(info)
        return self

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


# Each builder gets the directory that holds the target (tmp_path) and returns the
# archive and the name of the member that must be refused. The first member is
# harmless, so "nothing was restored" is tested, not just "the bad file is absent".
# The target is tmp_path/"restore"; tmp_path/"outside" holds a file to protect.
HOSTILE: dict[str, Callable[[Path], tuple[bytes, str]]] = {
    "dotdot-name": lambda base: (
        TarBuilder().file("tree/ok.txt").file("../escape.txt").bytes(),
        "../escape.txt",
    ),
    "dotdot-inside-name": lambda base: (
        TarBuilder().file("tree/ok.txt").file("tree/../../outside/new.txt").bytes(),
        "tree/../../outside/new.txt",
    ),
    "absolute-name": lambda base: (
        TarBuilder().file("tree/ok.txt").file(str(base / "outside/abs.txt")).bytes(),
        str(base / "outside/abs.txt"),
    ),
    "symlink-escaping-then-file-through-it": lambda base: (
        TarBuilder()
        .file("tree/ok.txt")
        .link("tree/evil", "../../outside")
        .file("tree/evil/through.txt")
        .bytes(),
        "tree/evil",
    ),
    "absolute-symlink-then-file-through-it": lambda base: (
        TarBuilder()
        .file("tree/ok.txt")
        .link("tree/evil", str(base / "outside"))
        .file("tree/evil/through.txt")
        .bytes(),
        "tree/evil",
    ),
    "symlink-then-overwrite-outside-file": lambda base: (
        TarBuilder()
        .file("tree/ok.txt")
        .link("tree/secret", "../../outside/secret.txt")
        .file("tree/secret", b"overwritten\n")
        .bytes(),
        "tree/secret",
    ),
    "hard-link-to-outside-file-then-write": lambda base: (
        TarBuilder()
        .file("tree/ok.txt")
        .link("tree/hl", "../outside/secret.txt", hard=True)
        .file("tree/hl", b"overwritten\n")
        .bytes(),
        "tree/hl",
    ),
    "absolute-hard-link": lambda base: (
        TarBuilder()
        .file("tree/ok.txt")
        .link("tree/hl", str(base / "outside/secret.txt"), hard=True)
        .bytes(),
        "tree/hl",
    ),
}


@pytest.fixture(params=sorted(HOSTILE))
def hostile_sink(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A sink holding one hostile backup; returns (sink, name of the refused member)."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret.txt").write_bytes(SECRET)
    data, bad_member = HOSTILE[request.param](tmp_path)
    plant_backup(tmp_path / "sink", data)
    return tmp_path / "sink", bad_member


def listing(root: Path) -> dict[str, bytes | None]:
    """Everything under *root*: file contents, None for directories and links."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        if p.is_file() and not p.is_symlink()
        else None
        for p in sorted(root.rglob("*"))
    }


def assert_nothing_written(base: Path, before: dict[str, bytes | None]) -> None:
    target = base / "restore"
    assert not target.exists() or not any(target.iterdir()), (
        f"restored into target: {listing(target)}"
    )
    after = listing(base)
    after.pop("restore", None)
    assert after == before, "files outside the target changed"
    assert (base / "outside/secret.txt").read_bytes() == SECRET
    assert not list(base.rglob(".backupkit-partial-*")), "a staging directory was left behind"


def test_hostile_archive_is_refused_by_restore_and_writes_nothing(
    tmp_path: Path, hostile_sink: tuple[Path, str]
) -> None:
    sink, bad_member = hostile_sink
    before = listing(tmp_path)
    engine = Engine.from_config(
        {"sets": {"evil": {"sources": ["filesystem"], "sink": str(sink)}}}, env={}
    )

    with pytest.raises(UnsafeArchiveError) as info:
        engine.restore(BACKUP_ID, to=tmp_path / "restore")

    message = str(info.value)
    assert "\n" not in message and "unsafe" in message and repr(bad_member) in message
    assert_nothing_written(tmp_path, before)


def test_hostile_archive_is_refused_by_cli_restore_with_one_line(
    tmp_path: Path, hostile_sink: tuple[Path, str], cli: Cli
) -> None:
    sink, bad_member = hostile_sink
    before = listing(tmp_path)

    result = cli("restore", "latest", "--sink", sink, "--to", tmp_path / "restore")

    line = cli.error_line(result, "unsafe", bad_member)
    assert result.returncode == UnsafeArchiveError.exit_code, line
    assert_nothing_written(tmp_path, before)


def test_hostile_archive_still_passes_verify_because_its_checksums_match(
    tmp_path: Path, cli: Cli
) -> None:
    """Safety is restore's job: verify checks integrity, and this archive is intact."""
    plant_backup(tmp_path / "sink", HOSTILE["dotdot-name"](tmp_path)[0])
    result = cli("verify", "--sink", tmp_path / "sink")
    assert result.returncode == 0, result.stderr
    assert "files: ok" in result.stdout


@pytest.fixture
def stored_tree(tmp_path: Path, source_tree: Path) -> Engine:
    engine = Engine.from_config(
        {
            "sets": {
                "app": {
                    "sources": [{"type": "filesystem", "paths": [str(source_tree)]}],
                    "sink": str(tmp_path / "sink"),
                }
            }
        },
        env={},
    )
    engine.backup()
    return engine


def test_restore_into_non_empty_target_is_refused_and_touches_nothing(
    tmp_path: Path, stored_tree: Engine
) -> None:
    target = tmp_path / "restore"
    (target / "tree").mkdir(parents=True)
    (target / "mine.txt").write_text("keep me\n")
    (target / "tree/stale.txt").write_text("old\n")
    before = listing(target)

    with pytest.raises(RestoreError, match=r"restore target .*restore is not empty.*overwrite"):
        stored_tree.restore("latest", to=target)

    assert listing(target) == before
    assert not list(tmp_path.rglob(".backupkit-partial-*"))


def test_restore_with_overwrite_replaces_backed_up_entries_and_keeps_others(
    tmp_path: Path, stored_tree: Engine, source_tree: Path
) -> None:
    target = tmp_path / "restore"
    (target / "tree").mkdir(parents=True)
    (target / "mine.txt").write_text("keep me\n")
    (target / "tree/stale.txt").write_text("old\n")

    stored_tree.restore("latest", to=target, overwrite=True)

    assert sorted(p.name for p in target.iterdir()) == ["mine.txt", "tree"]
    assert (target / "mine.txt").read_text() == "keep me\n"
    treegen.assert_same_tree(source_tree, target / "tree")


def test_cli_restore_into_non_empty_target_needs_overwrite_flag(
    tmp_path: Path, stored_tree: Engine, source_tree: Path, cli: Cli
) -> None:
    target = tmp_path / "restore"
    target.mkdir()
    (target / "mine.txt").write_text("keep me\n")
    sink = tmp_path / "sink"

    refused = cli("restore", "latest", "--sink", sink, "--to", target)
    cli.error_line(refused, "not empty", str(target), "--overwrite")
    assert sorted(p.name for p in target.iterdir()) == ["mine.txt"]

    done = cli("restore", "latest", "--sink", sink, "--to", target, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert (target / "mine.txt").read_text() == "keep me\n"
    treegen.assert_same_tree(source_tree, target / "tree")


def test_restore_into_a_file_is_refused(tmp_path: Path, stored_tree: Engine) -> None:
    target = tmp_path / "a-file"
    target.write_text("not a directory\n")
    with pytest.raises(RestoreError, match="is not a directory"):
        stored_tree.restore("latest", to=target)
    assert target.read_text() == "not a directory\n"


def test_restore_into_a_path_below_a_file_is_one_restore_error(tmp_path: Path, stored_tree: Engine) -> None:
    (tmp_path / "a-file").write_text("x\n")
    with pytest.raises(RestoreError, match=r"^cannot (use|create) restore target .*a-file/sub \(Not a directory\)"):
        stored_tree.restore("latest", to=tmp_path / "a-file" / "sub")


def test_restore_into_a_symlink_to_an_empty_directory_fills_the_directory(
    tmp_path: Path, stored_tree: Engine, source_tree: Path
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    stored_tree.restore("latest", to=tmp_path / "link")
    treegen.assert_same_tree(source_tree, tmp_path / "real" / "tree")
    assert (tmp_path / "link").is_symlink()


def test_staging_stays_inside_the_target_and_a_stale_one_does_not_make_it_non_empty(
    tmp_path: Path, stored_tree: Engine, source_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backupkit.sources.filesystem import restore as fsrestore

    target = tmp_path / "restore"
    (target / ".backupkit-partial-killed").mkdir(parents=True)  # left by a restore killed with -9
    staged_in: list[Path] = []
    publish = fsrestore._publish

    def watch(staging: Path, dest: Path, artifact: str) -> None:
        staged_in.append(staging.parent)
        publish(staging, dest, artifact)

    monkeypatch.setattr(fsrestore, "_publish", watch)
    stored_tree.restore("latest", to=target)

    assert staged_in == [target]  # the same filesystem as the target: a mount point works
    treegen.assert_same_tree(source_tree, target / "tree")
    assert sorted(p.name for p in target.iterdir()) == [".backupkit-partial-killed", "tree"]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_overwrite_that_fails_while_moving_into_place_keeps_the_old_entries(
    tmp_path: Path, stored_tree: Engine, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    from backupkit.sources.filesystem import restore as fsrestore

    target = tmp_path / "restore"
    (target / "tree").mkdir(parents=True)
    (target / "tree/old.txt").write_text("the only copy\n")
    (target / "mine.txt").write_text("keep me\n")
    before = listing(target)
    rename = os.rename
    calls = {"n": 0}

    def failing_rename(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the old entry is aside, the new one not yet in place
            raise failure
        rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(fsrestore.os, "rename", failing_rename)
    with pytest.raises(RestoreError if isinstance(failure, OSError) else KeyboardInterrupt) as caught:
        stored_tree.restore("latest", to=target, overwrite=True)
    monkeypatch.undo()

    if isinstance(failure, OSError):
        assert "the target was left as it was" in str(caught.value)
    assert listing(target) == before
    assert not list(tmp_path.rglob(".backupkit-partial-*"))


def test_hostile_archive_writes_nothing_outside_even_with_external_symlinks_allowed(
    tmp_path: Path, hostile_sink: tuple[Path, str]
) -> None:
    sink, _ = hostile_sink
    before = listing(tmp_path)
    engine = Engine.from_config(
        {"sets": {"evil": {"sources": ["filesystem"], "sink": str(sink)}}}, env={}
    )

    try:
        engine.restore(BACKUP_ID, to=tmp_path / "restore", allow_external_symlinks=True)
    except UnsafeArchiveError:
        assert_nothing_written(tmp_path, before)
    else:  # only a symlink replaced by a file of the same name gets through: as a new file
        assert (tmp_path / "restore/tree/secret").read_bytes() == b"overwritten\n"
    after = listing(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("restore")} == {
        k: v for k, v in before.items() if not k.startswith("restore")
    }
    assert (tmp_path / "outside/secret.txt").read_bytes() == SECRET


def test_external_symlinks_are_refused_by_default_and_restored_as_they_are_when_allowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cli: Cli
) -> None:
    src = tmp_path / "app"
    (src / "venv/bin").mkdir(parents=True)
    (src / "venv/bin/python").symlink_to("/usr/bin/python3")
    (src / "up").symlink_to("../../shared/config")
    (src / "inside").symlink_to("venv/bin")
    (src / "data.txt").write_text("data\n")
    engine = Engine.from_config(
        {"sets": {"app": {"sources": [{"type": "filesystem", "paths": [str(src)]}],
                          "sink": str(tmp_path / "sink")}}},
        env={},
    )
    with caplog.at_level("WARNING", logger="backupkit"):
        engine.backup()
    assert any("2 symlink(s) lead out of the backed-up tree" in r.getMessage() for r in caplog.records)
    by_cli = cli("backup", "--source", src, "--sink", tmp_path / "sink2")
    assert by_cli.returncode == 0, by_cli.stderr
    assert by_cli.stderr.startswith("backupkit: warning: 2 symlink(s) lead out of the backed-up "
                                    "tree (first: app/up -> ../../shared/config)")

    refused = cli("restore", "latest", "--sink", tmp_path / "sink", "--to", tmp_path / "out1")
    cli.error_line(refused, "app/up", "--allow-external-symlinks")
    assert not (tmp_path / "out1").exists()

    done = cli("restore", "latest", "--sink", tmp_path / "sink", "--to", tmp_path / "out2",
               "--allow-external-symlinks")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out2/app"
    assert os.readlink(out / "venv/bin/python") == "/usr/bin/python3"
    assert os.readlink(out / "up") == "../../shared/config"
    assert os.readlink(out / "inside") == "venv/bin"
    assert (out / "data.txt").read_text() == "data\n"
