"""Restore drills of file backups (no servers): the record and where it is stored, every
file checked against the index, user checks, failures naming the artifact, scratch space
removed in every case (also when the drill process is killed: the guardian), and drill
records out of retention's way."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

import backupkit
from backupkit.core.drill import DrillRecord, DrillSettings
from backupkit.engine.drill import DrillRun
from backupkit.errors import DrillFailed, RestoreError
from backupkit.plugin.scratch import Scratch, guard
from backupkit.sources.filesystem.drill import check_tree
from backupkit.testing.fakes import engine_for


@pytest.fixture
def scratch_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where scratch directories go for the test (checked empty afterwards)."""
    base = tmp_path / "scratch"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    return base


def _tree(root: Path) -> Path:
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha\n")
    (root / "docs" / "deep" / "b.bin").write_bytes(os.urandom(70_000))
    (root / "empty").mkdir()
    (root / "link").symlink_to("docs/a.txt")
    return root


def _engine(tmp_path: Path, **set_body: Any) -> backupkit.Engine:
    src = _tree(tmp_path / "src") if not (tmp_path / "src").exists() else tmp_path / "src"
    return engine_for(src, sink=tmp_path / "sink", **set_body)


def test_a_drill_restores_checks_every_file_records_and_removes_its_scratch(
        tmp_path: Path, scratch_base: Path) -> None:
    seen = tmp_path / "seen.txt"
    engine = _engine(tmp_path, drill={"command": ["sh", "-c", f'ls -R "$BACKUPKIT_DRILL_FILES" > {seen}']})
    manifest = engine.backup()
    record = engine.drill()
    assert record.ok and record.backup_id == manifest.id and record.set_name == "app"
    (files,) = record.artifacts
    assert files.name == "files" and files.ok and files.seconds > 0 and files.bytes > 70_000
    assert files.checks["files_checked"] == 2 and files.checks["bytes_checked"] == 70_006
    assert files.checks["paths_checked"] == 7 and files.checks["checksums_match"] is True
    assert [c.ok for c in record.checks] == [True] and "b.bin" in seen.read_text()
    assert record.seconds >= files.seconds and record.version == backupkit.__version__ and record.host
    stored = tmp_path / "sink" / "drills" / "app" / f"{record.drill_id}.json"
    assert DrillRecord.from_dict(json.loads(stored.read_text())) == record
    assert engine.drills() == [record] and engine.drills("other") == []
    assert list(scratch_base.iterdir()) == []


def test_an_incremental_is_drilled_with_its_whole_chain(tmp_path: Path, scratch_base: Path) -> None:
    engine = _engine(tmp_path)
    engine.backup()
    (tmp_path / "src" / "docs" / "a.txt").write_text("changed\n")
    (tmp_path / "src" / "docs" / "c.txt").write_text("new\n")
    inc = engine.backup(kind="incremental")
    assert inc.kind == "incremental"
    record = engine.drill(inc.id)
    assert record.ok and record.artifacts[0].checks["files_checked"] == 3


def test_a_damaged_artifact_fails_the_drill_naming_it_and_is_recorded(tmp_path: Path, scratch_base: Path) -> None:
    engine = _engine(tmp_path)
    manifest = engine.backup()
    stored = tmp_path / "sink" / manifest.artifact("files").key
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(DrillFailed, match=f"drill of backup {manifest.id} failed: artifact files: ") as caught:
        engine.drill()
    record = caught.value.record
    assert isinstance(record, DrillRecord) and not record.ok and not record.artifacts[0].ok
    assert manifest.artifact("files").key in str(record.artifacts[0].error)
    assert engine.drills() == [record]
    assert list(scratch_base.iterdir()) == []
    assert caught.value.exit_code == 10


def test_a_restored_tree_that_differs_from_the_index_is_named(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    manifest = engine.backup()
    engine.restore(to=tmp_path / "out")
    index = tmp_path / "sink" / manifest.artifact("files.index").key

    def check() -> dict[str, Any]:
        run = DrillRun(engine.parts, [manifest], {manifest.id: engine.sink_for(str(tmp_path / "sink"))},
                       DrillSettings())
        with Scratch(guardian=False) as scratch:
            opened = run.sidecar_opener(scratch, "files")("index")
            with opened:
                return check_tree(tmp_path / "out", opened, "files")

    assert index.exists() and check()["checksums_match"] is True
    (tmp_path / "out" / "src" / "docs" / "a.txt").write_text("alphA\n")
    (tmp_path / "out" / "src" / "docs" / "deep" / "b.bin").unlink()
    with pytest.raises(RestoreError, match=r"artifact files: 2 of 7 paths differ from the backup's index: "
                                           r"src/docs/a\.txt \(other content \(sha256\)\), src/docs/deep/b\.bin "
                                           r"\(missing\)"):
        check()


def test_files_are_hashed_as_the_drill_restores_them_and_checked_against_the_index(tmp_path: Path) -> None:
    from backupkit.sources.filesystem.index import file_sha256

    engine = _engine(tmp_path)
    manifest = engine.backup()
    out = tmp_path / "out"
    result = engine.restore(to=out, options={"file_sha256": True})
    hashes = result.checks["files"]["_file_sha256"]
    files = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file() and not p.is_symlink()}
    assert set(hashes) == set(files) and len(files) == 2
    assert all(hashes[k].hex() == file_sha256(str(p)) for k, p in files.items())
    assert engine.restore(to=tmp_path / "plain").checks == {}  # only drills ask for them

    def check(given: dict[str, bytes]) -> dict[str, Any]:
        run = DrillRun(engine.parts, [manifest], {manifest.id: engine.sink_for(str(tmp_path / "sink"))},
                       DrillSettings())
        with Scratch(guardian=False) as scratch, run.sidecar_opener(scratch, "files")("index") as opened:
            return check_tree(out, opened, "files", given)

    (out / "src" / "docs" / "a.txt").write_text("alphA\n")  # not read again: its written hash is used
    assert check(hashes)["files_checked"] == 2
    with pytest.raises(RestoreError, match=r"src/docs/a\.txt \(other content \(sha256\)\)"):
        check({k: v for k, v in hashes.items() if k != "src/docs/a.txt"})  # no hash: read and hashed
    with pytest.raises(RestoreError, match=r"1 of 7 paths differ.*src/docs/deep/b\.bin \(other content"):
        check({**hashes, "src/docs/a.txt": hashlib.sha256(b"alpha\n").digest(),
               "src/docs/deep/b.bin": bytes(32)})


def test_user_checks_sql_and_command_must_pass(tmp_path: Path, scratch_base: Path) -> None:
    db = tmp_path / "app.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO t (name) VALUES (?)", [("a",), ("b",), ("c",)])
    source = {"type": "json", "name": "db", "url": f"sqlite:///{db}"}
    engine = engine_for(source, sink=tmp_path / "sink", drill={
        "sql": ["SELECT count(*) = 3 FROM t", "SELECT count(*) FROM t WHERE name = 'zzz'"],
        "command": [["sh", "-c", "echo checking; echo 'no orders table' >&2; exit 3"]]})
    engine.backup()
    with pytest.raises(DrillFailed) as caught:
        engine.drill()
    record = caught.value.record
    assert isinstance(record, DrillRecord)
    assert record.artifacts[0].ok and record.artifacts[0].checks["row_counts_match"] is True
    assert [(c.name, c.ok) for c in record.checks] == [
        ("sql on db: SELECT count(*) = 3 FROM t", True),
        ("sql on db: SELECT count(*) FROM t WHERE name = 'zzz'", False),
        ("command: sh -c echo checking; echo 'no orders table' >&2; exit 3", False)]
    assert record.checks[1].detail == "returned 0, not true"
    assert record.checks[2].detail == "exit status 3: no orders table"
    assert "check command: sh -c" in str(caught.value) and "exit status 3" in str(caught.value)
    assert list(scratch_base.iterdir()) == []


def test_an_interrupted_drill_removes_its_scratch_and_records_nothing(
        tmp_path: Path, scratch_base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(tmp_path, drill={"command": ["true"]})
    engine.backup()

    def interrupted(*args: Any) -> Any:
        assert any(scratch_base.iterdir())  # the tree is restored, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(DrillRun, "user_checks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        engine.drill()
    assert list(scratch_base.iterdir()) == [] and engine.drills() == []


def test_drill_records_stay_out_of_retention(tmp_path: Path, scratch_base: Path) -> None:
    engine = _engine(tmp_path, retention={"keep_last": 1})
    first = engine.backup()
    drilled = engine.drill(first.id)
    second = engine.backup()
    (result,) = engine.prune(dry_run=False, orphan_grace=dt.timedelta(0))
    assert result.deleted == (first.id,) and [m.id for m in engine.catalog()] == [second.id]
    assert not any("drills/" in k for k in (*result.deleted_keys, *result.orphans))
    assert engine.drills() == [drilled]  # pruning the drilled backup keeps its record


def test_the_guardian_cleans_up_after_a_killed_drill_process(tmp_path: Path) -> None:
    script = tmp_path / "die.py"
    script.write_text(
        "import os, signal, subprocess, sys\n"
        "from backupkit.plugin.scratch import Scratch\n"
        "s = Scratch(prefix='drill-')\n"
        "p = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        "s.on_cleanup(p.kill, [{'kill': p.pid}])\n"
        "d = s.directory('files')\n"
        "(d / 'f').write_text('x')\n"
        "print(p.pid, s.root, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid_text, root = done.stdout.split()
    pid = int(pid_text)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (Path(root).exists() or _alive(pid)):
        time.sleep(0.05)
    assert not Path(root).exists() and not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead (its parent reaps it)
        return fh.read().split()[2] != "Z"


def test_the_guardian_does_nothing_once_told_the_end(tmp_path: Path) -> None:
    keep, gone = tmp_path / "keep", tmp_path / "gone"
    keep.mkdir()
    gone.mkdir()
    guard([json.dumps({"add": 1, "do": [{"rmtree": str(keep)}]}).encode(), b'{"end": true}'])
    assert keep.exists()
    guard([json.dumps({"add": 1, "do": [{"rmtree": str(keep)}]}).encode(),
           json.dumps({"add": 2, "do": [{"rmtree": str(gone)}]}).encode(), b'{"done": 1}', b"not json"])
    assert keep.exists() and not gone.exists()


def test_drill_settings_are_checked_with_one_line_errors() -> None:
    assert DrillSettings.from_dict({"command": ["./check.sh", "--quick"]}, "set 'app'").command == (
        ("./check.sh", "--quick"),)
    assert DrillSettings.from_dict({"sql": "SELECT true"}, "w").sql == ("SELECT true",)
    for raw, named in [({"sqll": []}, "did you mean 'sql'"), ({"postgres_url": "mysql://x"}, "postgresql://"),
                       ({"sql": [""]}, "queries that return true"), ({"command": [[]]}, "argument list"),
                       ({"timeout": 0}, "timeout"), ("x", "is a table")]:
        with pytest.raises(backupkit.errors.ConfigError, match="set 'app'") as caught:
            DrillSettings.from_dict(raw, "set 'app'")
        assert named in str(caught.value) and "\n" not in str(caught.value)


def test_the_cli_drills_reports_and_exits_10_on_a_failed_drill(tmp_path: Path, cli: Any) -> None:
    _tree(tmp_path / "src")
    (tmp_path / "backupkit.toml").write_text(
        '[sets.app]\nsources = [{type = "filesystem", name = "files", paths = ["src"]}]\nsink = "sink"\n'
        '[sets.app.drill]\ncommand = ["sh", "-c", "test -f \\"$BACKUPKIT_DRILL_FILES/src/docs/a.txt\\""]\n')
    assert cli("backup").returncode == 0
    ok = cli("drill")
    assert ok.returncode == 0, ok.stderr
    assert "passed in" in ok.stdout.splitlines()[0] and "files: ok in" in ok.stdout
    assert "checksums_match True" in ok.stdout and "check command: sh -c test -f" in ok.stdout
    (tmp_path / "backupkit.toml").write_text(
        (tmp_path / "backupkit.toml").read_text().replace("a.txt", "missing.txt"))
    failed = cli("drill", "latest", "--json")
    assert failed.returncode == 10, failed.stderr
    body = json.loads(failed.stdout)
    assert body["ok"] is False and body["checks"][0]["detail"] == "exit status 1"
    listed = cli("drills")
    assert listed.returncode == 0 and [ln.split()[5] for ln in listed.stdout.splitlines()] == ["ok", "FAILED"]
    assert cli("drill", "nope").returncode == 6  # no such backup: nothing drilled, nothing recorded
    assert len(json.loads(cli("drills", "--json").stdout)) == 2
