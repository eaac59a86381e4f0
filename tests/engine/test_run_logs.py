"""Each run stores its own log in ``logs/``: its lines only, sealed when the set seals
manifests (a run log names files)."""

from __future__ import annotations

import threading
from pathlib import Path

from backupkit import Engine
from backupkit.crypto.keys import KEY_ENV, Key, Keyring
from backupkit.crypto.sealed import is_sealed_manifest, open_manifest
from backupkit.testing import fakes


def engine_for(sink: Path, src: Path, **body: object) -> Engine:
    key = body.pop("key", None)
    env = {KEY_ENV: key.encode()} if isinstance(key, Key) else {}
    return fakes.engine_for(src, sink=sink, env=env, **body)


def tree(root: Path, name: str) -> Path:
    root.mkdir(parents=True)
    (root / name).write_text("data\n")
    return root


def run_logs(sink: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (sink / "logs").rglob("*.log")}


def test_two_runs_at_once_in_one_process_each_log_only_their_own_lines(tmp_path: Path) -> None:
    engines = [engine_for(tmp_path / f"sink{i}", tree(tmp_path / f"src{i}", f"only-in-{i}.txt"))
               for i in range(2)]
    start = threading.Barrier(2)
    made = [None, None]

    def run(i: int) -> None:
        start.wait()
        made[i] = engines[i].backup("app")  # type: ignore[call-overload]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    for i in range(2):
        (log,) = run_logs(tmp_path / f"sink{i}").values()
        text = log.decode()
        assert made[i].id in text and "started" in text  # type: ignore[attr-defined]
        assert made[1 - i].id not in text  # type: ignore[attr-defined]
        assert f"sink{1 - i}" not in text


def test_a_set_that_seals_manifests_seals_its_run_logs(tmp_path: Path) -> None:
    key = Key.generate()
    src = tree(tmp_path / "secret-project", "board-minutes.txt")
    (src / "a-socket-like-thing").symlink_to("/nowhere")  # any line naming a path will do
    engine = engine_for(tmp_path / "sink", src, encrypt=True, encrypt_manifest=True, key=key)
    manifest = engine.backup("app")

    (log,) = run_logs(tmp_path / "sink").values()
    assert is_sealed_manifest(log) and b"secret-project" not in log
    text = open_manifest(log, Keyring([key]), origin="log").decode()
    assert manifest.id in text and "secret-project" in text
