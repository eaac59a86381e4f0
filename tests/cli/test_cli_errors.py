"""Mistakes a user can fix are one line on stderr, never a traceback.

Each bad input runs the real CLI in a subprocess (``python -m backupkit``) and
checks: non-zero exit, exactly one stderr line starting ``backupkit: error:`` that
names the offending path, key, value or plugin id, and no ``Traceback``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from backupkit import Engine
from backupkit import cli as cli_module
from backupkit.errors import ConfigError, PluginError, SinkError, SourceError

if TYPE_CHECKING:
    from conftest import Cli


def manifests(sink: Path) -> list[Path]:
    return sorted(sink.rglob("*.manifest.json")) if sink.exists() else []


def test_missing_source_path_is_one_line_naming_it(tmp_path: Path, cli: Cli) -> None:
    missing = tmp_path / "no-such-dir"
    result = cli("backup", "--source", missing, "--sink", tmp_path / "sink")
    cli.error_line(result, str(missing), "does not exist")
    assert result.returncode == SourceError.exit_code
    assert manifests(tmp_path / "sink") == []


def test_sink_below_a_regular_file_is_one_line_naming_it(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    (tmp_path / "plain-file").write_text("I am not a directory\n")
    sink = tmp_path / "plain-file" / "sink"
    result = cli("backup", "--source", source_tree, "--sink", sink)
    cli.error_line(result, str(sink))
    assert result.returncode == SinkError.exit_code


def test_sink_that_is_a_regular_file_is_one_line_naming_it(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    sink = tmp_path / "plain-file"
    sink.write_text("I am not a directory\n")
    result = cli("backup", "--source", source_tree, "--sink", sink)
    cli.error_line(result, str(sink), "not a directory")
    assert sink.read_text() == "I am not a directory\n"


def test_sink_under_proc_is_one_line_naming_it(tmp_path: Path, source_tree: Path, cli: Cli) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    sink = "/proc/backupkit-test-sink"
    result = cli("backup", "--source", source_tree, "--sink", sink)
    cli.error_line(result, sink)
    assert result.returncode == SinkError.exit_code


def test_sink_without_write_permission_is_one_line_saying_so(
    tmp_path: Path,
    source_tree: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Tests run as root, which chmod cannot stop: fake the permission check instead."""
    sink = tmp_path / "sink"
    real_access = os.access
    monkeypatch.setattr(
        "backupkit.sinks.local.os.access",
        lambda path, mode, **kw: False if Path(path) == sink else real_access(path, mode, **kw),
    )

    code = cli_module.main(["backup", "--source", str(source_tree), "--sink", str(sink)])

    err = capsys.readouterr().err
    assert code == SinkError.exit_code
    assert err.splitlines() == [err.rstrip("\n")]
    assert err.startswith("backupkit: error: ") and str(sink) in err and "permission denied" in err
    assert manifests(sink) == []


SET = """\
[sets.app]
sink = "{sink}"
{extra}
[[sets.app.sources]]
type = "{source_type}"
paths = ["{src}"]
{source_extra}
"""


@pytest.mark.parametrize(
    ("extra", "source_type", "source_extra", "names", "exit_code"),
    [
        pytest.param(
            'transforms = [{type = "zstd", level = 99}]',
            "filesystem",
            "",
            ["transform 'zstd'", "level", "99"],
            ConfigError.exit_code,
            id="zstd-level-99",
        ),
        pytest.param(
            'transforms = [{type = "gzip", level = "high"}]',
            "filesystem",
            "",
            ["transform 'gzip'", "level", "'high'"],
            ConfigError.exit_code,
            id="gzip-level-string",
        ),
        pytest.param(
            'compres = "zstd"',
            "filesystem",
            "",
            ["unknown key 'compres'", "did you mean 'compress'"],
            ConfigError.exit_code,
            id="unknown-set-key",
        ),
        pytest.param(
            "",
            "filesystem",
            'exclud = ["*.pyc"]',
            ["source 'filesystem'", "unknown key 'exclud'"],
            ConfigError.exit_code,
            id="unknown-source-key",
        ),
        pytest.param(
            'compress = "lz4"',
            "filesystem",
            "",
            ["compress", "'lz4'"],
            ConfigError.exit_code,
            id="unknown-compress-value",
        ),
        pytest.param(
            "",
            "no-such-source",
            "",
            ["source plugin 'no-such-source'"],
            PluginError.exit_code,
            id="unknown-source-plugin",
        ),
        pytest.param(
            'transforms = [{type = "rot13"}]',
            "filesystem",
            "",
            ["transform plugin 'rot13'"],
            PluginError.exit_code,
            id="unknown-transform-plugin",
        ),
    ],
)
def test_bad_config_file_is_one_line_naming_the_offender(
    tmp_path: Path,
    source_tree: Path,
    cli: Cli,
    extra: str,
    source_type: str,
    source_extra: str,
    names: list[str],
    exit_code: int,
) -> None:
    sink = tmp_path / "sink"
    (tmp_path / "backupkit.toml").write_text(
        SET.format(
            sink=sink,
            extra=extra,
            source_type=source_type,
            src=source_tree,
            source_extra=source_extra,
        )
    )
    result = cli("backup")  # finds ./backupkit.toml
    cli.error_line(result, *names)
    assert result.returncode == exit_code
    assert manifests(sink) == []


def test_unknown_sink_plugin_in_config_is_one_line_naming_it(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text(
        '[sets.app]\nsink = {type = "ftp", root = "/x"}\n'
        f'[[sets.app.sources]]\ntype = "filesystem"\npaths = ["{source_tree}"]\n'
    )
    result = cli("backup", "--config", config)
    cli.error_line(result, "sink plugin 'ftp'")
    assert result.returncode == PluginError.exit_code


def test_config_file_that_is_not_toml_is_one_line_naming_the_file(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[sets.app\n")
    cli.error_line(cli("backup", "--config", config), str(config), "not valid TOML")


def test_missing_config_file_is_one_line_naming_it(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "absent.toml"
    cli.error_line(cli("list", "--config", config), str(config), "does not exist")


def test_unknown_compress_on_command_line_is_one_line_naming_it(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    result = cli(
        "backup", "--source", source_tree, "--sink", tmp_path / "sink", "--compress", "lz4"
    )
    cli.error_line(result, "--compress", "'lz4'")


def test_unknown_backup_id_is_one_line_naming_it(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    assert cli("backup", "--source", source_tree, "--sink", tmp_path / "sink").returncode == 0
    cli.error_line(cli("verify", "19990101", "--sink", tmp_path / "sink"), "'19990101'")
    cli.error_line(
        cli("restore", "19990101", "--sink", tmp_path / "sink", "--to", tmp_path / "r"),
        "'19990101'",
    )
    assert not (tmp_path / "r").exists()


def test_list_reports_a_truncated_manifest_by_file_and_still_lists_the_others(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    sink = tmp_path / "sink"
    engine = Engine.from_config(
        {
            "sets": {
                "app": {
                    "sources": [{"type": "filesystem", "paths": [str(source_tree)]}],
                    "sink": str(sink),
                }
            }
        },
        env={},
    )
    good, bad = engine.backup(), engine.backup()
    (bad_file,) = [p for p in manifests(sink) if bad.id in p.name]
    bad_file.write_bytes(bad_file.read_bytes()[:120])

    listed = cli("list", "--sink", sink)
    assert listed.returncode == 0, listed.stderr
    assert good.id in listed.stdout and bad.id not in listed.stdout
    assert "Traceback" not in listed.stderr
    warnings = listed.stderr.splitlines()
    assert len(warnings) == 1, f"the problem should be reported once: {listed.stderr!r}"
    assert warnings[0].startswith("backupkit: warning: ") and bad_file.name in warnings[0]

    as_json = cli("list", "--sink", sink, "--json")
    assert as_json.returncode == 0
    data = json.loads(as_json.stdout)
    assert [b["id"] for b in data["backups"]] == [good.id]
    assert len(data["problems"]) == 1 and bad_file.name in data["problems"][0]

    status = json.loads(cli("status", "--sink", sink, "--json").stdout)
    assert status["sets"]["app"]["latest_id"] == good.id
    assert [bad_file.name in p["key"] for p in status["problems"]] == [True]

    # 'latest' does not quietly fall back to the older backup: the newer one is unreadable.
    refused = cli("verify", "latest", "--sink", sink)
    cli.error_line(refused, bad.id, "cannot be read", bad_file.name, f"restore {good.id} by its id")
    verified = cli("verify", good.id, "--sink", sink)
    assert verified.returncode == 0, verified.stderr
    assert good.id in verified.stdout

    # A failing command in a sink with a bad manifest is still exactly one line.
    cli.error_line(cli("restore", "19990101", "--sink", sink, "--to", tmp_path / "r"), "'19990101'")


# -- output to a closed pipe, and system errors nothing translated ----------------------
def run_with_stdout(cli: Cli, stdout: int, *args: str | os.PathLike[str]) -> tuple[int, str]:
    """Run the CLI with *stdout* as its standard output; return (exit code, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "backupkit", *map(os.fspath, args)],
        cwd=cli.cwd, env=cli.env, stdout=stdout, stderr=subprocess.PIPE, text=True,
        timeout=120, check=False,
    )
    return proc.returncode, proc.stderr


def test_list_into_a_closed_pipe_exits_quietly_with_141(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    assert cli("backup", "--source", source_tree, "--sink", tmp_path / "sink").returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as `| head -0`
    try:
        code, stderr = run_with_stdout(cli, write_end, "list", "--sink", tmp_path / "sink")
    finally:
        os.close(write_end)
    assert (code, stderr) == (141, "")


def test_output_that_cannot_be_written_is_one_line(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    assert cli("backup", "--source", source_tree, "--sink", tmp_path / "sink").returncode == 0
    with open("/dev/full", "w") as full:
        code, stderr = run_with_stdout(cli, full.fileno(), "list", "--sink", tmp_path / "sink")
    assert code != 0 and "Traceback" not in stderr
    assert stderr.splitlines() == [
        "backupkit: error: cannot write to standard output: No space left on device; "
        "check where it is redirected"
    ]


RESETTING_SINK = '''
import errno
from typing import ClassVar

import attrs

import backupkit
from backupkit.sinks.local import LocalSink


@attrs.frozen
class ResettingSink(LocalSink):
    """A third-party sink whose listing fails with an error it does not translate."""

    id: ClassVar[str] = "resetting"

    def list_keys(self, prefix=""):
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer", "store.example")


@backupkit.hookimpl
def backupkit_register_sinks(register):
    register.sink(ResettingSink)


@backupkit.hookimpl
def backupkit_sink_for_url(url):
    if url.startswith("resetting://"):
        return ("resetting", {"root": url[len("resetting://"):]})
    return None
'''


def test_an_untranslated_os_error_is_one_line_and_debug_shows_its_traceback(
    tmp_path: Path, cli: Cli
) -> None:
    site = tmp_path / "site-packages"
    info = site / "resetting_sink-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "resetting_sink.py").write_text(RESETTING_SINK)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: resetting-sink\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[backupkit]\nresetting = resetting_sink\n")
    cli.env["PYTHONPATH"] = str(site)
    url = f"resetting://{tmp_path / 'sink'}"

    line = cli.error_line(cli("list", "--sink", url), "store.example", "Connection reset by peer")
    assert "--debug" in line
    flagged = cli("--debug", "list", "--sink", url)
    cli.env["BACKUPKIT_DEBUG"] = "1"
    for debug in (flagged, cli("list", "--sink", url)):
        assert debug.returncode != 0
        assert "Traceback" in debug.stderr and "ConnectionResetError" in debug.stderr


# -- --sink and a config file ------------------------------------------------------------
def test_sink_and_config_together_are_refused_rather_than_one_ignored(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "other.toml").write_text('[sets.app]\nsources = ["filesystem"]\nsink = "/nowhere"\n')
    result = cli("list", "--config", tmp_path / "other.toml", "--sink", tmp_path / "sink")
    cli.error_line(result, "either --sink or --config")


def test_sink_in_a_directory_with_a_config_file_keeps_its_key_and_retention(
    tmp_path: Path, source_tree: Path, cli: Cli
) -> None:
    from backupkit.crypto.keys import Key

    (tmp_path / "keys").write_text(Key.generate().encode() + "\n")
    (tmp_path / "keys").chmod(0o600)
    sink = tmp_path / "sink"
    (tmp_path / "backupkit.toml").write_text(
        f'key_file = "{tmp_path / "keys"}"\n'
        f'[sets.app]\nsources = [{{ type = "filesystem", paths = ["{source_tree}"] }}]\n'
        f'sink = "{sink}"\nencrypt = true\nencrypt_manifest = true\n'
        '[sets.app.retention]\nkeep_last = 100\n'
    )
    for _ in range(2):
        assert cli("backup").returncode == 0

    # The sealed manifests open with the config's key, though --sink names the sink.
    listed = cli("list", "--sink", sink, "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)["backups"]) == 2
    restored = cli("restore", "latest", "--sink", sink, "--to", tmp_path / "out")
    assert restored.returncode == 0, restored.stderr
    # Pruning with the default policy instead of the file's keep_last = 100 is refused.
    refused = cli("prune", "--sink", sink, "--yes")
    cli.error_line(refused, "backupkit.toml", "retention", "--config")
    assert len(json.loads(cli("list", "--sink", sink, "--json").stdout)["backups"]) == 2
    assert cli("prune", "--sink", sink, "--keep-last", "1", "--yes").returncode == 0


@pytest.mark.parametrize("command", [["list"], ["status"], ["verify", "latest"], ["prune", "--keep-last", "1"]])
def test_a_sink_directory_that_does_not_exist_is_an_error_not_an_empty_sink(
    tmp_path: Path, cli: Cli, command: list[str]
) -> None:
    result = cli(*command, "--sink", tmp_path / "typo")
    cli.error_line(result, "typo does not exist")
    assert result.returncode == 6


def test_an_unknown_sink_url_is_named_without_its_password(cli: Cli) -> None:
    result = cli("list", "--sink", "sftpx://bob:hunter2@host/backups")
    line = cli.error_line(result, "no sink plugin handles", "sftpx://bob:")
    assert "hunter2" not in line + result.stdout


def test_a_closed_stdout_is_one_line_not_a_traceback(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "sink").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "backupkit", "list", "--sink", str(tmp_path / "sink")],
        cwd=cli.cwd, env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        timeout=120, check=False, pass_fds=(), close_fds=True,
        preexec_fn=lambda: os.close(1),
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "backupkit: error: cannot write to standard output: it is closed; redirect it to a file"
    )


def test_keys_id_needs_no_sink_from_the_config_file(tmp_path: Path, cli: Cli) -> None:
    from backupkit.crypto.keys import Key

    key = Key.generate()
    (tmp_path / "kf").write_text(key.encode() + "\n")
    (tmp_path / "kf").chmod(0o600)
    (tmp_path / "backupkit.toml").write_text(  # the set's sink would come from BACKUP_DIR
        'key_file = "kf"\n[sets.app]\nsources = [{ type = "filesystem", paths = ["/srv"] }]\n'
    )
    env_without = {k: v for k, v in cli.env.items() if k != "BACKUP_DIR"}
    proc = subprocess.run([sys.executable, "-m", "backupkit", "keys", "id"], cwd=cli.cwd,
                          env=env_without, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(key.id)


def test_an_exception_nothing_translated_is_one_line_and_debug_shows_it(tmp_path: Path, cli: Cli) -> None:
    plugin = tmp_path / "site" / "crashing_source.py"
    plugin.parent.mkdir()
    plugin.write_text(
        "import attrs, backupkit\n"
        "from typing import ClassVar\n"
        "@attrs.frozen\n"
        "class Crash(backupkit.plugin.Source):\n"
        "    id: ClassVar[str] = 'crash'\n"
        "    def backup(self, out, ctx):\n"
        "        raise RuntimeError('driver exploded')\n"
        "    def restore(self, stream, ctx):\n"
        "        pass\n"
        "@backupkit.hookimpl\n"
        "def backupkit_register_sources(register):\n"
        "    register.source(Crash)\n"
    )
    (tmp_path / "c.toml").write_text(
        f'[sets.app]\nsources = ["crash"]\nsink = "{tmp_path / "sink"}"\n'
    )
    code = (
        "import sys, crashing_source, backupkit.engine as e\n"
        "orig = e.Engine.from_config.__func__\n"
        "e.Engine.from_config = classmethod(lambda cls, c, **kw: orig(cls, c, plugins=[crashing_source], **kw))\n"
        "from backupkit.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**cli.env, "PYTHONPATH": str(plugin.parent)}
    run = [sys.executable, "-c", code]
    plain = subprocess.run([*run, "backup", "--config", str(tmp_path / "c.toml")], cwd=cli.cwd,
                           env=env, capture_output=True, text=True, timeout=120, check=False)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().endswith("RuntimeError: driver exploded (not an error backupkit "
                                         "knows: a bug in a plugin or in backupkit; rerun with "
                                         "--debug for the traceback)")
    debug = subprocess.run([*run, "--debug", "backup", "--config", str(tmp_path / "c.toml")],
                           cwd=cli.cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" in debug.stderr and "driver exploded" in debug.stderr


def test_an_untranslated_error_line_hides_a_password_holding_an_at_sign() -> None:
    from backupkit.cli import _unexpected

    line = _unexpected(ConnectionResetError(104, "Connection reset", "sftp://bob:p@ss@host/x"))
    assert "p@ss" not in line and "ss@" not in line and "sftp://host/x" in line
