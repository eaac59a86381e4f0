"""Restore drills: one backup of a set restored into scratch targets and checked, its
times and results stored as a :class:`~backupkit.core.drill.DrillRecord` in the sink."""

from __future__ import annotations

from backupkit.core.drill import DrillRecord
from backupkit.engine.parts import Parts
from backupkit.engine.results import ProgressCallback


def drill(parts: Parts, ref: str = "latest", *, set_name: str | None = None,
          progress: ProgressCallback | None = None) -> DrillRecord:
    """Drill backup *ref* of *set_name*; see :meth:`backupkit.Engine.drill`."""
    raise NotImplementedError("the drill runner is being written")
