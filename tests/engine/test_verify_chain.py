"""``verify`` checks what a restore would read, and neither verify nor restore settles
for an older backup in silence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from backupkit import Engine
from backupkit.core.manifest import MANIFEST_SUFFIX
from backupkit.errors import ConfigError, ManifestError
from backupkit.testing.damage import flip_in_file
from backupkit.testing.fakes import engine_for

if TYPE_CHECKING:
    from conftest import Cli


def tree(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "file.txt").write_text(text)
    return root


def test_verify_of_an_incremental_checks_its_whole_chain(tmp_path: Path, cli: Cli) -> None:
    sink = tmp_path / "sink"
    engine = engine_for(tree(tmp_path / "src", "v1\n"), sink=sink)
    full = engine.backup("app")
    (tmp_path / "src/file.txt").write_text("v2\n")
    incremental = engine.backup("app", kind="incremental")
    flip_in_file(sink / full.artifact("files").key)  # the base, which a restore reads first

    result = engine.verify("latest")

    assert result.backup_id == incremental.id and not result.ok
    assert [(c.backup_id, c.artifact) for c in result.checks if not c.ok] == [(full.id, "files")]
    assert {c.backup_id for c in result.checks} == {full.id, incremental.id}
    run = cli("verify", "latest", "--sink", sink)
    assert run.returncode == 7 and f"{full.id} files: FAILED" in run.stdout


def test_verify_and_url_of_latest_need_a_set_when_the_sink_holds_several(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    sources = {"app": tree(tmp_path / "a", "a\n"), "db": tree(tmp_path / "d", "d\n")}
    engine = Engine.from_config(  # two sets in one configuration: engine_for has one
        {"sets": {name: {"sources": [{"type": "filesystem", "name": "files", "paths": [str(src)]}],
                         "sink": str(sink)} for name, src in sources.items()}},
        env={},
    )
    engine.backup("app")
    engine.backup("db")

    with pytest.raises(ConfigError, match="name the set"):
        engine.verify("latest")
    assert engine.verify("latest", set_name="app").ok


def test_restore_and_verify_refuse_to_skip_a_newer_backup_they_cannot_read(
    tmp_path: Path, cli: Cli
) -> None:
    sink = tmp_path / "sink"
    engine = engine_for(tree(tmp_path / "src", "old\n"), sink=sink)
    old = engine.backup("app")
    (tmp_path / "src/file.txt").write_text("new\n")
    new = engine.backup("app")
    (newest,) = [p for p in sink.rglob(f"*{MANIFEST_SUFFIX}") if new.id in p.name]
    data = json.loads(newest.read_bytes())
    newest.write_text(json.dumps({**data, "format": 99}))  # written by a newer backupkit

    with pytest.raises(ManifestError, match=rf"newest backup of set 'app', {new.id}, cannot be read"):
        engine.restore("latest", to=tmp_path / "out")
    with pytest.raises(ManifestError, match=new.id):
        engine.verify("latest")
    refused = cli("restore", "latest", "--sink", sink, "--to", tmp_path / "out")
    cli.error_line(refused, new.id, "format", f"restore {old.id} by its id")

    engine.restore(old.id, to=tmp_path / "out")  # asked for by id: restored
    assert (tmp_path / "out/src/file.txt").read_text() == "old\n"


def test_an_id_whose_manifest_cannot_be_read_says_so_with_exit_5(tmp_path: Path, cli: Cli) -> None:
    sink = tmp_path / "sink"
    engine = engine_for(tree(tmp_path / "src", "x\n"), sink=sink)
    made = engine.backup("app")
    (manifest,) = sink.rglob(f"*{MANIFEST_SUFFIX}")
    manifest.write_bytes(b"{not json")

    with pytest.raises(ManifestError, match=rf"backup {made.id} cannot be read: .*not valid JSON"):
        engine.verify(made.id)
    result = cli("verify", made.id, "--sink", sink)
    assert result.returncode == 5
    cli.error_line(result, made.id, "cannot be read")
