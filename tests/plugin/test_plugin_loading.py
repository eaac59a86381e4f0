"""Loading plugins: entry-point autoload on and off, blocking, and what registration refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from plugin_helpers import (  # noqa: F401
    _autoload_on,
    _NullSource,
    _Registers,
    files_config,
    install_plugin,
    run_cli,
    sqlite_config,
)

import backupkit
from backupkit.cli import main
from backupkit.config import Config
from backupkit.errors import ConfigError, PluginError
from backupkit.plugin import Register
from backupkit.plugin.registry import BLOCK_ENV
from backupkit.plugins import AUTOLOAD_ENV, make_plugin_manager


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
    install_plugin: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]  # noqa: F811
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
    install_plugin: Callable[[str, str], Path],  # noqa: F811
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
    install_plugin: Callable[[str, str], Path],  # noqa: F811
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
    install_plugin: Callable[[str, str], Path],  # noqa: F811
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
class _OtherNullSource(_NullSource):
    pass


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
