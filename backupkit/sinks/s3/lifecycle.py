"""The bucket lifecycle rule that aborts the multipart uploads a killed backup leaves.

A backup killed with SIGKILL (or a lost machine) cannot abort its multipart upload; S3
keeps the parts, and bills them, until someone does. The next backup into the prefix
aborts uploads older than two days (:meth:`S3Sink.abort_stale_uploads`); a bucket
lifecycle rule, ``AbortIncompleteMultipartUpload`` for the sink's prefix, lets S3 do it
by itself. :func:`planned` computes the configuration with that rule, keeping every other
rule of the bucket as it is; :func:`apply` writes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from backupkit.sinks.s3.boto import boto_errors
from backupkit.sinks.s3.errors import code_of

if TYPE_CHECKING:
    from backupkit.sinks.s3.sink import S3Sink

#: Days after which S3 aborts an upload nobody completed (a backup's parts are uploaded
#: within its run; one day leaves room for the longest).
DEFAULT_DAYS = 1


def rule_id(prefix: str) -> str:
    """The id of backupkit's rule for *prefix* (at most 255 characters, as S3 wants)."""
    return ("backupkit-abort-incomplete-uploads" + (f"-{re.sub(r'[^A-Za-z0-9._-]', '_', prefix)}" if prefix
                                                    else ""))[:255]


def rule_for(prefix: str, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """The rule: abort incomplete multipart uploads under *prefix* after *days* days."""
    return {"ID": rule_id(prefix), "Status": "Enabled", "Filter": {"Prefix": f"{prefix}/" if prefix else ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}}


@attrs.frozen
class Plan:
    """The bucket's lifecycle rules now, and with backupkit's rule in place."""

    bucket: str
    rule: Mapping[str, Any]
    current: tuple[Mapping[str, Any], ...]
    planned: tuple[Mapping[str, Any], ...]

    @property
    def in_place(self) -> bool:
        """Whether the bucket already has the rule, as it would be written."""
        return any(dict(r) == dict(self.rule) for r in self.current)

    @property
    def covered_by(self) -> str | None:
        """The id of another rule that already aborts incomplete uploads under the prefix."""
        prefix = str(self.rule["Filter"]["Prefix"])
        for r in self.current:
            filt = r.get("Filter") or {}
            other = filt.get("Prefix", r.get("Prefix", "")) if isinstance(filt, Mapping) else ""
            if (r.get("ID") != self.rule["ID"] and r.get("Status") == "Enabled"
                    and "AbortIncompleteMultipartUpload" in r and prefix.startswith(str(other))):
                return str(r.get("ID") or "(no id)")
        return None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        return {"bucket": self.bucket, "rule": dict(self.rule), "in_place": self.in_place,
                "covered_by": self.covered_by, "current": [dict(r) for r in self.current],
                "planned": {"Rules": [dict(r) for r in self.planned]}}


def planned(sink: S3Sink, days: int = DEFAULT_DAYS) -> Plan:
    """The lifecycle configuration of *sink*'s bucket with backupkit's rule for its prefix."""
    rule = rule_for(sink.prefix, days)
    try:
        current = tuple(sink.client.get_bucket_lifecycle_configuration(Bucket=sink.bucket).get("Rules", ()))
    except boto_errors() as exc:
        if code_of(exc) != "NoSuchLifecycleConfiguration":
            raise sink._error(exc, "s3:GetLifecycleConfiguration") from None
        current = ()
    others = tuple(r for r in current if r.get("ID") != rule["ID"])
    return Plan(sink.bucket, rule, current, (*others, rule))


def apply(sink: S3Sink, plan: Plan) -> None:
    """Write *plan*'s configuration to the bucket (every other rule kept)."""
    try:
        sink.client.put_bucket_lifecycle_configuration(
            Bucket=sink.bucket, LifecycleConfiguration={"Rules": [dict(r) for r in plan.planned]})
    except boto_errors() as exc:
        raise sink._error(exc, "s3:PutLifecycleConfiguration") from None


@attrs.frozen
class Upload:
    """A multipart upload nobody completed or aborted: its key, start and parts' bytes."""

    key: str
    initiated: Any  # an aware datetime
    size: int


def incomplete_uploads(sink: S3Sink) -> list[Upload]:
    """The multipart uploads under *sink*'s prefix that are still open (a running backup's,
    or one a killed backup left), by object key; a one-line error when listing them is
    not allowed."""
    return [Upload(key, at, size) for key, at, size in sink.list_open_uploads()]
