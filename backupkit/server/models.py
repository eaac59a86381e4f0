"""Request bodies of the HTTP API (seed 000's and seed 002's shapes), as pydantic models
so that FastAPI validates them and ``/openapi.json`` describes them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackupRequest(_Body):
    """``POST /api/backup``: seed 000's manual backup."""

    reason: str = Field("manual", max_length=200, description="why: recorded in the manifest")
    set: str | None = Field(None, max_length=200, description="the set (default: the only one)")
    kind: Literal["full", "incremental"] = "full"


class AdminBackupRequest(_Body):
    """``POST /api/admin/backup``: seed 002's typed backup."""

    type: Literal["full", "incremental"] = "full"
    set: str | None = Field(None, max_length=200)
    reason: str = Field("admin", max_length=200)


class SchedulerRequest(_Body):
    """``POST /api/backup/scheduler``."""

    action: Literal["start", "stop"]


class DownloadUrlRequest(_Body):
    """``POST /api/admin/backup/download-url``: seed 002's ``backupPath``."""

    backupPath: str = Field(..., min_length=1, max_length=2048,  # noqa: N815 - the seed's spelling
                            description="an artifact's path as the admin status lists it (s3://...)")
    expires: int | None = Field(None, ge=1, le=7 * 24 * 3600, description="seconds the URL stays valid")


class Problem(BaseModel):
    """Every error response: one line saying what is wrong and what to do."""

    error: str
    detail: Any = None
