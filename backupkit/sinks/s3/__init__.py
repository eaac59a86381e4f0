"""The ``s3`` sink: backups in an S3 bucket or an S3-compatible store, on boto3.

Layouts (keys under ``<prefix>/``)::

    tiered (default)             <hostname>/<tier>/<set>_<kind>_<id>.<artifact><ext>
                                 <hostname>/<tier>/<set>_<kind>_<id>.manifest.json
                                 logs/<hostname>/<set>_<kind>_<id>.log
    flat                         backups/<timestamp>-<reason>-backup-<timestamp>.<artifact><ext>
                                 (an artifact named like its format once: ``...backup-<ts>.json.gz``)
                                 backups/<timestamp>-<reason>-backup-<timestamp>.manifest.json
                                 logs/<set>_<kind>_<id>.log

An artifact streams into a multipart upload of parts of ``part_size`` bytes,
uploaded by a small thread pool with no local temporary copy: at most
``concurrency`` parts in flight, so memory stays near ``(concurrency + 1) *
part_size``. S3 allows 10,000 parts per upload and the artifact's size is not
known in advance, so the part size doubles every 1,000 parts
(:func:`part_size_for`): with the default 8 MiB, parts stay 8 MiB up to 7.8 GiB,
and 10,000 parts hold 7.8 TiB, more than S3's 5 TiB object limit. As parts grow,
fewer are in flight, at most ``concurrency * part_size`` bytes' worth (at least
one part), so memory is that plus the part being filled: 48 MiB at 16 MiB parts,
then two parts once one fills the cap (128 MiB for a 100 GiB artifact, defaults).

Nothing is visible until CompleteMultipartUpload; ``abort`` calls
AbortMultipartUpload, so no parts are left billing. Each part carries a CRC32 that
S3 checks (the upload's composite checksum, as boto3's transfer manager does). An
artifact smaller than one part is stored with a single PutObject. Every write is
conditional (``If-None-Match: *``): a stored backup is never overwritten.

Artifacts get ``storage_class`` (STANDARD_IA), manifests and run logs
``manifest_storage_class`` (STANDARD: they are small and read often). Objects are
private, encrypted with ``sse`` (``AES256`` or ``aws:kms`` with ``kms_key_id``).

Credentials come from the standard AWS chain (environment, profile, instance
role); the bucket from ``bucket``, else ``AWS_S3_BUCKET_NAME`` or
``BACKUP_S3_BUCKET``; the region from ``region``, else ``AWS_REGION``. boto3 also
honours ``AWS_ENDPOINT_URL``. botocore errors are translated here, at the
boundary, into one-line :mod:`backupkit.errors` that say what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backupkit.plugin import Register, hookimpl, lazy_exports

if TYPE_CHECKING:
    from backupkit.sinks.s3.errors import translate_error
    from backupkit.sinks.s3.sink import LAYOUTS, SSE_CHOICES, STALE_UPLOAD_AGE, S3Sink
    from backupkit.sinks.s3.writer import MAX_PARTS, PARTS_PER_SIZE, part_size_for

__all__ = [
    "LAYOUTS",
    "MAX_PARTS",
    "PARTS_PER_SIZE",
    "SSE_CHOICES",
    "STALE_UPLOAD_AGE",
    "S3Sink",
    "backupkit_register_sinks",
    "backupkit_sink_for_url",
    "part_size_for",
    "translate_error",
]


@hookimpl
def backupkit_register_sinks(register: Register) -> None:
    """The ``s3`` sink, by reference: its modules (and boto3) load when a set uses it."""
    register.sink("backupkit.sinks.s3.sink:S3Sink", id="s3")


@hookimpl
def backupkit_sink_for_url(url: str) -> tuple[str, dict[str, object]] | None:
    """``s3://bucket/prefix`` belongs to the s3 sink (``s3:///prefix``: bucket from env);
    a query sets sink options (``s3://bucket/prefix?layout=flat``, see :data:`URL_OPTIONS`)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "s3":
        return None
    rest, mark, query = rest.partition("?")
    bucket, _, prefix = rest.partition("/")
    params: dict[str, object] = {"prefix": prefix.strip("/")}
    if bucket:
        params["bucket"] = bucket
    if mark:
        params.update(_url_options(url, query))
    return ("s3", params)


#: The sink options an ``s3://`` URL's query may set (``?layout=flat&region=eu-west-1``).
URL_OPTIONS = ("layout", "region", "endpoint_url", "profile", "storage_class", "sse")


def _url_options(url: str, query: str) -> dict[str, object]:
    """The options in *url*'s *query*; an unknown or repeated key is refused, never
    taken for part of the prefix."""
    from urllib.parse import parse_qsl

    from backupkit.errors import ConfigError, unknown_key

    where = f"sink {url.partition('?')[0]}"
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ConfigError(f"{where}: cannot read the options {query!r}; write them as "
                          "?layout=flat&region=eu-west-1") from None
    options: dict[str, object] = {}
    for key, value in pairs:
        if key not in URL_OPTIONS:
            raise unknown_key(f"{where}: URL option", key, URL_OPTIONS, listing="options")
        if key in options:
            raise ConfigError(f"{where}: URL option {key!r} is given twice; give it once")
        options[key] = value
    return options


__getattr__ = lazy_exports(__name__, {
    "LAYOUTS": "backupkit.sinks.s3.sink", "SSE_CHOICES": "backupkit.sinks.s3.sink",
    "STALE_UPLOAD_AGE": "backupkit.sinks.s3.sink", "S3Sink": "backupkit.sinks.s3.sink",
    "MAX_PARTS": "backupkit.sinks.s3.writer", "PARTS_PER_SIZE": "backupkit.sinks.s3.writer",
    "part_size_for": "backupkit.sinks.s3.writer", "translate_error": "backupkit.sinks.s3.errors",
})
