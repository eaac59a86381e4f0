"""Assertions the conformance suites share."""

from __future__ import annotations

import json
import re
from typing import Any, cast

import attrs

from backupkit.params import is_secret

#: What a plugin id looks like: lower case letters, digits, ``-`` and ``_``.
ID_PATTERN = re.compile(r"[a-z][a-z0-9_-]*\Z")


def assert_describe_hides_secrets(plugin: Any) -> dict[str, Any]:
    """Check that *plugin*'s ``describe()`` is JSON and that no secret field's name or
    value is in it or in its repr; return what it described."""
    described: dict[str, Any] = plugin.describe()
    text = json.dumps(described)
    for field in attrs.fields(cast(Any, type(plugin))):
        if not is_secret(field):
            continue
        assert field.name not in described, f"secret field {field.name!r} in describe()"
        value = getattr(plugin, field.name)
        if isinstance(value, bytes):
            value = value.hex()
        if isinstance(value, str) and value:
            assert value not in text, f"the value of secret field {field.name!r} in describe()"
            assert value not in repr(plugin), f"the value of secret field {field.name!r} in repr()"
    return described
