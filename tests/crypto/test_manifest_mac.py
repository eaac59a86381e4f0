"""Authenticated manifests (#20): in a set with a key, every plain manifest carries a MAC
over all of it, so an edit by someone who can write to the sink but has no key (paths,
facts, keys, sizes) makes verify and restore refuse the backup, naming the manifest.
Sealed manifests are authenticated by AES-GCM; plain sets have no key to authenticate with."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backupkit import Engine, Manifest
from backupkit.crypto.authenticated import authenticate_manifest, check_manifest
from backupkit.crypto.keys import Key, Keyring
from backupkit.errors import IntegrityError, ManifestError


def _engine(tmp_path: Path, key: str | None, **set_body: Any) -> Engine:
    src = tmp_path / "src"
    if not src.exists():
        (src / "sub").mkdir(parents=True)
        (src / "a.txt").write_text("alpha")
        (src / "sub" / "b.txt").write_text("beta")
    body = {"sources": [{"type": "filesystem", "name": "files", "paths": [str(src)]}],
            "sink": str(tmp_path / "sink"), **set_body}
    env = {"BACKUP_ENCRYPTION_KEY": key} if key else {}
    return Engine.from_config({"sets": {"app": body}}, env=env)


def _manifest_path(tmp_path: Path, manifest: Manifest) -> Path:
    (path,) = (tmp_path / "sink").glob(f"*/*{manifest.id}.manifest.json")
    return path


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def _artifact(doc: dict[str, Any], name: str = "files") -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in doc["artifacts"] if a["name"] == name)
    return found


EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "facts": lambda d: _artifact(d).__setitem__("extra", {**_artifact(d)["extra"], "files": 999}),
    "paths": lambda d: _artifact(d)["source"]["params"].__setitem__("paths", ["/etc"]),
    "index key": lambda d: _artifact(d, "files.index").__setitem__("key", _artifact(d)["key"]),
    "reason": lambda d: d.__setitem__("reason", "trust me"),
    "mac value": lambda d: d["mac"].__setitem__("value", "0" * 64),
    "mac key id": lambda d: d["mac"].__setitem__("key_id", "0" * 16),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_manifest_of_an_encrypted_set_is_refused_naming_it(tmp_path: Path, edit: str) -> None:
    engine = _engine(tmp_path, Key.generate().encode(), encrypt=True)
    manifest = engine.backup()
    doc = json.loads(_manifest_path(tmp_path, manifest).read_text())
    assert doc["mac"]["alg"] == "hmac-sha256" and doc["mac"]["key_id"] == engine.keyring.writer.id  # type: ignore[union-attr]
    assert engine.verify().ok and doc["artifacts"][0]["transforms"]  # plain JSON, readable
    _edit(_manifest_path(tmp_path, manifest), EDITS[edit])
    named = f"{manifest.id}.manifest.json"
    why = "was edited after it was written"
    for verb in (lambda: engine.verify(manifest.id), lambda: engine.restore(manifest.id, to=tmp_path / "out"),
                 lambda: engine.verify("latest")):
        with pytest.raises(ManifestError, match=f"{named} {why}"):
            verb()
    assert not (tmp_path / "out").exists()
    assert [p.key.endswith(named) for p in engine.catalog().problems] == [True]


def test_a_mac_removed_from_a_newer_manifest_is_refused_older_plain_ones_restore(tmp_path: Path) -> None:
    key = Key.generate().encode()
    engine = _engine(tmp_path, key, encrypt=True)
    first, second = engine.backup(), engine.backup()
    _edit(_manifest_path(tmp_path, second), lambda d: d.pop("mac"))
    with pytest.raises(IntegrityError, match=f"backup {second.id} .*manifest is not authenticated: it has no MAC"):
        engine.restore(second.id, to=tmp_path / "out")
    assert not engine.verify(second.id).ok
    # A manifest from before MACs (none yet in the set): restored as it is, like older backups
    _edit(_manifest_path(tmp_path, first), lambda d: d.pop("mac"))
    engine.restore(first.id, to=tmp_path / "out-first")
    assert (tmp_path / "out-first" / "src" / "a.txt").read_text() == "alpha"


def test_a_passphrase_authenticates_too_and_other_keys_cannot_forge(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "passphrase:correct horse battery staple, but longer", encrypt=True)
    manifest = engine.backup()
    assert engine.verify().ok
    path = _manifest_path(tmp_path, manifest)
    doc = json.loads(path.read_text())
    doc["reason"] = "forged"
    forger = Key.generate()
    forged = authenticate_manifest(json.dumps({k: v for k, v in doc.items() if k != "mac"}).encode(), forger)
    forged_doc = json.loads(forged)
    forged_doc["mac"]["key_id"] = doc["mac"]["key_id"]  # claims the set's key
    path.write_text(json.dumps(forged_doc))
    with pytest.raises(ManifestError, match="was edited after it was written"):
        engine.verify(manifest.id)


def test_sealed_manifests_need_no_mac_and_an_edit_fails_to_decrypt(tmp_path: Path) -> None:
    engine = _engine(tmp_path, Key.generate().encode(), encrypt=True, encrypt_manifest=True)
    manifest = engine.backup()
    path = _manifest_path(tmp_path, manifest)
    envelope = json.loads(path.read_text())
    assert set(envelope) == {"sealed_manifest", "key_id", "body"}
    body = bytearray(envelope["body"].encode())
    body[len(body) // 2] = ord("A") if body[len(body) // 2] != ord("A") else ord("B")
    envelope["body"] = body.decode()
    path.write_text(json.dumps(envelope))
    with pytest.raises(ManifestError, match=f"{manifest.id}.manifest.json cannot be decrypted"):
        engine.verify(manifest.id)


def test_a_plain_set_has_no_key_so_its_manifests_are_not_authenticated(tmp_path: Path) -> None:
    engine = _engine(tmp_path, None)
    manifest = engine.backup()
    assert "mac" not in json.loads(_manifest_path(tmp_path, manifest).read_text())
    _edit(_manifest_path(tmp_path, manifest), EDITS["reason"])
    assert engine.verify(manifest.id).ok  # documented: only the checksums protect plain sets
    assert engine.resolve(manifest.id).reason == "trust me"


def test_without_the_key_a_mac_cannot_be_checked_and_the_manifest_is_listed(tmp_path: Path) -> None:
    key = Key.generate().encode()
    manifest = _engine(tmp_path, key, encrypt=True).backup()
    keyless = _engine(tmp_path, None)
    assert [m.id for m in keyless.catalog()] == [manifest.id] and not keyless.catalog().problems
    assert keyless.verify(manifest.id).ok  # stored checksums only, and the notes say so


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k != "mac"),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                                    | st.text(max_size=20), lambda c: st.lists(c, max_size=3)
                                    | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=10),
                       max_size=6))
def test_the_mac_holds_for_any_json_and_any_change_breaks_it(doc: dict[str, Any]) -> None:
    key = Key("key", b"k" * 32)
    ring = Keyring([key])
    signed = authenticate_manifest(json.dumps(doc).encode(), key)
    assert check_manifest(signed, ring, origin="m") == "authenticated"
    assert check_manifest(json.dumps(json.loads(signed), indent=None).encode(), ring, origin="m") == "authenticated"
    assert check_manifest(signed, Keyring(), origin="m") == "unverifiable"
    changed = json.loads(signed)
    changed["extra field"] = 1
    with pytest.raises(ManifestError, match="was edited"):
        check_manifest(json.dumps(changed).encode(), ring, origin="m")
