"""The archive member checks that do not rely on tarfile's data filter (CVE-2025-4517 and kin)."""

from __future__ import annotations

import tarfile

import pytest

from backupkit.sources.filesystem.restore import lexical_problem


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        (member("/etc/passwd"), "an absolute path"),
        (member("a/../../x"), "a '..' component"),
        (member(".."), "a '..' component"),
        (member("a/l", tarfile.SYMTYPE, "/etc"), "a link to an absolute path"),
        (member("a/l", tarfile.SYMTYPE, "../../etc"), "a link leading outside the target"),
        (member("l", tarfile.SYMTYPE, ".."), "a link leading outside the target"),
        (member("a/b/l", tarfile.SYMTYPE, "c/../../../x"), "a link with '..' after a name in its target"),
        (member("a/b/l", tarfile.SYMTYPE, "../../../x"), "a link leading outside the target"),
        (member("h", tarfile.LNKTYPE, "../outside"), "a link leading outside the target"),
        (member("h", tarfile.LNKTYPE, "a/../../x"), "a link with '..' after a name in its target"),
    ],
)
def test_unsafe_members_are_named_without_touching_the_disk(info: tarfile.TarInfo, problem: str) -> None:
    assert lexical_problem(info) == problem


@pytest.mark.parametrize(
    "info",
    [
        member("app/file.txt"),
        member("app/ディレクトリ/ファイル.bin"),
        member("app/links/to-file", tarfile.SYMTYPE, "../nested/a/b/c/deep.txt"),
        member("app/links/self", tarfile.SYMTYPE, "."),
        member("app/l", tarfile.SYMTYPE, "../app/x"),
        member("app/a/b/l", tarfile.SYMTYPE, "../../x"),
        member("app/hard/two", tarfile.LNKTYPE, "app/hard/one"),
        member("app/dangling", tarfile.SYMTYPE, "does/not/exist"),
    ],
)
def test_members_inside_the_tree_pass(info: tarfile.TarInfo) -> None:
    assert lexical_problem(info) is None


def test_a_member_through_a_symlink_the_archive_made_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The classic chain: 'a' -> '.', then 'a/l' -> '../x' looks inside but escapes."""
    import io

    from backupkit.errors import UnsafeArchiveError
    from backupkit.sources.filesystem.restore import extract

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(member("t", tarfile.DIRTYPE))
        tar.addfile(member("t/a", tarfile.SYMTYPE, "."))
        tar.addfile(member("t/a/l", tarfile.SYMTYPE, "../x"))
    buf.seek(0)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="a path through the symlink 't/a'"):
        extract(buf, dest, "files", replace=False, symlinks=set())
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("pax", "mtime"),
    [("inf", 0.0), ("nan", 0.0), ("1e999999", 0.0), ("x", float("inf")), ("x", float("nan"))],
)
def test_an_mtime_the_reader_should_have_refused_is_tar_damage_not_a_crash(pax: str, mtime: float) -> None:
    """TarReader refuses such mtimes; the code that sets them is not the only guard."""
    from backupkit.sources.filesystem.restore import _mtime_ns
    from backupkit.sources.filesystem.tarread import TarFormatError

    info = member("f")
    info.pax_headers, info.mtime = {"mtime": pax}, mtime
    with pytest.raises(TarFormatError, match="'f' has an invalid mtime"):
        _mtime_ns(info)
