"""A backup that dies, is interrupted or runs out of space leaves the catalog as it was.

The contract (backupkit/engine.py, docs/hooks.md): a run publishes its manifest last, only
after every artifact is stored; a run that fails or is interrupted leaves no
manifest and no artifact visible, removes its temp files (or the next run collects
them), and calls ``backupkit_on_failure``. Memory stays bounded by the chunk pipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crash_helpers
import pytest
from conftest import Cli
from crash_helpers import files_under, incompressible

from backupkit import Config, Engine, Manifest
from backupkit.errors import SinkError, SourceError
from backupkit.plugin import RunInfo
from backupkit.sinks.local import LocalSink
from backupkit.streaming import CHUNK, DEPTH, Cancelled, ChunkPipe
from backupkit.testing.fakes import HookRecorder

MIB = 1 << 20
BIG_MIB = 300  # the "large artifact" a run is killed in the middle of
KILL_AFTER = 8 * MIB  # bytes of partial artifact in temp/ before the signal is sent


# -- fixtures and helpers -------------------------------------------------------------
@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~300 MB that gzip cannot shrink, made cheaply from a repeated 1 MiB random block
    (gzip's window is 32 KiB), so a gzip backup of it takes seconds, not milliseconds."""
    root = tmp_path_factory.mktemp("big") / "data"
    root.mkdir()
    block = incompressible(MIB, seed=1)
    with open(root / "large.bin", "wb") as fh:
        fh.writelines(block for _ in range(BIG_MIB))
    (root / "small.txt").write_text("a small file next to the large one\n")
    return root


def small_tree(root: Path, mib: float = 0.1, seed: int = 2) -> Path:
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("notes\n" * 100)
    (root / "blob.bin").write_bytes(incompressible(int(mib * MIB), seed=seed))
    return root


def set_config(sink: Any, *sources: dict[str, Any], compress: str = "gzip") -> dict[str, Any]:
    return {"sets": {"default": {"sources": list(sources), "compress": compress, "sink": sink}}}


def fs_source(path: Path, name: str = "files") -> dict[str, Any]:
    return {"type": "filesystem", "name": name, "paths": [str(path)]}


def baseline(sink: Path, tmp_path: Path) -> Manifest:
    """One good backup in *sink*, plus a truncated manifest the catalog reports."""
    src = small_tree(tmp_path / "baseline-src")
    manifest = Engine.from_config(set_config(str(sink), fs_source(src))).backup(reason="baseline")
    broken = sink / "daily" / "broken_full_20200101T000000Z-aaaaaa.manifest.json"
    broken.write_text('{"format": 1, "id"')
    return manifest


def catalog_state(sink: Path) -> tuple[list[dict[str, Any]], list[Any]]:
    """What a reader of *sink* sees: every manifest, and every problem reported."""
    catalog = Engine(Config.for_sink(str(sink))).catalog()
    return [m.to_dict() for m in catalog.manifests], list(catalog.problems)


def list_json(cli: Cli, sink: Path) -> dict[str, Any]:
    result = cli("list", "--sink", sink, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def outside_temp(sink: Path) -> dict[str, int]:
    return files_under(sink)


def tiers(sink: Path) -> dict[str, int]:
    return {k: v for k, v in files_under(sink).items() if not k.startswith("logs/")}


def in_temp(sink: Path) -> list[str]:
    return sorted(p.relative_to(sink).as_posix() for p in (sink / "temp").rglob("*"))


def start_backup(cli: Cli, source: Path, sink: Path) -> subprocess.Popen[str]:
    """``python -m backupkit backup`` in the background; SIGINT raises KeyboardInterrupt in it."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:  # children inherit an ignored SIGINT; give them the default
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "backupkit", "backup", "--source", str(source),
             "--sink", str(sink), "--compress", "gzip"],
            cwd=cli.cwd, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_files(sink: Path) -> list[Path]:
    """The files in the run directories of temp/ now; a run directory made as ``.<id>``
    and renamed, or removed, while it is listed is passed over."""
    found = []
    try:
        runs = [e.path for e in os.scandir(sink / "temp") if e.is_dir() and not e.name.startswith(".")]
    except FileNotFoundError:
        return []
    for run in runs:
        try:
            found += [Path(e.path) for e in os.scandir(run)]
        except FileNotFoundError:
            continue
    return found


def wait_for_partial(proc: subprocess.Popen[str], sink: Path, size: int = KILL_AFTER) -> Path:
    """Poll the sink's temp/ until an artifact being written there holds *size* bytes."""
    deadline = time.monotonic() + 120  # a safety net for a hung run, not a speed requirement
    while True:
        for path in _run_files(sink):
            try:
                if path.name != ".lock" and path.stat().st_size >= size:
                    return path
            except FileNotFoundError:
                pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the backup ended (exit {proc.returncode}) before it could be "
                        f"interrupted mid-artifact; stderr: {err!r}")
        time.sleep(0.01)


# -- 1. SIGKILL ---------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_mid_artifact_leaves_catalog_as_before_and_next_run_collects_temp(
    big_source: Path, tmp_path: Path, cli: Cli
) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)
    before = catalog_state(sink)
    before_list = list_json(cli, sink)
    before_files = outside_temp(sink)
    assert len(before[0]) == 1 and len(before[1]) == 1  # one backup, one reported problem

    proc = start_backup(cli, big_source, sink)
    partial = wait_for_partial(proc, sink)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    dead_run = partial.parent
    assert dead_run.parent == sink / "temp" and partial.exists()  # killed mid-artifact
    assert catalog_state(sink) == before
    assert list_json(cli, sink) == before_list
    assert outside_temp(sink) == before_files  # no artifact, manifest or log appeared

    result = cli("backup", "--source", big_source, "--sink", sink, "--compress", "gzip", "--json")
    assert result.returncode == 0, result.stderr
    new_id = json.loads(result.stdout)["id"]
    assert not dead_run.exists()  # the dead run's temp/<run-id>/ was collected
    assert in_temp(sink) == []

    manifests, problems = catalog_state(sink)
    assert problems == before[1]
    assert manifests[:-1] == before[0] and manifests[-1]["id"] == new_id
    assert list_json(cli, sink)["backups"][:-1] == before_list["backups"]
    check = Engine(Config.for_sink(str(sink))).verify(new_id)
    assert check.ok, check.checks
    assert "files" in [c.artifact for c in check.checks]


def test_collect_stale_temp_removes_dead_runs_only(tmp_path: Path) -> None:
    live = LocalSink(tmp_path / "sink")
    live.begin_run("20240101T000000Z-aaaaaa")
    dead = tmp_path / "sink" / "temp" / "20230101T000000Z-dddddd"
    dead.mkdir()
    (dead / ".lock").touch()  # its flock died with its process
    (dead / "daily__x.tar.gz").write_bytes(b"partial")
    try:
        other = LocalSink(tmp_path / "sink")  # another process's view of the same sink
        assert other.collect_stale_temp() == [dead.name]
        assert not dead.exists()
        assert (tmp_path / "sink" / "temp" / "20240101T000000Z-aaaaaa").is_dir()
    finally:
        live.end_run("20240101T000000Z-aaaaaa")
    assert in_temp(tmp_path / "sink") == []


# -- 2. SIGTERM and SIGINT ----------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "word"),
    [(signal.SIGTERM, "terminated"), (signal.SIGINT, "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_signal_mid_artifact_exits_130_and_cleans_up(
    big_source: Path, tmp_path: Path, cli: Cli, sig: signal.Signals, word: str
) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)
    before = catalog_state(sink)
    before_files = outside_temp(sink)

    proc = start_backup(cli, big_source, sink)
    try:
        run_dir = wait_for_partial(proc, sink).parent
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:  # a failure here must not leave the child and its pipes to the next test
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 130, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("backupkit: "), stderr
    assert word in lines[0]
    assert not run_dir.exists()
    assert in_temp(sink) == []
    assert catalog_state(sink) == before
    assert tiers(sink) == {k: v for k, v in before_files.items() if not k.startswith("logs/")}
    added = set(outside_temp(sink)) - set(before_files)
    assert [k.startswith("logs/") and run_dir.name in k for k in added] == [True]  # its log only


# -- 3. ENOSPC ------------------------------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, or a skip where this machine refuses to mount one."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) here; test_enospc_from_a_sink_plugin covers a full disk")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        pytest.skip(f"cannot run mount(8) ({exc}); "
                    "test_enospc_from_a_sink_plugin covers a full disk")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "test_enospc_from_a_sink_plugin covers a full disk")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


@pytest.mark.integration
def test_full_tmpfs_fails_with_one_line_and_leaves_nothing(
    small_tmpfs: Path, tmp_path: Path, cli: Cli
) -> None:
    sink = small_tmpfs / "sink"
    baseline(sink, tmp_path)
    before = catalog_state(sink)
    before_tiers = tiers(sink)
    too_big = small_tree(tmp_path / "too-big", mib=12, seed=3)

    result = cli("backup", "--source", too_big, "--sink", sink, "--compress", "none")
    line = cli.error_line(result, "disk is full")
    assert result.returncode == SinkError.exit_code, line

    assert catalog_state(sink) == before
    assert in_temp(sink) == []
    assert tiers(sink) == before_tiers

    fits = small_tree(tmp_path / "fits", mib=2, seed=4)
    result = cli("backup", "--source", fits, "--sink", sink, "--compress", "none", "--json")
    assert result.returncode == 0, result.stderr
    assert [m["id"] for m in catalog_state(sink)[0]] == [m["id"] for m in before[0]] + [
        json.loads(result.stdout)["id"]
    ]


@pytest.mark.integration
def test_full_tmpfs_while_writing_the_manifest_publishes_nothing(
    small_tmpfs: Path, tmp_path: Path
) -> None:
    """The disk fills after the artifacts are stored: a short write of the manifest
    must not publish a truncated manifest, and the stored artifacts go again."""
    sink = small_tmpfs / "sink"
    baseline(sink, tmp_path)
    before = catalog_state(sink)
    before_tiers = tiers(sink)
    filler = small_tmpfs / "filler"
    config = set_config(
        str(sink),
        fs_source(small_tree(tmp_path / "src", mib=0.5)),
        {"type": "diskfill", "name": "fill", "path": str(filler), "leave": 4096},
        compress="none",
    )
    engine = Engine.from_config(config, plugins=[crash_helpers])
    tags = [f"tag-{i:04d}" for i in range(600)]  # a manifest of several pages

    with pytest.raises(SinkError, match="disk is full") as failed:
        engine.backup(tags=tags)
    assert "\n" not in str(failed.value)

    assert catalog_state(sink) == before
    assert tiers(sink) == before_tiers
    assert in_temp(sink) == []
    filler.unlink()
    config["sets"]["default"]["sources"].pop()  # no more filling up the disk
    manifest = Engine.from_config(config, plugins=[crash_helpers]).backup(tags=tags)
    assert [m["id"] for m in catalog_state(sink)[0]] == [m["id"] for m in before[0]] + [manifest.id]
    assert Engine(Config.for_sink(str(sink))).verify(manifest.id).ok


def quota_engine(
    sink: Path, *sources: dict[str, Any], recorder: object = None, **quota: Any
) -> Engine:
    config = set_config({"type": "quota", "root": str(sink), **quota}, *sources, compress="none")
    plugins = [crash_helpers] + ([recorder] if recorder is not None else [])
    return Engine.from_config(config, plugins=plugins)


def test_enospc_from_a_sink_plugin_leaves_catalog_as_before(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)
    before = catalog_state(sink)
    before_tiers = tiers(sink)
    src = small_tree(tmp_path / "src", mib=6)
    recorder = HookRecorder(only=HookRecorder.LIFECYCLE)

    engine = quota_engine(sink, fs_source(src), recorder=recorder, enospc_after=2 * MIB)
    with pytest.raises(SinkError) as failed:
        engine.backup()
    message = str(failed.value)
    assert "disk is full" in message and str(sink) in message and "\n" not in message
    assert recorder.names == ["before_run", "on_failure"] and recorder.calls[-1][2] is failed.value

    assert catalog_state(sink) == before
    assert in_temp(sink) == []
    assert tiers(sink) == before_tiers

    manifest = quota_engine(sink, fs_source(src), enospc_after=64 * MIB).backup()
    assert [m["id"] for m in catalog_state(sink)[0]] == [m["id"] for m in before[0]] + [manifest.id]
    assert Engine(Config.for_sink(str(sink))).verify(manifest.id).ok


def test_enospc_writing_the_manifest_removes_the_stored_artifacts(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)
    before = catalog_state(sink)
    before_tiers = tiers(sink)
    recorder = HookRecorder(probe=lambda run: tiers(sink), only=HookRecorder.LIFECYCLE)
    engine = quota_engine(
        sink,
        fs_source(small_tree(tmp_path / "a", seed=5), "first"),
        fs_source(small_tree(tmp_path / "b", seed=6), "second"),
        recorder=recorder,
        manifest_enospc=True,
    )
    with pytest.raises(SinkError, match="disk is full") as failed:
        engine.backup()
    assert "manifest" in str(failed.value)

    assert catalog_state(sink) == before
    assert tiers(sink) == before_tiers  # both committed artifacts were deleted again
    assert in_temp(sink) == []
    name, _, error, tiers_then = recorder.calls[-1]
    assert (name, error, tiers_then) == ("on_failure", failed.value, before_tiers)


def test_a_manifest_write_failing_after_it_was_published_leaves_catalog_as_before(
    tmp_path: Path,
) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)
    before = catalog_state(sink)
    before_tiers = tiers(sink)
    engine = quota_engine(sink, fs_source(small_tree(tmp_path / "src")),
                          manifest_fails_after_publish=True)
    with pytest.raises(SinkError, match="manifest"):
        engine.backup()
    assert catalog_state(sink) == before  # the manifest went first, then its artifacts
    assert tiers(sink) == before_tiers
    assert in_temp(sink) == []


@pytest.mark.parametrize("someone_elses", [False, True])
def test_a_failed_manifest_write_removes_a_manifest_without_run_id_only_if_it_is_ours(
    tmp_path: Path, someone_elses: bool
) -> None:
    sink = tmp_path / "sink"
    shared_key = "daily/app.manifest.json"  # a layout whose manifest keys carry no run id
    if someone_elses:
        other = quota_engine(sink, fs_source(small_tree(tmp_path / "other")), manifest_key=shared_key)
        other.backup()
    before, before_tiers = catalog_state(sink), tiers(sink)
    engine = quota_engine(sink, fs_source(small_tree(tmp_path / "src", seed=7)),
                          manifest_key=shared_key, manifest_fails_after_publish=not someone_elses)
    with pytest.raises(SinkError, match="manifest" if not someone_elses else "already exists"):
        engine.backup()
    assert catalog_state(sink) == before
    assert tiers(sink) == before_tiers


# -- 4. a failing source, and the lifecycle hooks -----------------------------------
@pytest.mark.parametrize(
    ("fail_with", "expected"), [("eio", SourceError), ("crash", RuntimeError)]
)
def test_source_failing_halfway_leaves_catalog_and_calls_on_failure(
    tmp_path: Path, fail_with: str, expected: type[BaseException]
) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)
    before = catalog_state(sink)
    before_tiers = tiers(sink)
    recorder = HookRecorder(probe=lambda run: (catalog_state(sink), in_temp(sink)),
                            only=HookRecorder.LIFECYCLE)
    config = set_config(
        str(sink),
        fs_source(small_tree(tmp_path / "src")),  # stored and committed first
        {"type": "halfway", "name": "db", "size": 3 * MIB, "fail_with": fail_with},
    )
    engine = Engine.from_config(config, plugins=[crash_helpers, recorder])

    with pytest.raises(expected) as failed:
        engine.backup()
    if expected is SourceError:
        assert "'db'" in str(failed.value) and "went away" in str(failed.value)

    assert recorder.names == ["before_run", "on_failure"]
    _, run, error, (catalog_then, temp_then) = recorder.calls[-1]
    assert error is failed.value
    assert catalog_then == before and temp_then == []  # cleanup happened before the hook
    assert run.set_name == "default"
    assert catalog_state(sink) == before
    assert tiers(sink) == before_tiers
    assert in_temp(sink) == []


def test_a_sidecar_is_stored_beside_its_artifact_and_checks(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    config = set_config(str(sink), {"type": "sidecar", "name": "db", "main": 3 * MIB, "side": 5 * MIB})
    manifest = Engine.from_config(config, plugins=[crash_helpers]).backup()
    main, side = manifest.artifacts
    assert (main.name, side.name) == ("db", "db.index")
    assert side.extra == {"sidecar_of": "db"} and side.raw_size == 5 * MIB
    expected = incompressible(1 << 16) * (5 * MIB >> 16)
    assert side.raw_sha256 == hashlib.sha256(expected).hexdigest()
    assert Engine(Config.for_sink(str(sink))).verify(manifest.id).ok
    assert in_temp(sink) == []


def test_a_sidecar_is_stored_while_the_source_still_writes(tmp_path: Path) -> None:
    """Not kept aside until the source returns (in memory or the system's temp directory,
    which may be RAM): the sink has part of it while the source is still running."""
    sink = tmp_path / "sink"
    config = set_config(
        str(sink), {"type": "sidecar", "name": "db", "main": MIB, "side": 12 * MIB,
                    "stored_under": str(sink / "temp")},
    )
    manifest = Engine.from_config(config, plugins=[crash_helpers]).backup()
    assert manifest.artifacts[1].raw_size == 12 * MIB


def test_a_full_disk_while_storing_a_sidecar_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)
    before, before_tiers = catalog_state(sink), tiers(sink)
    engine = quota_engine(
        sink, {"type": "sidecar", "name": "db", "main": 3 * MIB, "side": 6 * MIB},
        enospc_after=MIB, enospc_keys=".index",
    )
    with pytest.raises(SinkError, match="disk is full") as failed:
        engine.backup()
    assert "db.index" in str(failed.value)  # the sidecar's own error, not the stop it caused
    assert catalog_state(sink) == before
    assert tiers(sink) == before_tiers
    assert in_temp(sink) == []


def test_a_sidecar_stored_before_its_artifact_failed_is_deleted_again(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)
    before, before_tiers = catalog_state(sink), tiers(sink)
    engine = quota_engine(
        sink, {"type": "sidecar", "name": "db", "main": 2 * MIB, "side": MIB},
        fail_commit_of=".db.bin",
    )
    with pytest.raises(SinkError, match="disk is full"):
        engine.backup()
    assert catalog_state(sink) == before
    assert tiers(sink) == before_tiers  # the published sidecar is gone again


def test_a_source_failing_midway_through_its_sidecar_leaves_nothing(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)
    before, before_tiers = catalog_state(sink), tiers(sink)
    config = set_config(
        str(sink), {"type": "sidecar", "name": "db", "main": 4 * MIB, "side": 4 * MIB,
                    "fail_after_side": 2 * MIB},
    )
    with pytest.raises(RuntimeError, match="sidecar source crashed"):
        Engine.from_config(config, plugins=[crash_helpers]).backup()
    assert catalog_state(sink) == before
    assert tiers(sink) == before_tiers
    assert in_temp(sink) == []


def test_a_sidecar_opened_twice_is_a_source_error(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    config = set_config(
        str(sink), {"type": "sidecar", "name": "db", "main": MIB, "side": MIB, "open_twice": True}
    )
    with pytest.raises(SourceError, match="opened its sidecar 'index' twice"):
        Engine.from_config(config, plugins=[crash_helpers]).backup()
    assert catalog_state(sink)[0] == [] and in_temp(sink) == []


def test_before_and_after_run_hooks_see_the_run_and_its_manifest(tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    baseline(sink, tmp_path)

    def probe(run: RunInfo) -> Any:
        ids = [m["id"] for m in catalog_state(sink)[0]]
        return (run.run_id in ids, (sink / "temp" / run.run_id).exists())

    recorder = HookRecorder(probe=probe, only=HookRecorder.LIFECYCLE)
    config = set_config(str(sink), fs_source(small_tree(tmp_path / "src")))
    engine = Engine.from_config(config, plugins=[recorder])
    manifest = engine.backup(reason="nightly", tags=["t1"])
    seen = recorder.calls

    assert [c[0] for c in seen] == ["before_run", "after_run"]
    (_, before_run, _, before_probe), (_, after_run, after_manifest, after_probe) = seen
    assert before_run == after_run
    assert isinstance(before_run, RunInfo)
    assert (before_run.run_id, before_run.set_name, before_run.kind, before_run.reason) == (
        manifest.id, "default", "full", "nightly"
    )
    assert before_run.started_at == manifest.created_at
    assert before_run.hostname == manifest.hostname
    assert before_run.sink == str(sink)
    assert after_manifest == manifest
    assert after_manifest.tags == ("t1",)
    assert before_probe == (False, False)  # before anything was written
    assert after_probe == (True, False)  # published, temp cleaned


# -- 5. bounded memory ---------------------------------------------------------------
def _producer(pipe: ChunkPipe, pieces: list[bytes], produced: list[int], cond: threading.Condition,
              errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            for piece in pieces:
                pipe.write(piece)
                with cond:
                    produced[0] += 1
                    cond.notify_all()
            pipe.finish()
        except Exception as exc:  # noqa: BLE001 - the test thread looks at it
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _until(condition: Callable[[], bool], guard: float = 60) -> bool:
    """Wait until *condition* holds (a hang guard, not a time limit on speed)."""
    deadline = time.monotonic() + guard
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_chunk_pipe_never_holds_more_than_depth_chunks_for_a_slow_consumer() -> None:
    depth, chunk = 3, 1024
    pipe = ChunkPipe(chunk=chunk, depth=depth)
    pieces = [bytes([i]) * chunk for i in range(40)]
    produced, cond, errors = [0], threading.Condition(), list[BaseException]()
    thread = _producer(pipe, pieces, produced, cond, errors)

    with cond:  # the consumer has not read yet: the producer gets exactly depth ahead ...
        assert cond.wait_for(lambda: produced[0] >= depth, timeout=60)
    assert _until(pipe._queue.full)  # ... fills the bounded queue (an unbounded one never is)
    assert thread.is_alive() and produced[0] == depth  # ... and then waits

    received = []
    for item in pipe:
        received.append(item)
        with cond:
            assert produced[0] <= len(received) + depth
    thread.join(timeout=60)
    assert received == pieces and not errors


def test_chunk_pipe_splits_one_huge_write_into_chunks() -> None:
    depth, chunk = 2, 1024
    pipe = ChunkPipe(chunk=chunk, depth=depth)
    data = incompressible(10 * chunk + 100)
    produced, cond, errors = [0], threading.Condition(), list[BaseException]()
    pieces = [data, b"x" * 10, data]  # a big write into an empty buffer, then a partial one
    thread = _producer(pipe, pieces, produced, cond, errors)

    assert _until(pipe._queue.full)
    assert thread.is_alive() and produced[0] == 0  # blocked inside the first write

    received = list(pipe)
    thread.join(timeout=60)
    assert max(map(len, received)) <= chunk
    assert b"".join(received) == b"".join(pieces) and not errors


def test_chunk_pipe_cancel_releases_a_blocked_producer() -> None:
    pipe = ChunkPipe(chunk=16, depth=1)
    produced, cond, errors = [0], threading.Condition(), list[BaseException]()
    thread = _producer(pipe, [b"y" * 16] * 5, produced, cond, errors)
    with cond:
        assert cond.wait_for(lambda: produced[0] >= 1, timeout=60)
    pipe.cancel()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)


def test_backup_memory_does_not_grow_with_source_write_size(tmp_path: Path) -> None:
    """A source writing 8 MiB at a time into a slower consumer (gzip): what the
    engine holds stays near depth chunks, not depth of the source's writes."""
    block = 8 * MIB
    config = set_config(
        str(tmp_path / "sink"),
        {"type": "blocks", "name": "stream", "total": 6 * block, "block": block},
        compress="gzip",
    )
    engine = Engine.from_config(config, plugins=[crash_helpers])
    tracemalloc.start()
    try:
        manifest = engine.backup()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest.raw_size == 6 * block
    # the source's own buffer, plus the pipe's depth chunks and a few in flight; a pipe
    # queueing whole writes would hold depth + 2 of the source's buffers (56 MiB)
    assert peak < block + 3 * DEPTH * CHUNK, f"peak {peak / MIB:.1f} MiB"
