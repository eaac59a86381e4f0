"""Plugin parameters: plugins are attrs classes whose fields are their parameters.

``build(cls, params, what=...)`` checks the keys against the fields, converts and
validates, and turns every mistake into a one-line :class:`ConfigError` that names
the plugin and the key. ``public_params(obj)`` returns the fields fit for a
manifest: fields declared with ``secret()`` never leave the process.
``redacted_repr`` shows parameters not checked yet (a configuration's) with the
values of secret-looking names and URL passwords replaced by ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast

import attrs

from backupkit.errors import ConfigError, unknown_key

T = TypeVar("T")

_SECRET = "backupkit_secret"


def secret(**kwargs: Any) -> Any:
    """An attrs field holding a secret: kept out of manifests, logs and repr."""
    metadata = dict(kwargs.pop("metadata", {}))
    metadata[_SECRET] = True
    return attrs.field(metadata=metadata, repr=False, **kwargs)


def build(cls: type[T], params: Mapping[str, Any], *, what: str) -> T:
    """Instantiate plugin *cls* from user *params*; *what* names it in errors."""
    fields = {f.name: f for f in attrs.fields(cast(Any, cls)) if f.init}
    names = {f.alias or f.name: f.name for f in fields.values()}
    for key in params:
        if key not in names:
            raise unknown_key(what, key, sorted(names), listing="known keys")
    missing = [
        alias
        for alias, name in names.items()
        if fields[name].default is attrs.NOTHING and alias not in params
    ]
    if missing:
        raise ConfigError(f"{what}: missing required key {missing[0]!r}")
    try:
        return cls(**params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}") from None


def is_secret(field: attrs.Attribute[Any]) -> bool:
    """Whether attrs *field* was declared with :func:`secret`."""
    return bool(field.metadata.get(_SECRET))


def public_params(obj: Any) -> dict[str, Any]:
    """The non-secret fields of plugin *obj*, as JSON-ready values."""
    out: dict[str, Any] = {}
    for f in attrs.fields(type(obj)):
        if is_secret(f) or not f.init:  # secrets and internal state
            continue
        value = getattr(obj, f.name)
        if isinstance(value, tuple):
            value = list(value)
        out[f.alias or f.name] = value
    return out


_SECRET_WORDS = (
    "secret", "password", "passwd", "passphrase", "token", "credential", "access_key", "apikey",
)
_URL_PASSWORD = re.compile(r"(://[^/?#@:\s]*):[^/?#\s]*@")
REDACTED = "***"


def name_list(value: Any) -> tuple[str, ...]:
    """An attrs converter: one name or a list of non-empty names, as a tuple."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(value)


def secret_name(name: str) -> bool:
    """Whether a parameter called *name* holds a secret: ``password``, ``api_key``,
    ``secret_access_key``, ``session_token``, ``credentials``... but not ``key_id``."""
    name = name.lower()
    return name == "key" or name.endswith("_key") or any(w in name for w in _SECRET_WORDS)


#: ``user:password@`` after any ``scheme://``, also inside ``a::b://`` chains; up to the last
#: ``@`` before the path, query or fragment, as urlsplit reads it (a password may hold ``@``).
_USERINFO = re.compile(r"(://)[^/?#]*@")


def strip_userinfo(text: str) -> str:
    """*text* with the ``user:password@`` of every URL in it removed (for locations and
    messages, where the user name is not needed either)."""
    return _USERINFO.sub(r"\1", text)


def scrub_url(text: str) -> str:
    """*text* with the password of any ``scheme://user:password@host`` replaced by ``***``."""
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)


def redacted(value: Any, name: str = "") -> Any:
    """*value* (a parameter called *name*) fit to show: secrets in it replaced by ``***``."""
    if name and secret_name(name) and value is not None:
        return REDACTED
    if isinstance(value, str):
        return scrub_url(value)
    if isinstance(value, Mapping):
        return {k: redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redacted(v) for v in value)
    return value


def redacted_repr(value: Any) -> str:
    """For ``attrs.field(repr=redacted_repr)``: the repr of :func:`redacted` *value*."""
    return repr(redacted(value))


def check_range(lo: int, hi: int) -> Any:
    """attrs validator: an int between *lo* and *hi* inclusive, with a plain message."""

    def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"{attribute.name} must be an integer from {lo} to {hi}, got {value!r}")

    return validate
