"""The plugin seams: entry points, registration, blocking, hook call modes, secrets.

The ``sqlite`` source comes from ``examples/backupkit-sqlite``, installed into the
test environment (``.ci/run`` does ``pip install -e examples/backupkit-sqlite``), so
these tests go through the same entry-point door a real third-party package does.
Other third-party plugins are either passed as objects (``plugins=[...]``) or
"installed" as a throwaway distribution on ``sys.path`` (:func:`install_plugin`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import attrs
import pytest

import backupkit
from backupkit.cli import main
from backupkit.config import Config
from backupkit.core.manifest import PluginSpec
from backupkit.errors import (
    ConfigError,
    IntegrityError,
    NotFoundError,
    PluginError,
    RestoreError,
    SourceError,
)
from backupkit.params import check_range
from backupkit.plugin import Encoder, Reader, Register, Writer
from backupkit.plugin.registry import BLOCK_ENV
from backupkit.plugins import AUTOLOAD_ENV, DEFAULT_PLUGINS, make_plugin_manager

SECRET = "s3cr3t-T0KEN-do-not-leak"


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points load, and nothing is blocked, unless a test says otherwise."""
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(BLOCK_ENV, raising=False)


# -- helpers ---------------------------------------------------------------------------------
def make_db(path: Path, rows: Iterable[tuple[int, str, bytes]], *, wal: bool = False) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        with conn:
            conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB)")
            conn.executemany("INSERT INTO notes VALUES (?, ?, ?)", rows)


def read_rows(path: Path) -> list[tuple[Any, ...]]:
    uri = path.absolute().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return conn.execute("SELECT id, body, data FROM notes ORDER BY id").fetchall()


ROWS = [(i, f"note {i} \N{SNOWMAN}", os.urandom(64)) for i in range(1, 501)]


def sqlite_config(db: Path, sink: Path, **source: Any) -> dict[str, Any]:
    return {
        "sets": {
            "app": {
                "sources": [{"type": "sqlite", "path": str(db), **source}],
                "compress": "zstd",
                "sink": str(sink),
            }
        }
    }


def files_config(tmp_path: Path, sink: Any, **set_options: Any) -> dict[str, Any]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "hello.txt").write_text("hello\n")
    body: dict[str, Any] = {
        "sources": [{"type": "filesystem", "name": "files", "paths": [str(data)]}]
    }
    if "transforms" not in set_options:
        body["compress"] = "none"
    return {"sets": {"app": {**body, "sink": sink, **set_options}}}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backupkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


@pytest.fixture
def install_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], Path]]:
    """Install a one-module distribution whose entry point is in group ``backupkit``.

    The entry point is named like the module, the distribution ``<module>-pkg``.
    Returns the directory to put on ``PYTHONPATH`` for a subprocess.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    installed: list[str] = []

    def install(module: str, code: str) -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(code))
        info = site / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-pkg\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[backupkit]\n{module} = {module}\n")
        installed.append(module)
        return site

    yield install
    for module in installed:
        sys.modules.pop(module, None)


# -- the entry-point path: examples/backupkit-sqlite -----------------------------------------
def test_sqlite_source_from_entry_point_round_trips_rows_of_a_live_database(tmp_path: Path) -> None:
    db = tmp_path / "live" / "app.db"
    db.parent.mkdir()
    make_db(db, ROWS, wal=True)
    # A writer keeps the database open, its last commit only in the WAL: the online
    # backup API must still copy a consistent, complete database.
    with contextlib.closing(sqlite3.connect(db)) as writer:
        with writer:
            writer.execute("INSERT INTO notes VALUES (9999, 'only in the wal', x'00ff')")
        engine = backupkit.Engine.from_config(sqlite_config(db, tmp_path / "sink"))  # no plugins=
        manifest = engine.backup("app")

    (artifact,) = manifest.artifacts
    assert artifact.source == PluginSpec("sqlite", {"path": str(db)})
    assert artifact.key.endswith(".sqlite.zst")
    assert artifact.extra["database"] == "app.db"

    result = engine.restore("latest", to=tmp_path / "restored")
    restored = tmp_path / "restored" / "app.db"
    assert result.targets == {"sqlite": str(tmp_path / "restored")}
    assert sorted(p.name for p in restored.parent.iterdir()) == ["app.db"]  # no temp files left
    assert read_rows(restored) == [*ROWS, (9999, "only in the wal", b"\x00\xff")]


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_sqlite_backup_finishes_while_a_writer_commits_every_few_milliseconds(
    tmp_path: Path, wal: bool
) -> None:
    db = tmp_path / "busy.db"
    make_db(db, ((i, "", os.urandom(1000)) for i in range(1, 30_001)), wal=wal)  # ~32 MB
    stop = threading.Event()
    errors: list[sqlite3.Error] = []

    def write() -> None:
        try:
            with contextlib.closing(sqlite3.connect(db, timeout=60)) as conn:
                while not stop.is_set():
                    with conn:
                        conn.execute("INSERT INTO notes (body, data) VALUES ('new', x'00')")
                    stop.wait(0.002)
        except sqlite3.Error as exc:
            errors.append(exc)

    engine = backupkit.Engine.from_config(sqlite_config(db, tmp_path / "sink"))
    result: list[backupkit.Manifest] = []
    writer = threading.Thread(target=write, daemon=True)
    backup = threading.Thread(target=lambda: result.append(engine.backup()), daemon=True)
    writer.start()
    try:
        backup.start()
        backup.join(timeout=60)  # generous: without writers it takes a fraction of a second
        assert not backup.is_alive(), "the backup restarts for ever while the writer commits"
    finally:
        stop.set()
        writer.join(timeout=60)
    assert errors == [] and len(result) == 1

    engine.restore("latest", to=tmp_path / "restored")
    uri = (tmp_path / "restored" / "busy.db").absolute().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM notes WHERE id <= 30000").fetchone() == (30_000,)


def test_sqlite_restore_refuses_an_existing_database_unless_overwrite(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db, ROWS[:3])
    engine = backupkit.Engine.from_config(sqlite_config(db, tmp_path / "sink"))
    engine.backup()
    target = tmp_path / "restored"
    target.mkdir()
    make_db(target / "app.db", [(1, "local change", b"")])

    with pytest.raises(RestoreError, match=r"app\.db already exists.*--overwrite"):
        engine.restore(to=target)
    assert read_rows(target / "app.db") == [(1, "local change", b"")]

    engine.restore(to=target, overwrite=True)
    assert read_rows(target / "app.db") == ROWS[:3]


def test_sqlite_restore_of_a_damaged_artifact_makes_nothing_visible(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db, ROWS)
    config = sqlite_config(db, tmp_path / "sink")
    config["sets"]["app"]["compress"] = "none"  # the stream decodes; only the checksum can tell
    engine = backupkit.Engine.from_config(config)
    manifest = engine.backup()
    stored = tmp_path / "sink" / manifest.artifacts[0].key
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match="sqlite"):
        engine.restore(to=target)
    assert not target.exists() or list(target.iterdir()) == []


def test_sqlite_source_with_a_missing_database_is_a_source_error(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(sqlite_config(tmp_path / "nope.db", tmp_path / "sink"))
    with pytest.raises(SourceError, match=r"nope\.db does not exist"):
        engine.backup()
    assert engine.catalog().to_records() == []


@pytest.mark.integration
def test_sqlite_backup_and_restore_through_the_cli_with_a_config_file(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db, ROWS)
    config = tmp_path / "backupkit.toml"
    config.write_text(
        f'[sets.app]\nsink = "{tmp_path / "sink"}"\n\n'
        f'[[sets.app.sources]]\ntype = "sqlite"\nname = "db"\npath = "{db}"\n'
    )
    backup = run_cli("backup", "--config", str(config), "--json")
    assert backup.returncode == 0, backup.stderr
    assert json.loads(backup.stdout)["artifacts"][0]["source"]["id"] == "sqlite"

    restore = run_cli("restore", "latest", "--config", str(config), "--to", str(tmp_path / "out"))
    assert restore.returncode == 0, restore.stderr
    assert read_rows(tmp_path / "out" / "app.db") == ROWS


@pytest.mark.integration
def test_plugins_json_lists_the_installed_sqlite_plugin() -> None:
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert "sqlite" in listing["sources"]
    assert "sqlite" in listing["plugins"]  # the entry-point name
    assert set(DEFAULT_PLUGINS) <= set(listing["plugins"])


# -- autoload off, blocking ------------------------------------------------------------------
def test_disabling_autoload_makes_the_sqlite_id_unknown_to_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    assert "sqlite" not in make_plugin_manager().registry.sources
    engine = backupkit.Engine.from_config(sqlite_config(tmp_path / "app.db", tmp_path / "sink"))
    with pytest.raises(ConfigError, match="unknown source plugin 'sqlite'") as excinfo:
        engine.backup()
    assert isinstance(excinfo.value, PluginError)
    assert not (tmp_path / "sink").exists()  # refused before anything was written


@pytest.mark.integration
def test_disabling_autoload_makes_the_sqlite_id_a_one_line_cli_error(tmp_path: Path) -> None:
    config = tmp_path / "backupkit.toml"
    config.write_text(
        f'[sets.app]\nsink = "{tmp_path / "sink"}"\n\n'
        f'[[sets.app.sources]]\ntype = "sqlite"\npath = "{tmp_path / "app.db"}"\n'
    )
    result = run_cli("backup", "--config", str(config), env={AUTOLOAD_ENV: "1"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "'sqlite'" in result.stderr and "filesystem" in result.stderr

    listing = run_cli("plugins", "--json", env={AUTOLOAD_ENV: "1"})
    assert "sqlite" not in json.loads(listing.stdout)["sources"]


def test_explicit_autoload_false_wins_over_the_environment() -> None:
    assert "sqlite" not in make_plugin_manager(autoload=False).registry.sources
    assert "sqlite" in make_plugin_manager(autoload=True).registry.sources


def test_blocking_a_builtin_removes_its_ids(tmp_path: Path) -> None:
    plugins = make_plugin_manager(block=["backupkit.transforms.gzip"])
    assert "backupkit.transforms.gzip" not in plugins.names()
    assert "gzip" not in plugins.registry.transforms
    assert "zstd" in plugins.registry.transforms
    with pytest.raises(
        PluginError, match="unknown transform plugin 'gzip'; known transforms: "
    ) as excinfo:
        plugins.transform("gzip")
    known = str(excinfo.value).split("known transforms: ", 1)[1]
    assert "zstd" in known and "gzip" not in known

    config = files_config(tmp_path, str(tmp_path / "sink"), compress="gzip")
    engine = backupkit.Engine(Config.from_dict(config), plugins)
    with pytest.raises(PluginError, match="'gzip'"):
        engine.backup()


def test_blocking_an_entry_point_by_name() -> None:
    plugins = make_plugin_manager(block=["sqlite"])
    assert "sqlite" not in plugins.names()
    assert "sqlite" not in plugins.registry.sources
    assert "filesystem" in plugins.registry.sources


# -- what registration refuses ---------------------------------------------------------------
class MisspelledHook:
    @backupkit.hookimpl
    def backupkit_register_sauces(self, register: Register) -> None:
        raise AssertionError("never called")


def test_a_misspelled_hook_implementation_is_rejected() -> None:
    with pytest.raises(PluginError, match="backupkit_register_sauces"):
        make_plugin_manager(plugins=[MisspelledHook()])
    with pytest.raises(PluginError, match="backupkit_register_sauces"):
        backupkit.Engine.from_config(
            {"sets": {"a": {"sources": ["filesystem"], "sink": "x"}}}, plugins=[MisspelledHook()]
        )


def test_a_misspelled_hook_in_an_installed_plugin_names_the_plugin(
    install_plugin: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    install_plugin(
        "bk_test_sauces",
        """
        import backupkit

        @backupkit.hookimpl
        def backupkit_register_sauces(register):
            pass
        """,
    )
    with pytest.raises(PluginError, match="plugin 'bk_test_sauces'.*backupkit_register_sauces"):
        make_plugin_manager()
    assert main(["plugins"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("backupkit: error: ") and err.count("\n") == 1
    assert "bk_test_sauces" in err


def test_a_plugin_that_fails_to_import_names_its_entry_point_and_how_to_block_it(
    install_plugin: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    install_plugin("bk_test_broken", "raise RuntimeError('broken on purpose')\n")
    with pytest.raises(PluginError) as excinfo:
        make_plugin_manager()
    message = str(excinfo.value)
    assert message.startswith("plugin 'bk_test_broken' (entry point 'bk_test_broken' of ")
    assert "bk_test_broken-pkg" in message and "broken on purpose" in message
    assert f"{BLOCK_ENV}=bk_test_broken" in message
    assert main(["plugins"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bk_test_broken" in err

    assert "filesystem" in make_plugin_manager(autoload=False).registry.sources
    monkeypatch.setenv(BLOCK_ENV, "bk_test_broken")
    plugins = make_plugin_manager()  # the other entry points still load
    assert "sqlite" in plugins.registry.sources
    assert "bk_test_broken" not in plugins.names()
    assert main(["plugins"]) == 0


DUPLICATE_LOCAL_PLUGIN = """
    from typing import ClassVar

    import attrs

    import backupkit
    from backupkit.sinks.local import LocalSink


    @attrs.frozen
    class MyLocal(LocalSink):
        id: ClassVar[str] = "local"


    @backupkit.hookimpl
    def backupkit_register_sinks(register):
        register.sink(MyLocal)
"""


def test_an_installed_plugin_taking_a_builtin_id_names_both_and_either_can_be_blocked(
    install_plugin: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    install_plugin("bk_test_dup", DUPLICATE_LOCAL_PLUGIN)
    with pytest.raises(PluginError) as excinfo:
        make_plugin_manager()
    assert str(excinfo.value) == (
        "sink id 'local' is registered twice, by plugin 'backupkit.sinks.local' and by "
        f"plugin 'bk_test_dup'; block one of them: {BLOCK_ENV}=bk_test_dup"
    )
    assert main(["plugins"]) == 2
    assert "'bk_test_dup'" in capsys.readouterr().err

    monkeypatch.setenv(BLOCK_ENV, " bk_test_dup ,")  # spaces and empty names are ignored
    assert make_plugin_manager().sink("local").__module__ == "backupkit.sinks.local"
    assert main(["plugins"]) == 0
    monkeypatch.setenv(BLOCK_ENV, "backupkit.sinks.local")
    assert make_plugin_manager().sink("local").__module__ == "bk_test_dup"


def test_the_block_environment_variable_blocks_builtins_and_adds_to_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BLOCK_ENV, "backupkit.transforms.gzip,sqlite")
    plugins = make_plugin_manager(block=["backupkit.transforms.zstd"])
    assert not {"gzip", "zstd"} & set(plugins.registry.transforms)
    assert "sqlite" not in plugins.registry.sources
    assert "backupkit.transforms.gzip" not in plugins.names()


def test_a_plugin_already_loaded_is_skipped_when_passed_again() -> None:
    import backupkit_sqlite

    import backupkit.sinks.local

    plugins = make_plugin_manager(plugins=[backupkit_sqlite, backupkit.sinks.local])
    assert plugins.source("sqlite") is backupkit_sqlite.SqliteSource
    assert "sqlite" in plugins.names() and "backupkit_sqlite" not in plugins.names()
    assert make_plugin_manager(autoload=False, plugins=[backupkit_sqlite]).source("sqlite")


class _RaisesInRegister:
    @backupkit.hookimpl
    def backupkit_register_transforms(self, register: Register) -> None:
        raise KeyError("no such codec")


def test_an_exception_in_a_registration_hook_is_a_plugin_error_naming_the_plugin(
    install_plugin: Callable[[str, str], Path],
) -> None:
    with pytest.raises(
        PluginError,
        match=r"^plugin '_RaisesInRegister' failed in backupkit_register_transforms: "
        r"KeyError: 'no such codec'",
    ):
        make_plugin_manager(plugins=[_RaisesInRegister()])

    install_plugin(
        "bk_test_raises",
        """
        import backupkit

        @backupkit.hookimpl
        def backupkit_register_sinks(register):
            raise RuntimeError("driver missing")
        """,
    )
    with pytest.raises(PluginError) as excinfo:
        make_plugin_manager()
    message = str(excinfo.value)
    assert message.startswith("plugin 'bk_test_raises' failed in backupkit_register_sinks: ")
    assert "RuntimeError: driver missing" in message and f"{BLOCK_ENV}=bk_test_raises" in message


@attrs.frozen
class _NullSource(backupkit.plugin.Source):
    id: ClassVar[str] = "null-test"

    def backup(self, out: Writer, ctx: backupkit.plugin.BackupContext) -> None:
        return None

    def restore(self, stream: BinaryIO, ctx: backupkit.plugin.RestoreContext) -> None:
        while stream.read(1 << 16):
            pass


@attrs.frozen
class _OtherNullSource(_NullSource):
    pass


class _Registers:
    """A plugin that registers whatever source classes it is given."""

    def __init__(self, *classes: Any) -> None:
        self.classes = classes

    @backupkit.hookimpl
    def backupkit_register_sources(self, register: Register) -> None:
        for cls in self.classes:
            register.source(cls)


def test_registering_two_classes_under_one_id_is_rejected() -> None:
    with pytest.raises(PluginError, match="source id 'null-test' is registered twice"):
        make_plugin_manager(plugins=[_Registers(_NullSource, _OtherNullSource)])


def test_a_third_party_class_cannot_take_a_builtin_id() -> None:
    @attrs.frozen
    class Impostor(_NullSource):
        id: ClassVar[str] = "filesystem"

    with pytest.raises(
        PluginError,
        match="'filesystem' is registered twice, by plugin 'backupkit.sources.filesystem' "
        "and by plugin '_Registers'; block one",
    ):
        make_plugin_manager(plugins=[_Registers(Impostor)])


def test_registering_the_same_class_twice_is_harmless() -> None:
    plugins = make_plugin_manager(plugins=[_Registers(_NullSource), _Registers(_NullSource)])
    assert plugins.source("null-test") is _NullSource


@pytest.mark.parametrize(
    "cls",
    [dict, backupkit.plugin.Transform, pytest.param(_NullSource(), id="an-instance")],
)
def test_registering_something_that_is_not_a_source_class_is_rejected(cls: Any) -> None:
    with pytest.raises(PluginError, match="not a subclass of Source"):
        make_plugin_manager(plugins=[_Registers(cls)])


def test_a_source_class_without_an_id_is_rejected() -> None:
    class NoId(_NullSource):
        id = None  # type: ignore[assignment]

    with pytest.raises(PluginError, match="NoId has no string 'id'"):
        make_plugin_manager(plugins=[_Registers(NoId)])


def test_an_unknown_plugin_id_lists_the_known_ids(tmp_path: Path) -> None:
    plugins = make_plugin_manager()
    with pytest.raises(PluginError) as excinfo:
        plugins.source("mysql")
    message = str(excinfo.value)
    assert "unknown source plugin 'mysql'" in message
    assert "filesystem" in message and "sqlite" in message
    with pytest.raises(PluginError, match="unknown sink plugin 'ftp'; known sinks: .*local"):
        plugins.sink("ftp")

    config = files_config(tmp_path, str(tmp_path / "sink"), transforms=["brotli"])
    with pytest.raises(PluginError, match="unknown transform plugin 'brotli'; known transforms: "):
        backupkit.Engine.from_config(config).backup()


# -- plugin parameters -----------------------------------------------------------------------
def test_an_unknown_plugin_parameter_is_named_with_a_suggestion(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path / "app.db", tmp_path / "sink")
    config["sets"]["app"]["sources"][0]["pth"] = config["sets"]["app"]["sources"][0].pop("path")
    with pytest.raises(
        ConfigError, match=r"source 'sqlite': unknown key 'pth'; did you mean 'path'\?"
    ):
        backupkit.Engine.from_config(config).backup()


def test_a_missing_plugin_parameter_is_named(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path / "app.db", tmp_path / "sink")
    del config["sets"]["app"]["sources"][0]["path"]
    with pytest.raises(ConfigError, match="source 'sqlite': missing required key 'path'"):
        backupkit.Engine.from_config(config).backup()


def test_a_bad_plugin_parameter_value_is_a_one_line_cli_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "backupkit.toml"
    config.write_text(
        f'[sets.app]\nsink = "{tmp_path / "sink"}"\n\n'
        f'[[sets.app.sources]]\ntype = "sqlite"\npath = 42\n'
    )
    assert main(["backup", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "source 'sqlite'" in err and "42" in err


# -- secret() fields -------------------------------------------------------------------------
SECRET_PLUGIN = """
    import logging
    from typing import ClassVar

    import attrs

    import backupkit
    from backupkit.params import secret

    log = logging.getLogger("backupkit.bk_test_secret")


    @attrs.frozen
    class TokenSource(backupkit.plugin.Source):
        id: ClassVar[str] = "token-test"

        label: str
        token: str = secret()

        def backup(self, out, ctx):
            log.info("reading %r", self)  # repr must hide the token too
            out.write(self.label.encode())
            return {"label": self.label}

        def restore(self, stream, ctx):
            while stream.read(65536):
                pass


    @backupkit.hookimpl
    def backupkit_register_sources(register):
        register.source(TokenSource)
"""


def test_secret_fields_never_reach_the_manifest_the_run_log_or_json_output(
    tmp_path: Path,
    install_plugin: Callable[[str, str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    install_plugin("bk_test_secret", SECRET_PLUGIN)
    sink = tmp_path / "sink"
    config = tmp_path / "backupkit.toml"
    config.write_text(
        f'[sets.app]\nsink = "{sink}"\ncompress = "none"\n\n'
        f'[[sets.app.sources]]\ntype = "token-test"\nname = "tok"\n'
        f'label = "visible-label"\ntoken = "{SECRET}"\n'
    )

    assert main(["backup", "--config", str(config), "--json"]) == 0
    assert main(["list", "--config", str(config), "--json"]) == 0
    assert main(["status", "--config", str(config), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"token-test"' in out and "visible-label" in out
    assert SECRET not in out

    (manifest_file,) = sink.glob("*/*.manifest.json")
    manifest = json.loads(manifest_file.read_text())
    assert manifest["artifacts"][0]["source"] == {
        "id": "token-test",
        "params": {"label": "visible-label"},
    }
    (log_file,) = sink.glob("logs/*.log")
    log_text = log_file.read_text()
    assert "reading TokenSource(label='visible-label')" in log_text  # the log is really written
    for path in sink.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_describe_and_repr_leave_secret_fields_out(
    install_plugin: Callable[[str, str], Path],
) -> None:
    install_plugin("bk_test_secret", SECRET_PLUGIN)
    cls = make_plugin_manager().source("token-test")
    source = cls.from_params({"label": "x", "token": SECRET})
    assert source.describe() == {"label": "x"}
    assert SECRET not in repr(source)


# -- backupkit_sink_for_url: one handler wins ------------------------------------------------
MEMORY: dict[str, dict[str, bytes]] = {}


class _MemoryWriter(backupkit.plugin.ArtifactWriter):
    def __init__(self, store: dict[str, bytes], key: str) -> None:
        self.store, self.key, self.buf = store, key, bytearray()

    def write(self, data: bytes, /) -> int:
        self.buf += data
        return len(data)

    def commit(self) -> None:
        self.store[self.key] = bytes(self.buf)

    def abort(self) -> None:
        self.buf.clear()


@attrs.frozen
class MemorySink(backupkit.plugin.Sink):
    """A sink in a dict, owned by ``mem://BUCKET`` URLs."""

    id: ClassVar[str] = "memory-test"

    bucket: str

    @property
    def location(self) -> str:
        return f"mem://{self.bucket}"

    @property
    def store(self) -> dict[str, bytes]:
        return MEMORY.setdefault(self.bucket, {})

    def open_artifact(self, key: str, *, run_id: str) -> backupkit.plugin.ArtifactWriter:
        return _MemoryWriter(self.store, key)

    def put_bytes(self, key: str, data: bytes, *, run_id: str) -> None:
        self.store[key] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.store[key]
        except KeyError:
            raise NotFoundError(f"{key} is not in {self.location}") from None

    def open_read(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get_bytes(key))

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self.store if k.startswith(prefix)))

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.store.pop(key, None)


class MemoryPlugin:
    @backupkit.hookimpl
    def backupkit_register_sinks(self, register: Register) -> None:
        register.sink(MemorySink)

    @backupkit.hookimpl
    def backupkit_sink_for_url(self, url: str) -> tuple[str, dict[str, object]] | None:
        if url.startswith("mem://"):
            return ("memory-test", {"bucket": url[len("mem://") :]})
        return None


class GreedyMemoryPlugin:
    """Claims every location first; with firstresult, nobody else is asked."""

    @backupkit.hookimpl(tryfirst=True)
    def backupkit_sink_for_url(self, url: str) -> tuple[str, dict[str, object]] | None:
        return ("memory-test", {"bucket": "greedy"})


@pytest.fixture
def memory() -> Iterator[dict[str, dict[str, bytes]]]:
    MEMORY.clear()
    yield MEMORY
    MEMORY.clear()


def test_a_plugin_claims_a_url_scheme_and_its_sink_is_used(
    tmp_path: Path, memory: dict[str, dict[str, bytes]]
) -> None:
    engine = backupkit.Engine.from_config(
        files_config(tmp_path, "mem://bucket"), plugins=[MemoryPlugin()]
    )
    manifest = engine.backup()

    assert any(k.endswith(".manifest.json") for k in memory["bucket"])
    assert manifest.artifact("files").key in memory["bucket"]
    assert not (tmp_path / "mem:").exists()  # the local sink did not take it as a path
    assert engine.catalog().latest().id == manifest.id
    engine.restore(to=tmp_path / "restored")
    assert (tmp_path / "restored" / "data" / "hello.txt").read_text() == "hello\n"


def test_sink_for_url_stops_at_the_first_answer(
    tmp_path: Path, memory: dict[str, dict[str, bytes]]
) -> None:
    plugins = [MemoryPlugin(), GreedyMemoryPlugin()]
    engine = backupkit.Engine.from_config(
        files_config(tmp_path, str(tmp_path / "sink")), plugins=plugins
    )
    engine.backup()
    assert list(memory) == ["greedy"]
    assert not (tmp_path / "sink").exists()


def test_a_location_no_plugin_claims_is_a_config_error(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(files_config(tmp_path, "mem://bucket"))
    with pytest.raises(ConfigError, match="no sink plugin handles 'mem://bucket'"):
        engine.backup()


# -- a third-party transform -----------------------------------------------------------------
class _XorStream:
    def __init__(self, inner: Any, key: int) -> None:
        self.inner = inner
        self.table = bytes(b ^ key for b in range(256))

    def write(self, data: bytes, /) -> int:
        self.inner.write(bytes(data).translate(self.table))
        return len(data)

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self.inner.read(size)
        return data.translate(self.table)

    def close(self) -> None:
        pass


@attrs.frozen
class XorTransform(backupkit.plugin.Transform):
    id: ClassVar[str] = "xor-test"
    extension: ClassVar[str] = ".xor"

    key: int = attrs.field(default=0x5A, validator=check_range(1, 255))

    def encoder(self, out: Writer) -> Encoder:
        return _XorStream(out, self.key)

    def decoder(self, inp: Reader) -> Reader:
        return _XorStream(inp, self.key)


class XorPlugin:
    @backupkit.hookimpl
    def backupkit_register_transforms(self, register: Register) -> None:
        register.transform(XorTransform)


def test_a_third_party_transform_is_recorded_and_reversed_on_restore(tmp_path: Path) -> None:
    transforms = ["zstd", {"type": "xor-test", "key": 7}]
    config = files_config(tmp_path, str(tmp_path / "sink"), transforms=transforms)
    engine = backupkit.Engine.from_config(config, plugins=[XorPlugin()])
    manifest = engine.backup()
    artifact = manifest.artifact("files")
    assert [t.id for t in artifact.transforms] == ["zstd", "xor-test"]
    assert artifact.transforms[1].params == {"key": 7}
    assert artifact.key.endswith(".tar.zst.xor")

    engine.restore(to=tmp_path / "restored")
    assert (tmp_path / "restored" / "data" / "hello.txt").read_text() == "hello\n"


def test_a_bad_transform_parameter_value_is_a_config_error(tmp_path: Path) -> None:
    config = files_config(
        tmp_path, str(tmp_path / "sink"), transforms=[{"type": "xor-test", "key": 0}]
    )
    engine = backupkit.Engine.from_config(config, plugins=[XorPlugin()])
    with pytest.raises(
        ConfigError, match="transform 'xor-test': key must be an integer from 1 to 255"
    ):
        engine.backup()


# -- lifecycle hooks -------------------------------------------------------------------------
@attrs.define
class Recorder:
    calls: list[tuple[str, Any]] = attrs.field(factory=list)
    fail_before: bool = False

    @backupkit.hookimpl
    def backupkit_before_run(self, run: backupkit.plugin.RunInfo) -> None:
        self.calls.append(("before", run))
        if self.fail_before:
            raise RuntimeError("maintenance window")

    @backupkit.hookimpl
    def backupkit_after_run(self, run: backupkit.plugin.RunInfo, manifest: backupkit.Manifest) -> None:
        self.calls.append(("after", (run, manifest)))

    @backupkit.hookimpl
    def backupkit_on_failure(self, run: backupkit.plugin.RunInfo, error: BaseException) -> None:
        self.calls.append(("failure", (run, error)))


def test_lifecycle_hooks_see_a_successful_run(tmp_path: Path) -> None:
    recorder = Recorder()
    engine = backupkit.Engine.from_config(
        files_config(tmp_path, str(tmp_path / "sink"), tags=["t1"]), plugins=[recorder]
    )
    manifest = engine.backup(reason="test")
    assert [name for name, _ in recorder.calls] == ["before", "after"]
    run = recorder.calls[0][1]
    assert (run.set_name, run.kind, run.reason, run.run_id) == ("app", "full", "test", manifest.id)
    assert run.sink == str(tmp_path / "sink")
    assert recorder.calls[1][1] == (run, manifest)


@attrs.frozen
class _FailingSource(_NullSource):
    id: ClassVar[str] = "failing-test"

    def backup(self, out: Writer, ctx: backupkit.plugin.BackupContext) -> None:
        out.write(b"x" * 100_000)
        raise SourceError("the dump command died")


def test_on_failure_sees_the_error_and_the_catalog_is_unchanged(tmp_path: Path) -> None:
    recorder = Recorder()
    config = files_config(tmp_path, str(tmp_path / "sink"))
    config["sets"]["app"]["sources"].append({"type": "failing-test"})
    engine = backupkit.Engine.from_config(config, plugins=[recorder, _Registers(_FailingSource)])
    with pytest.raises(SourceError, match="the dump command died"):
        engine.backup()
    assert [name for name, _ in recorder.calls] == ["before", "failure"]
    run, error = recorder.calls[1][1]
    assert run == recorder.calls[0][1]
    assert isinstance(error, SourceError)
    assert engine.catalog().to_records() == []
    tiers = [tmp_path / "sink" / t for t in ("daily", "weekly", "monthly")]
    assert [p for t in tiers for p in t.iterdir()] == []  # the committed artifact is gone


class _BrokenNotifier:
    @backupkit.hookimpl
    def backupkit_on_failure(self, run: backupkit.plugin.RunInfo, error: BaseException) -> None:
        raise RuntimeError("the notifier is down")


def test_a_failing_on_failure_hook_does_not_hide_the_real_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = files_config(tmp_path, str(tmp_path / "sink"))
    config["sets"]["app"]["sources"].append({"type": "failing-test"})
    plugins = [_BrokenNotifier(), _Registers(_FailingSource)]
    engine = backupkit.Engine.from_config(config, plugins=plugins)
    with pytest.raises(SourceError, match="the dump command died"):
        engine.backup()
    assert "the notifier is down" in caplog.text


def test_before_run_can_veto_a_run_before_anything_is_written(tmp_path: Path) -> None:
    recorder = Recorder(fail_before=True)
    engine = backupkit.Engine.from_config(
        files_config(tmp_path, str(tmp_path / "sink")), plugins=[recorder]
    )
    with pytest.raises(RuntimeError, match="maintenance window"):
        engine.backup()
    assert [name for name, _ in recorder.calls] == ["before", "failure"]
    assert not (tmp_path / "sink").exists()


def test_each_engine_has_its_own_plugin_manager(tmp_path: Path) -> None:
    recorder = Recorder()
    config = files_config(tmp_path, str(tmp_path / "sink"))
    with_recorder = backupkit.Engine.from_config(config, plugins=[recorder])
    without = backupkit.Engine.from_config(config)
    assert with_recorder.plugins.manager is not without.plugins.manager
    without.backup()
    assert recorder.calls == []


def test_autoload_off_only_for_a_true_value_and_unknown_ids_get_a_suggestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backupkit.errors import PluginError
    from backupkit.plugins import AUTOLOAD_ENV, make_plugin_manager

    for value, loaded in (("0", True), ("false", True), ("1", False), ("yes", False)):
        monkeypatch.setenv(AUTOLOAD_ENV, value)
        assert ("sqlite" in make_plugin_manager().registry.sources) is loaded, value
    monkeypatch.delenv(AUTOLOAD_ENV)
    engine = backupkit.Engine.from_config(
        {"sets": {"a": {"sources": [{"type": "filesytem", "paths": ["/srv"]}], "sink": "/tmp/x"}}},
        env={},
    )
    with pytest.raises(PluginError, match="did you mean 'filesystem'"):
        engine.backup("a")
