"""boto3, imported when an S3 sink is first used (``pip install 'backupkit[s3]'``)."""

from __future__ import annotations

import functools
from typing import Any

from backupkit.errors import ConfigError


def import_boto() -> tuple[Any, Any, Any]:
    """boto3, botocore's Config class and botocore's exceptions module."""
    try:
        import boto3  # type: ignore[import-untyped]
        import botocore.config  # type: ignore[import-untyped]
        import botocore.exceptions  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "the s3 sink needs boto3; install it with: pip install 'backupkit[s3]'"
        ) from None
    return boto3, botocore.config.Config, botocore.exceptions


@functools.cache
def boto_errors() -> tuple[type[BaseException], ...]:
    """What botocore raises: translated by :func:`backupkit.sinks.s3.errors.translate_error`; anything else is a bug."""
    _, _, exceptions = import_boto()
    return (exceptions.BotoCoreError, exceptions.ClientError)
