"""--metrics-file: the sinks' metrics written for node_exporter after a backup or prune run,
also a failed one, whose exit code stays the run's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def values(path: Path, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(path.read_text())
            for s in family.samples if s.name == name}


def source(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "f.txt").write_text("x" * 5000)
    return tmp_path / "src"


def test_a_failed_backup_writes_the_file_with_its_failure_and_keeps_its_exit_code(
    tmp_path: Path, cli: Any
) -> None:
    prom = tmp_path / "backupkit.prom"
    plain = cli("full", "--source", "missing", "--sink", "sink")  # without the file: not counted
    assert plain.returncode != 0 and not prom.exists()
    failed = cli("full", "--source", "missing", "--sink", "sink", "--metrics-file", prom)
    assert failed.returncode == plain.returncode
    cli.error_line(failed, "missing")  # the run's error, alone on stderr
    assert values(prom, "backup_failure_total") == {
        (("kind", "full"), ("set", "default")): 1.0, (("kind", "incremental"), ("set", "default")): 0.0}
    again = cli("full", "--source", "missing", "--sink", "sink", "--metrics-file", prom)
    assert again.returncode == plain.returncode
    assert values(prom, "backup_failure_total")[(("kind", "full"), ("set", "default"))] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("backupkit.prom.")]


def test_a_backup_writes_the_newest_backup_as_the_catalog_lists_it(tmp_path: Path, cli: Any) -> None:
    prom = tmp_path / "backupkit.prom"
    done = cli("full", "--source", source(tmp_path), "--sink", "sink", "--metrics-file", prom)
    assert done.returncode == 0, done.stderr
    (backup,) = json.loads(cli("list", "--sink", "sink", "--json").stdout)["backups"]
    labels = (("kind", "full"), ("set", "default"))
    assert values(prom, "backup_size_bytes") == {labels: backup["stored_size"]}
    assert values(prom, "backup_failure_total")[labels] == 0
    assert "_created" not in prom.read_text()


def test_a_metrics_file_not_ending_in_prom_is_refused_before_the_run(tmp_path: Path, cli: Any) -> None:
    run = ("backup", "--source", source(tmp_path), "--sink", "sink")
    refused = cli(*run, "--metrics-file", tmp_path / "backupkit.txt")
    cli.error_line(refused, "backupkit.txt", ".prom", "node_exporter")
    assert not (tmp_path / "sink").exists()  # nothing ran
    refused = cli("prune", "--sink", "sink", "--metrics-file", tmp_path / "no-dir" / "m.prom")
    cli.error_line(refused, "no-dir", "does not exist")


def test_prune_writes_the_file_the_configuration_names(tmp_path: Path, cli: Any) -> None:
    prom = tmp_path / "configured.prom"
    path = tmp_path / "backupkit.toml"
    path.write_text(f'[plugins.metrics]\ntextfile = "{prom}"\n[sets.app]\nsink = "{tmp_path / "sink"}"\n'
                    f'[[sets.app.sources]]\ntype = "filesystem"\npaths = ["{source(tmp_path)}"]\n')
    assert cli("backup", "--config", path).returncode == 0
    assert prom.exists()
    prom.unlink()
    pruned = cli("prune", "--config", path, "--keep-last", "1", "--yes")
    assert pruned.returncode == 0, pruned.stderr
    assert values(prom, "backup_count")[(("set", "app"), ("tier", "monthly"))] == 1
    prom.unlink()
    assert cli("list", "--config", path).returncode == 0
    assert not prom.exists()  # only the backup commands and prune write it
    other = tmp_path / "flag.prom"
    assert cli("prune", "--config", path, "--metrics-file", other).returncode == 0
    assert other.exists()


def test_a_metrics_file_that_cannot_be_written_is_a_warning_and_the_exit_code_stays(
    tmp_path: Path, cli: Any
) -> None:
    (tmp_path / "taken.prom").mkdir()  # a directory where the file would go
    done = cli("backup", "--source", source(tmp_path), "--sink", "sink", "--metrics-file", tmp_path / "taken.prom")
    assert done.returncode == 0
    (line,) = done.stderr.splitlines()
    assert line.startswith("backupkit: warning: could not write the metrics file")
