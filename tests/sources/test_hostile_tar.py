"""A damaged or hostile tar stream whose checksums match is refused by restore with
one line naming the artifact (an IntegrityError, as other tar damage), never a
traceback, and nothing is written.

The archives are planted in a local sink by hand (``plant_backup``), with a correct
manifest, so only the archive's content is at fault.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_restore_safety import BACKUP_ID, plant_backup

from backupkit import Engine
from backupkit.errors import IntegrityError

if TYPE_CHECKING:
    from conftest import Cli


def member(
    name: str, *, pax: dict[str, str] | None = None, kind: bytes = tarfile.REGTYPE,
    mtime: int = 1_500_000_000, fmt: int = tarfile.PAX_FORMAT,
) -> bytes:
    """One member's headers and data ("hello\\n" for a file)."""
    info = tarfile.TarInfo(name)
    data = b"hello\n" if kind == tarfile.REGTYPE else b""
    info.type, info.size, info.mtime, info.mode = kind, len(data), mtime, 0o644
    info.linkname = "ok.txt" if kind == tarfile.SYMTYPE else ""
    info.pax_headers = pax or {}
    return info.tobuf(fmt) + data + bytes(-len(data) % 512)


# The first member is harmless, so "nothing was restored" is tested, not just "the
# bad one is absent"; the second is the damage, then the end of the archive.
HOSTILE = {
    "NUL in a pax path": (member("tree/x", pax={"path": "tree/a\0b"}), "NUL byte"),
    "NUL in a pax linkpath": (
        member("tree/l", pax={"linkpath": "ok\0.txt"}, kind=tarfile.SYMTYPE), "NUL byte"
    ),
    "pax mtime inf": (member("tree/x", pax={"mtime": "inf"}), "mtime"),
    "pax mtime nan": (member("tree/x", pax={"mtime": "nan"}), "mtime"),
    "pax mtime 1e999999": (member("tree/x", pax={"mtime": "1e999999"}), "mtime"),
    "pax mtime 1e30": (member("tree/x", pax={"mtime": "1e30"}), "mtime"),
    "ustar mtime 2**80": (member("tree/x", mtime=2**80, fmt=tarfile.GNU_FORMAT), "mtime"),
    "directory mtime 1e30": (member("tree/d", pax={"mtime": "1e30"}, kind=tarfile.DIRTYPE), "mtime"),
    "pax size -1": (member("tree/x", pax={"size": "-1"}), "size"),
}


@pytest.fixture(params=sorted(HOSTILE))
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A sink holding one hostile backup; returns (sink, what the error names)."""
    bad, named = HOSTILE[request.param]
    plant_backup(tmp_path / "sink", member("tree/ok.txt") + bad + bytes(1024))
    return tmp_path / "sink", named


def test_hostile_tar_is_an_integrity_error_naming_the_artifact_and_writes_nothing(
    tmp_path: Path, hostile: tuple[Path, str]
) -> None:
    sink, named = hostile
    engine = Engine.from_config({"sets": {"evil": {"sources": ["filesystem"], "sink": str(sink)}}}, env={})

    with pytest.raises(IntegrityError) as info:
        engine.restore(BACKUP_ID, to=tmp_path / "restore")

    message = str(info.value)
    assert "\n" not in message and "artifact files" in message and named in message, message
    assert not (tmp_path / "restore").exists()


@pytest.mark.parametrize("case", ["NUL in a pax path", "pax mtime inf", "ustar mtime 2**80"])
def test_hostile_tar_is_one_line_from_cli_restore(tmp_path: Path, cli: Cli, case: str) -> None:
    bad, named = HOSTILE[case]
    plant_backup(tmp_path / "sink", member("tree/ok.txt") + bad + bytes(1024))

    result = cli("restore", "latest", "--sink", tmp_path / "sink", "--to", tmp_path / "restore")

    cli.error_line(result, "artifact files", "not a valid tar stream", named)
    assert result.returncode == IntegrityError.exit_code
    assert not (tmp_path / "restore").exists()
