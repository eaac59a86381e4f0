"""Plugin parameters: unknown, missing and bad keys are named; ``secret()`` fields stay out
of manifests, run logs, ``--json`` output, ``describe()`` and ``repr``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from plugin_helpers import _autoload_on, install_plugin, sqlite_config  # noqa: F401

import backupkit
from backupkit.cli import main
from backupkit.errors import ConfigError
from backupkit.plugins import make_plugin_manager

SECRET = "s3cr3t-T0KEN-do-not-leak"


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
    install_plugin: Callable[[str, str], Path],  # noqa: F811
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
    install_plugin: Callable[[str, str], Path],  # noqa: F811
) -> None:
    install_plugin("bk_test_secret", SECRET_PLUGIN)
    cls = make_plugin_manager().source("token-test")
    source = cls.from_params({"label": "x", "token": SECRET})
    assert source.describe() == {"label": "x"}
    assert SECRET not in repr(source)
