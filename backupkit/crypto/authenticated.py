"""Authenticated manifests: a plain manifest of an encrypted set carries a MAC over all of
it, so that nobody without the key can edit it unnoticed (its paths, facts, keys, sizes).

The manifest stays plain JSON, readable by people and tools; one more top-level field,
``"mac": {"alg": "hmac-sha256", "key_id": "<16 hex>", "value": "<64 hex>"}``, holds an
HMAC-SHA256, keyed with a key derived from the set's encryption key (``Key.mac_key``),
over the manifest's canonical JSON without that field (keys sorted, no spaces, UTF-8).
A sealed manifest needs none: AES-GCM authenticates it whole.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

from backupkit.crypto.keys import Key, Keyring
from backupkit.crypto.stream import KEY_ID_PATTERN
from backupkit.errors import ManifestError

MAC_FIELD = "mac"
ALGORITHM = "hmac-sha256"
#: What a check found: the MAC matched; there is none; its key is not in the keyring.
Authenticity = Literal["authenticated", "unauthenticated", "unverifiable"]


def _canonical(obj: dict[str, Any]) -> bytes:
    body = {k: v for k, v in obj.items() if k != MAC_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(key: Key, obj: dict[str, Any]) -> str:
    return hmac.new(key.mac_key(), _canonical(obj), hashlib.sha256).hexdigest()


def authenticate_manifest(data: bytes, key: Key) -> bytes:
    """*data* (a manifest's JSON) with a MAC by *key* added."""
    obj = json.loads(data)
    obj[MAC_FIELD] = {"alg": ALGORITHM, "key_id": key.id, "value": _mac(key, obj)}
    return (json.dumps(obj, indent=2) + "\n").encode()


def check_manifest(data: bytes, keyring: Keyring, *, origin: str) -> Authenticity:
    """Whether the plain manifest *data* is authenticated; a :class:`ManifestError`
    naming *origin* when its MAC does not match (it was edited) or is malformed;
    ``unverifiable`` when its key is not in *keyring*."""
    try:
        obj = json.loads(data)
    except ValueError:
        return "unauthenticated"  # Manifest.from_json names the fault
    if not isinstance(obj, dict) or MAC_FIELD not in obj:
        return "unauthenticated"
    mac = obj[MAC_FIELD]
    if not (isinstance(mac, dict) and mac.get("alg") == ALGORITHM and isinstance(mac.get("value"), str)
            and isinstance(mac.get("key_id"), str) and KEY_ID_PATTERN.match(mac["key_id"])):
        raise ManifestError(f"manifest {origin} has a malformed MAC; it was damaged or edited: "
                            "restore an older backup")
    key = keyring.get(mac["key_id"])
    if key is None:
        return "unverifiable"
    if not hmac.compare_digest(_mac(key, obj), mac["value"]):
        raise ManifestError(f"manifest {origin} was edited after it was written: its MAC (key {key.id}) "
                            "does not match; do not trust this backup, restore an older one")
    return "authenticated"
