"""What hooks are told about a backup run."""

from __future__ import annotations

import datetime as dt

import attrs


@attrs.frozen
class RunInfo:
    """A backup run as lifecycle hooks see it."""

    run_id: str
    set_name: str
    kind: str
    reason: str
    started_at: dt.datetime
    sink: str
    hostname: str
